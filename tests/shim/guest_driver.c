/*
 * guest_driver — drives libsnp's guest API for the integration tests.
 *
 *   guest_driver SPEC info
 *   guest_driver SPEC report|ext-report [--data HEX128] [--vmpl N] [--out FILE]
 *   guest_driver SPEC key [--root vcek|vmrk] [--fields N] [--vmpl N] [--svn N] [--tcb N]
 *
 * SPEC "-" means NULL (NITRIDE_SNP, else auto).  Prints one JSON object on
 * stdout: {"ok":true,...} and exit 0, or {"ok":false,"status":CLASS,
 * "code":N,"detail":TEXT} and exit 2 (exit 1 on usage errors).  Reports are
 * parsed with snp_report_parse and their fields echoed; extended reports'
 * tables are parsed with snp_certtable_parse.  The key is printed as hex
 * (a test tool: Nitride's daemons never print keys).  --out writes the
 * report followed by the certificate table, the layout `nitride report
 * verify --report` reads.
 */
#include <nitride/snp.h>

#include "common/hex.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
usage(void)
{
	fprintf(stderr, "usage: guest_driver SPEC info|report|ext-report|key [options]\n");
	return 1;
}

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end = NULL;
	unsigned long long x;

	if (s == NULL || s[0] == '\0' || s[0] == '-')
		return -1;
	errno = 0;
	x = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*v = x;
	return 0;
}

/* A JSON string literal of s (printable ASCII; others as \u00XX). */
static void
json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
json_hex(const uint8_t *p, size_t n)
{
	char *h = malloc(2 * n + 1);

	if (h == NULL) {
		printf("null");
		return;
	}
	hex_encode(p, n, h);
	printf("\"%s\"", h);
	free(h);
}

static const char *
kind_name(snp_guest_kind k)
{
	switch (k) {
	case SNP_GUEST_SEV_GUEST: return "sev-guest";
	case SNP_GUEST_TSM: return "tsm";
	case SNP_GUEST_SIM: return "sim";
	default: return "unknown";
	}
}

static int
fail(const snp_error *err)
{
	printf("{\"ok\":false,\"status\":\"%s\",\"code\":%d,\"detail\":",
	       snp_status_class(err->status), err->status);
	json_str(err->detail);
	printf("}\n");
	return 2;
}

/* Write report ‖ certs to path.  Returns 0 or -1. */
static int
write_out(const char *path, const uint8_t *report, size_t rlen, const uint8_t *certs,
	  size_t clen)
{
	FILE *f = fopen(path, "wbe");
	int r = 0;

	if (f == NULL)
		return -1;
	if (fwrite(report, 1, rlen, f) != rlen || (clen > 0 && fwrite(certs, 1, clen, f) != clen))
		r = -1;
	if (fclose(f) != 0)
		r = -1;
	return r;
}

