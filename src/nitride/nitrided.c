/*
 * nitrided — the Nitride agent in the VM: proves the VM's trust and fetches
 * secrets (Case B, DESIGN.md §2).  It holds no long-lived key and never sees
 * a secret in plaintext: what it fetches is encrypted to a transfer key whose
 * private half lives elsewhere (in vhsmd).
 *
 * This version runs one provisioning and exits (--once): given the transfer
 * public key, it writes the released JWE.  Serving vhsmd's provision and
 * attest requests over its socket builds on the same flow (flow.c).
 */
#include "nitride/flow.h"

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/inifile.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWK_MAX (4u * 1024u)

static const char usage[] =
	"usage: nitrided [--config FILE] --once --provision NAME [--version N]\n"
	"                --tee-pubkey JWKFILE --out FILE\n"
	"                [--attestd URL] [--provd URL] [--snp SPEC] [--ca-bundle PEM]\n"
	"       nitrided --config FILE --check-config\n"
	"\n"
	"Attest this VM and fetch secret NAME, encrypted to the transfer key in\n"
	"JWKFILE (a public EC P-256 JWK), into FILE (compact JWE, mode 0600).\n"
	"Configuration keys (INI): attestd_url, provd_url, ca_bundle, snp,\n"
	"timeout_ms, attempts, backoff_ms, max_backoff_ms.  Flags override them.\n"
	"Exit status: 0 provisioned, 1 refused or failed (the reason on stderr), 2 usage.\n";

struct config {
	char *attestd_url, *provd_url, *ca_bundle, *snp;
	struct http_opts http;
	char err[640];
};

static void
config_free(struct config *c)
{
	free(c->attestd_url);
	free(c->provd_url);
	free(c->ca_bundle);
	free(c->snp);
}

static int
parse_long(const char *v, long min, long max, long *out)
{
	char *end = NULL;
	long long x;

	errno = 0;
	x = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < min || x > max)
		return -1;
	*out = (long)x;
	return 0;
}

static int
set_string(char **dst, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		return -1;
	free(*dst);
	*dst = d;
	return 0;
}

