/*
 * nitrided — the Nitride agent in the VM: proves the VM's trust and fetches
 * secrets (Case B, DESIGN.md §2).  It holds no long-lived key and never sees
 * a secret in plaintext: what it fetches is encrypted to a transfer key whose
 * private half lives elsewhere (in vhsmd).
 *
 * Modes (docs/nitrided.md):
 *   daemon (no --once): serve vhsmd's provision/attest requests on
 *     listen_socket (serve.c), only from the vhsmd uid;
 *   --once --provision NAME --vhsmd SOCK: ask vhsmd to provision NAME (vhsmd
 *     makes the transfer key and calls back on listen_socket, served by this
 *     process until vhsmd answers), then exit — for boot units;
 *   --once --provision NAME --tee-pubkey FILE --out FILE: write the JWE for a
 *     given transfer key (tests, debugging).
 */
#include "nitride/flow.h"
#include "nitride/serve.h"
#include "nitride/vhsm.h"

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/inifile.h"
#include "common/sdnotify.h"
#include "common/wipemem.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define JWK_MAX (4u * 1024u)

static const char usage[] =
	"usage: nitrided --config FILE [--listen SOCKET] [--vhsmd-uid UID]     (daemon)\n"
	"       nitrided [--config FILE] --once --provision NAME --vhsmd SOCKET [--listen SOCKET]\n"
	"       nitrided [--config FILE] --once --provision NAME [--version N]\n"
	"                --tee-pubkey JWKFILE --out FILE\n"
	"                [--attestd URL] [--provd URL] [--snp SPEC] [--ca-bundle PEM]\n"
	"       nitrided --config FILE --check-config\n"
	"\n"
	"Attest this VM and fetch secret NAME, encrypted to the transfer key in\n"
	"JWKFILE (a public EC P-256 JWK), into FILE (compact JWE, mode 0600).\n"
	"Configuration keys (INI): attestd_url, provd_url, ca_bundle, snp,\n"
	"timeout_ms, attempts, backoff_ms, max_backoff_ms, listen_socket, vhsmd_uid,\n"
	"vhsmd_socket, cert_table (until-accepted | always).  Flags override them.\n"
	"Exit status: 0 provisioned, 1 refused or failed (the reason on stderr), 2 usage.\n";

struct config {
	char *attestd_url, *provd_url, *ca_bundle, *snp, *listen_socket, *vhsmd_socket;
	long vhsmd_uid;
	bool cert_table_always; /* cert_table = always: every attest request carries it */
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
	free(c->listen_socket);
	free(c->vhsmd_socket);
}

static volatile bool stop_flag;

static void
on_signal(int sig)
{
	(void)sig;
	stop_flag = true;
}

struct once_server {
	struct serve_config sc;
	int lfd;
};

static void *
once_thread(void *arg)
{
	struct once_server *os = arg;

	(void)serve_run(&os->sc, os->lfd, &stop_flag);
	return NULL;
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
	else if (strcmp(key, "listen_socket") == 0)
		bad = value[0] != '/' || set_string(&c->listen_socket, value);
	else if (strcmp(key, "vhsmd_socket") == 0)
		bad = value[0] != '/' || set_string(&c->vhsmd_socket, value);
	else if (strcmp(key, "vhsmd_uid") == 0)
		bad = parse_long(value, 0, 0x7fffffff, &c->vhsmd_uid);
	else if (strcmp(key, "timeout_ms") == 0)
		bad = parse_long(value, 100, 600000, &c->http.timeout_ms);
	else if (strcmp(key, "attempts") == 0) {
		bad = parse_long(value, 1, 20, &v);
		c->http.attempts = (unsigned)v;
	} else if (strcmp(key, "backoff_ms") == 0)
		bad = parse_long(value, 1, 60000, &c->http.backoff_ms);
	else if (strcmp(key, "max_backoff_ms") == 0)
		bad = parse_long(value, 1, 600000, &c->http.max_backoff_ms);
	else if (strcmp(key, "cert_table") == 0) {
		bad = strcmp(value, "always") != 0 && strcmp(value, "until-accepted") != 0;
		c->cert_table_always = strcmp(value, "always") == 0;
	} else {
		(void)snprintf(msg, msglen, "unknown key '%s'", key);
		return -1;
	}
	if (bad != 0) {
		(void)snprintf(msg, msglen, "key '%s': bad value '%.60s'", key, value);
		return -1;
	}
	return 0;
}

/*
 * Kept connections to attestd and provd.  It lives as long as the process:
 * serve_run's detached workers may still be in a request when it returns.
 */
static http_pool *pool;
static guest_pool *guests; /* like pool: kept for the life of the process */
static int table_accepted;   /* flow_config.table_accepted, shared by every flow */

/*
 * Daemon (name NULL): serve listen_socket until SIGTERM/SIGINT.  --once with
 * --vhsmd: serve it in a thread while asking vhsmd to provision `name`.
 * Returns the exit status.
 */