static void
print_certs(const uint8_t *certs, size_t len)
{
	snp_certtable *t = NULL;
	snp_error err;

	printf(",\"certs_len\":%zu", len);
	if (certs == NULL) {
		printf(",\"certs_entries\":0");
		return;
	}
	if (snp_certtable_parse(certs, len, &t, &err) != SNP_OK) {
		printf(",\"certs_error\":");
		json_str(err.detail);
		return;
	}
	printf(",\"certs_entries\":%zu,\"certs_kinds\":[", snp_certtable_count(t));
	for (size_t i = 0; i < snp_certtable_count(t); i++) {
		static const char *const names[] = { "other", "ark", "ask", "vcek", "vlek", "crl" };
		snp_cert_kind kind = SNP_CERT_KIND_OTHER;
		const uint8_t *guid = NULL, *blob = NULL;
		size_t blen = 0;

		if (snp_certtable_entry(t, i, &kind, &guid, &blob, &blen) != SNP_OK)
			continue;
		printf("%s\"%s\"", i ? "," : "",
		       (size_t)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?");
	}
	printf("]");
	snp_certtable_free(t);
}

int
main(int argc, char **argv)
{
	snp_guest *g = NULL;
	snp_report *rep = NULL;
	snp_error err;
	snp_key_request kreq = { .root_key = SNP_KEY_ROOT_VCEK };
	uint8_t data[SNP_REPORT_DATA_LEN], key[SNP_DERIVED_KEY_LEN];
	uint8_t *report = NULL, *certs = NULL;
	size_t report_len = 0, certs_len = 0;
	uint64_t vmpl = 0, v;
	const char *spec, *cmd, *out_path = NULL;
	bool ext;
	int rc = 1, i;

	memset(&err, 0, sizeof(err));
	if (argc < 3)
		return usage();
	spec = strcmp(argv[1], "-") == 0 ? NULL : argv[1];
	cmd = argv[2];
	for (i = 0; i < (int)sizeof(data); i++)
		data[i] = (uint8_t)i;
	for (i = 3; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (val == NULL)
			return usage();
		i++;
		if (strcmp(opt, "--data") == 0) {
			if (hex_decode(val, data, sizeof(data)) != 0)
				return usage();
		} else if (strcmp(opt, "--out") == 0) {
			out_path = val;
		} else if (strcmp(opt, "--vmpl") == 0) {
			if (parse_u64(val, &vmpl) != 0 || vmpl > UINT32_MAX)
				return usage();
			kreq.vmpl = (uint32_t)vmpl;
		} else if (strcmp(opt, "--root") == 0) {
			if (strcmp(val, "vcek") == 0)
				kreq.root_key = SNP_KEY_ROOT_VCEK;
			else if (strcmp(val, "vmrk") == 0)
				kreq.root_key = SNP_KEY_ROOT_VMRK;
			else
				return usage();
		} else if (strcmp(opt, "--fields") == 0) {
			if (parse_u64(val, &kreq.guest_field_select) != 0)
				return usage();
		} else if (strcmp(opt, "--svn") == 0) {
			if (parse_u64(val, &v) != 0 || v > UINT32_MAX)
				return usage();
			kreq.guest_svn = (uint32_t)v;
		} else if (strcmp(opt, "--tcb") == 0) {
			if (parse_u64(val, &kreq.tcb_version) != 0)
				return usage();
		} else {
			return usage();
		}
	}

	if (snp_guest_open(spec, &g, &err) != SNP_OK) {
		rc = fail(&err);
		goto out;
	}
	if (strcmp(cmd, "info") == 0) {
		printf("{\"ok\":true,\"kind\":\"%s\",\"spec\":", kind_name(snp_guest_get_kind(g)));
		json_str(snp_guest_spec(g));
		printf("}\n");
		rc = 0;
	} else if (strcmp(cmd, "report") == 0 || strcmp(cmd, "ext-report") == 0) {
		ext = strcmp(cmd, "ext-report") == 0;
		if (snp_guest_get_report(g, data, (uint32_t)vmpl, &report, &report_len,
					 ext ? &certs : NULL, ext ? &certs_len : NULL,
					 &err) != SNP_OK) {
			rc = fail(&err);
			goto out;
		}
		if (out_path != NULL &&
		    write_out(out_path, report, report_len, certs, certs_len) != 0) {
			fprintf(stderr, "guest_driver: cannot write %s\n", out_path);
			rc = 1;
			goto out;
		}
		if (snp_report_parse(report, report_len, &rep, &err) != SNP_OK) {
			rc = fail(&err);
			goto out;
		}
		printf("{\"ok\":true,\"kind\":\"%s\",\"report_len\":%zu,\"version\":%" PRIu32
		       ",\"vmpl\":%" PRIu32 ",\"report_data\":",
		       kind_name(snp_guest_get_kind(g)), report_len, snp_report_version(rep),
		       snp_report_vmpl(rep));
		json_hex(snp_report_report_data(rep), SNP_REPORT_DATA_LEN);
		printf(",\"measurement\":");
		json_hex(snp_report_measurement(rep), SNP_MEASUREMENT_LEN);
		printf(",\"report\":");
		json_hex(report, report_len);
		if (ext)
			print_certs(certs, certs_len);
		printf("}\n");
		rc = 0;
	} else if (strcmp(cmd, "key") == 0) {
		if (snp_guest_derive_key(g, &kreq, key, &err) != SNP_OK) {
			rc = fail(&err);
			goto out;
		}
		printf("{\"ok\":true,\"kind\":\"%s\",\"key\":", kind_name(snp_guest_get_kind(g)));
		json_hex(key, sizeof(key));
		printf("}\n");
		OPENSSL_cleanse(key, sizeof(key));
		rc = 0;
	} else {
		rc = usage();
	}
out:
	snp_report_free(rep);
	free(report);
	free(certs);
	snp_guest_close(g);
	return rc;
}