/* One configuration key; 0, or -1 with the reason in msg. */
static int
on_key(void *arg, const char *section, const char *key, const char *value, char *msg,
       size_t msglen)
{
	struct config *c = arg;
	long v = 0;
	int bad;

	if (section[0] != '\0' && strcmp(section, "nitrided") != 0) {
		(void)snprintf(msg, msglen, "key '%s': unknown section [%s] (use [nitrided])", key,
			       section);
		return -1;
	}
	if (strcmp(key, "attestd_url") == 0)
		bad = set_string(&c->attestd_url, value);
	else if (strcmp(key, "provd_url") == 0)
		bad = set_string(&c->provd_url, value);
	else if (strcmp(key, "ca_bundle") == 0)
		bad = set_string(&c->ca_bundle, value);
	else if (strcmp(key, "snp") == 0)
		bad = set_string(&c->snp, value);
	else if (strcmp(key, "timeout_ms") == 0)
		bad = parse_long(value, 100, 600000, &c->http.timeout_ms);
	else if (strcmp(key, "attempts") == 0) {
		bad = parse_long(value, 1, 20, &v);
		c->http.attempts = (unsigned)v;
	} else if (strcmp(key, "backoff_ms") == 0)
		bad = parse_long(value, 1, 60000, &c->http.backoff_ms);
	else if (strcmp(key, "max_backoff_ms") == 0)
		bad = parse_long(value, 1, 600000, &c->http.max_backoff_ms);
	else {
		(void)snprintf(msg, msglen, "unknown key '%s'", key);
		return -1;
	}
	if (bad != 0) {
		(void)snprintf(msg, msglen, "key '%s': bad value '%.60s'", key, value);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	enum { O_CONFIG = 256, O_CHECK, O_ONCE, O_PROVISION, O_VERSION, O_TEE, O_OUT, O_ATTESTD,
	       O_PROVD, O_SNP, O_CA };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, O_CONFIG },
		{ "check-config", no_argument, NULL, O_CHECK },
		{ "once", no_argument, NULL, O_ONCE },
		{ "provision", required_argument, NULL, O_PROVISION },
		{ "version", required_argument, NULL, O_VERSION },
		{ "tee-pubkey", required_argument, NULL, O_TEE },
		{ "out", required_argument, NULL, O_OUT },
		{ "attestd", required_argument, NULL, O_ATTESTD },
		{ "provd", required_argument, NULL, O_PROVD },
		{ "snp", required_argument, NULL, O_SNP },
		{ "ca-bundle", required_argument, NULL, O_CA },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config c = {
		.http = { .timeout_ms = 10000, .attempts = 4, .backoff_ms = 200,
			  .max_backoff_ms = 5000, .max_body = 1u << 20 },
	};
	const char *config_path = NULL, *name = NULL, *tee_path = NULL, *out_path = NULL;
	const char *o_attestd = NULL, *o_provd = NULL, *o_snp = NULL, *o_ca = NULL;
	bool check = false, once = false;
	long version = 0;
	struct flow_config fc;
	uint8_t *tee = NULL;
	size_t tee_len = 0;
	char *jwe = NULL, err[FLOW_ERR_MAX];
	enum flow_step step;
	int ch, r, ret = 2;

	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case O_CONFIG: config_path = optarg; break;
		case O_CHECK: check = true; break;
		case O_ONCE: once = true; break;
		case O_PROVISION: name = optarg; break;
		case O_VERSION:
			if (parse_long(optarg, 1, 0x7fffffff, &version) != 0) {
				fprintf(stderr, "nitrided: --version '%s': expected a positive number\n", optarg);
				goto out;
			}
			break;
		case O_TEE: tee_path = optarg; break;
		case O_OUT: out_path = optarg; break;
		case O_ATTESTD: o_attestd = optarg; break;
		case O_PROVD: o_provd = optarg; break;
		case O_SNP: o_snp = optarg; break;
		case O_CA: o_ca = optarg; break;
		case 'h': fputs(usage, stdout); ret = 0; goto out;
		default: fputs(usage, stderr); goto out;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		goto out;
	}
	if (config_path != NULL && inifile_load(config_path, on_key, &c, c.err, sizeof(c.err)) != 0) {
		fprintf(stderr, "nitrided: %s\n", c.err);
		ret = check ? 1 : 2;
		goto out;
	}
	if (check) {
		if (config_path == NULL) {
			fprintf(stderr, "nitrided: --check-config needs --config FILE\n");
			goto out;
		}
		printf("nitrided: %s: ok\n", config_path);
		ret = 0;
		goto out;
	}
	if ((o_attestd != NULL && set_string(&c.attestd_url, o_attestd) != 0) ||
	    (o_provd != NULL && set_string(&c.provd_url, o_provd) != 0) ||
	    (o_snp != NULL && set_string(&c.snp, o_snp) != 0) ||
	    (o_ca != NULL && set_string(&c.ca_bundle, o_ca) != 0)) {
		fprintf(stderr, "nitrided: out of memory\n");
		goto out;
	}
	if (!once || name == NULL || tee_path == NULL || out_path == NULL || c.attestd_url == NULL ||
	    c.provd_url == NULL) {
		fprintf(stderr, "nitrided: needs --once --provision NAME --tee-pubkey FILE --out FILE and the two service URLs\n");
		fputs(usage, stderr);
		goto out;
	}
	if ((r = file_read_all(tee_path, JWK_MAX, &tee, &tee_len)) != 0) {
		fprintf(stderr, "nitrided: --tee-pubkey %s: %s\n", tee_path,
			r == -EFBIG ? "larger than 4 KiB" : strerror(-r));
		goto out;
	}
	http_global_init();
	fc.attestd_url = c.attestd_url;
	fc.provd_url = c.provd_url;
	fc.snp_spec = c.snp;
	fc.http = c.http;
	fc.http.ca_bundle = c.ca_bundle;
	step = flow_provision(&fc, name, (unsigned long)version, (const char *)tee, &jwe, err,
			      sizeof(err));
	if (step != FLOW_OK) {
		fprintf(stderr, "nitrided: key %s unavailable: %s\n", name, err);
		ret = step == FLOW_INPUT ? 2 : 1;
		goto out;
	}
	if ((r = atomic_write_file(out_path, (const uint8_t *)jwe, strlen(jwe), 0600)) != 0) {
		fprintf(stderr, "nitrided: %s: %s\n", out_path, strerror(-r));
		goto out;
	}
	fprintf(stderr, "nitrided: %s provisioned (JWE for the transfer key in %s)\n", name, out_path);
	ret = 0;
out:
	free(jwe);
	free(tee);
	config_free(&c);
	return ret;
}