static int
serve_mode(struct config *c, const char *name)
{
	struct once_server os;
	struct flow_config fc;
	struct nonce_reserve *nonces = NULL; /* its thread reads fc: stopped before return */
	struct sigaction sa;
	vhsm_client *vc = NULL;
	pthread_t th;
	int r, ret = 2;

	if (c->listen_socket == NULL) {
		fprintf(stderr, "nitrided: needs listen_socket (or --listen SOCKET)\n");
		return 2;
	}
	http_global_init();
	fc.attestd_url = c->attestd_url;
	fc.provd_url = c->provd_url;
	fc.snp_spec = c->snp;
	fc.http = c->http;
	fc.http.ca_bundle = c->ca_bundle;
	if (pool == NULL && http_pool_new(&pool) != 0) {
		fprintf(stderr, "nitrided: out of memory\n");
		return 2;
	}
	fc.http.pool = pool; /* one TLS handshake per service, not three per flow */
	if (guests == NULL && guest_pool_new(c->snp, &guests) != 0) {
		fprintf(stderr, "nitrided: out of memory\n");
		return 2;
	}
	fc.guests = guests; /* the guest device (or snpsimd's socket) stays open */
	fc.table_accepted = c->cert_table_always ? NULL : &table_accepted;
	/* The daemon fetches the next flow's nonce while this one runs (one flow
	 * with --once: nothing to fetch ahead). */
	fc.nonces = NULL;
	if (name == NULL &&
	    (nonce_reserve_new(&nonces) != 0 || nonce_reserve_start(nonces, &fc) != 0)) {
		fprintf(stderr, "nitrided: cannot start the nonce thread\n");
		nonce_reserve_free(nonces);
		return 2;
	}
	fc.nonces = nonces;
	memset(&os, 0, sizeof(os));
	os.sc.socket_path = c->listen_socket;
	os.sc.vhsmd_uid = (uid_t)c->vhsmd_uid;
	os.sc.flow = &fc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	(void)sigaction(SIGTERM, &sa, NULL);
	(void)sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((os.lfd = serve_listen(c->listen_socket)) < 0) {
		nonce_reserve_free(nonces);
		return 2;
	}
	if (name == NULL) {
		fprintf(stderr, "nitrided: ready: socket %s (serving uid %ld) pid %d\n",
			c->listen_socket, c->vhsmd_uid, (int)getpid());
		sd_notify_msg("READY=1");
		ret = serve_run(&os.sc, os.lfd, &stop_flag) == 0 ? 0 : 2;
		goto out;
	}
	if (pthread_create(&th, NULL, once_thread, &os) != 0) {
		fprintf(stderr, "nitrided: cannot start the serving thread\n");
		goto out;
	}
	if ((r = vhsm_connect(c->vhsmd_socket, &vc)) != 0) {
		fprintf(stderr, "nitrided: cannot reach vhsmd at %s: %s\n",
			c->vhsmd_socket ? c->vhsmd_socket : "(default)", vhsm_strerror(r));
	} else if ((r = vhsm_provision(vc, name)) != 0) {
		fprintf(stderr, "nitrided: %s\n", vhsm_last_message()[0] ? vhsm_last_message()
									   : vhsm_strerror(r));
		ret = 1;
	} else {
		fprintf(stderr, "nitrided: %s provisioned into vhsmd\n", name);
		ret = 0;
	}
	vhsm_close(vc);
	stop_flag = true;
	(void)pthread_join(th, NULL);
out:
	close(os.lfd);
	(void)unlink(c->listen_socket);
	nonce_reserve_free(nonces);
	return ret;
}

int
main(int argc, char **argv)
{
	enum { O_CONFIG = 256, O_CHECK, O_ONCE, O_PROVISION, O_VERSION, O_TEE, O_OUT, O_ATTESTD,
	       O_PROVD, O_SNP, O_CA, O_LISTEN, O_VHSMD, O_VHSMD_UID };
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
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "vhsmd", required_argument, NULL, O_VHSMD },
		{ "vhsmd-uid", required_argument, NULL, O_VHSMD_UID },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config c = {
		.http = { .timeout_ms = 10000, .attempts = 4, .backoff_ms = 200,
			  .max_backoff_ms = 5000, .max_body = 1u << 20 },
	};
	const char *config_path = NULL, *name = NULL, *tee_path = NULL, *out_path = NULL;
	const char *o_attestd = NULL, *o_provd = NULL, *o_snp = NULL, *o_ca = NULL;
	const char *o_listen = NULL, *o_vhsmd = NULL;
	long o_uid = -1;
	bool check = false, once = false;
	long version = 0;
	struct flow_config fc;
	uint8_t *tee = NULL;
	size_t tee_len = 0;
	char *jwe = NULL, err[FLOW_ERR_MAX];
	enum flow_step step;
	int ch, r, ret = 2;

	/* Tokens (bearer credentials until they expire) pass through jansson:
	 * its blocks are wiped when freed. */
	json_set_alloc_funcs(wipemem_malloc, wipemem_free);
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
		case O_LISTEN: o_listen = optarg; break;
		case O_VHSMD: o_vhsmd = optarg; break;
		case O_VHSMD_UID:
			if (parse_long(optarg, 0, 0x7fffffff, &o_uid) != 0) {
				fprintf(stderr, "nitrided: --vhsmd-uid '%s': expected a uid\n", optarg);
				goto out;
			}
			break;
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
	    (o_ca != NULL && set_string(&c.ca_bundle, o_ca) != 0) ||
	    (o_listen != NULL && set_string(&c.listen_socket, o_listen) != 0) ||
	    (o_vhsmd != NULL && set_string(&c.vhsmd_socket, o_vhsmd) != 0)) {
		fprintf(stderr, "nitrided: out of memory\n");
		goto out;
	}
	if (o_uid >= 0)
		c.vhsmd_uid = o_uid;
	if (c.attestd_url != NULL && c.provd_url != NULL && (!once || (o_vhsmd != NULL && name != NULL))) {
		ret = serve_mode(&c, once ? name : NULL);
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
	fc.guests = NULL;
	fc.nonces = NULL;
	fc.table_accepted = c.cert_table_always ? NULL : &table_accepted;
	fc.http = c.http;
	fc.http.ca_bundle = c.ca_bundle;
	step = flow_provision(&fc, name, (unsigned long)version, (const char *)tee, &jwe, NULL, err,
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
