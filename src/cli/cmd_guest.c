/*
 * Guest-side commands: nitride report get, nitride key derive.
 * Both talk to the SNP firmware through libsnp's guest backends.
 */
#include "cli/cli.h"

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/hex.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char get_usage[] =
	"usage: nitride report get [--data HEX | --data-file FILE] [--vmpl N] [--ext]\n"
	"                          -o FILE [--certs-out FILE] [--snp SPEC]\n"
	"\n"
	"Ask the SEV-SNP firmware for an attestation report.\n"
	"  --data HEX        REPORT_DATA, up to 64 bytes in hex (zero-padded)\n"
	"  --data-file FILE  REPORT_DATA from a file of at most 64 bytes (zero-padded)\n"
	"  --vmpl N          VMPL to report at, 0-3 (default 0)\n"
	"  --ext             extended report: also fetch the host's certificate table\n"
	"  -o, --out FILE    write the 1184-byte report here (with --ext and no\n"
	"                    --certs-out, the table follows the report in FILE)\n"
	"  --certs-out FILE  write the certificate table here\n"
	"  --snp SPEC        backend: sev-guest[:DEV], tsm[:ROOT] or sim:SOCKET\n"
	"                    (default $NITRIDE_SNP, else tsm, then sev-guest)\n";

static const char derive_usage[] =
	"usage: nitride key derive [--root vcek|vmrk] [--fields F,…] [--svn N]\n"
	"                          [--tcb HEX] [--vmpl N] [--snp SPEC]\n"
	"\n"
	"Derive a 32-byte key from the SEV-SNP firmware (MSG_KEY_REQ) and print it\n"
	"in hex.  For diagnosis only: Nitride's daemons never print keys.\n"
	"  --root vcek|vmrk  root key (default vcek)\n"
	"  --fields LIST     guest fields mixed in: policy, image_id, family_id,\n"
	"                    measurement, guest_svn, tcb_version (comma-separated)\n"
	"  --svn N           guest SVN to mix in (must not exceed the launch SVN)\n"
	"  --tcb HEX         TCB_VERSION to mix in (must not exceed COMMITTED_TCB)\n"
	"  --vmpl N          VMPL (default 0; not below the guest's)\n"
	"  --snp SPEC        backend, as for 'report get'\n";

/* Parse a decimal or 0x-hex unsigned number no larger than max. */
int
cli_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end = NULL;

	errno = 0;
	if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
		goto bad;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	fprintf(stderr, "nitride: %s '%s': expected a number from 0 to %llu\n", what,
		s != NULL ? s : "", (unsigned long long)max);
	return -1;
}

static int
open_guest(const char *spec, snp_guest **g)
{
	snp_error err = { 0 };

	if (snp_guest_open(spec, g, &err) != SNP_OK) {
		fprintf(stderr, "nitride: %s\n", err.detail);
		return -1;
	}
	return 0;
}

static int
write_output(const char *what, const char *path, const uint8_t *a, size_t alen, const uint8_t *b,
	     size_t blen)
{
	uint8_t *buf = NULL;
	int r;

	if (alen > SIZE_MAX - blen || (buf = malloc(alen + blen + 1)) == NULL) {
		fprintf(stderr, "nitride: out of memory\n");
		return -1;
	}
	memcpy(buf, a, alen);
	if (blen > 0)
		memcpy(buf + alen, b, blen);
	r = atomic_write_file(path, buf, alen + blen, 0644);
	free(buf);
	if (r != 0) {
		fprintf(stderr, "nitride: cannot write %s %s: %s\n", what, path, strerror(-r));
		return -1;
	}
	return 0;
}

int
cmd_report_get(int argc, char **argv)
{
	enum { O_DATA = 256, O_DATA_FILE, O_VMPL, O_EXT, O_CERTS_OUT, O_SNP };
	static const struct option opts[] = {
		{ "data", required_argument, NULL, O_DATA },
		{ "data-file", required_argument, NULL, O_DATA_FILE },
		{ "vmpl", required_argument, NULL, O_VMPL },
		{ "ext", no_argument, NULL, O_EXT },
		{ "out", required_argument, NULL, 'o' },
		{ "certs-out", required_argument, NULL, O_CERTS_OUT },
		{ "snp", required_argument, NULL, O_SNP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *data_hex = NULL, *data_file = NULL, *out = NULL, *certs_out = NULL, *spec = NULL;
	uint8_t data[SNP_REPORT_DATA_LEN] = { 0 };
	uint8_t *report = NULL, *certs = NULL, *file = NULL;
	size_t report_len = 0, certs_len = 0, file_len = 0;
	snp_error err = { 0 };
	snp_guest *g = NULL;
	uint64_t vmpl = 0;
	bool ext = false;
	int c, ret = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case O_DATA: data_hex = optarg; break;
		case O_DATA_FILE: data_file = optarg; break;
		case O_VMPL:
			if (cli_parse_u64("--vmpl", optarg, 3, &vmpl) != 0)
				goto out;
			break;
		case O_EXT: ext = true; break;
		case 'o': out = optarg; break;
		case O_CERTS_OUT: certs_out = optarg; break;
		case O_SNP: spec = optarg; break;
		case 'h': fputs(get_usage, stdout); ret = EXIT_OK; goto out;
		default: fputs(get_usage, stderr); goto out;
		}
	}
	if (optind != argc || out == NULL || (data_hex != NULL && data_file != NULL) ||
	    (certs_out != NULL && !ext)) {
		fprintf(stderr, "nitride: report get needs -o FILE, at most one of --data/--data-file, and --ext for --certs-out\n");
		fputs(get_usage, stderr);
		goto out;
	}
	if (data_hex != NULL) {
		size_t n = strlen(data_hex);

		if (n % 2 != 0 || n > 2 * SNP_REPORT_DATA_LEN || hex_decode(data_hex, data, n / 2) != 0) {
			fprintf(stderr, "nitride: --data: expected up to 128 hex digits (64 bytes)\n");
			goto out;
		}
	}
	if (data_file != NULL) {
		int r = file_read_all(data_file, SNP_REPORT_DATA_LEN, &file, &file_len);

		if (r != 0) {
			fprintf(stderr, "nitride: --data-file %s: %s\n", data_file,
				r == -EFBIG ? "more than 64 bytes" : strerror(-r));
			goto out;
		}
		memcpy(data, file, file_len);
	}
	if (open_guest(spec, &g) != 0)
		goto out;
	if (snp_guest_get_report(g, data, (uint32_t)vmpl, &report, &report_len,
				 ext ? &certs : NULL, ext ? &certs_len : NULL, &err) != SNP_OK) {
		fprintf(stderr, "nitride: report get: %s\n", err.detail);
		ret = EXIT_NEGATIVE;
		goto out;
	}
	if (certs_out != NULL) {
		if (write_output("report", out, report, report_len, NULL, 0) != 0 ||
		    write_output("certificate table", certs_out, certs, certs_len, NULL, 0) != 0)
			goto out;
	} else if (write_output("report", out, report, report_len, certs, certs_len) != 0) {
		goto out;
	}
	fprintf(stderr, "nitride: wrote %s (%zu bytes report%s) from %s\n", out, report_len,
		ext ? (certs_len > 0 ? ", certificate table" : ", no certificate table") : "",
		snp_guest_spec(g));
	ret = EXIT_OK;
out:
	snp_guest_close(g);
	free(report);
	free(certs);
	free(file);
	return ret;
}

static const struct {
	const char *name;
	uint64_t bit;
} key_fields[] = {
	{ "policy", SNP_KEY_FIELD_POLICY },
	{ "image_id", SNP_KEY_FIELD_IMAGE_ID },
	{ "family_id", SNP_KEY_FIELD_FAMILY_ID },
	{ "measurement", SNP_KEY_FIELD_MEASUREMENT },
	{ "guest_svn", SNP_KEY_FIELD_GUEST_SVN },
	{ "tcb_version", SNP_KEY_FIELD_TCB_VERSION },
};

/* "measurement,policy" → bits.  Returns 0, or -1 naming the unknown field. */
static int
parse_fields(const char *list, uint64_t *out)
{
	const char *p = list;
	uint64_t bits = 0;

	while (*p != '\0') {
		size_t len = strcspn(p, ","), i;
		bool found = false;

		for (i = 0; i < sizeof(key_fields) / sizeof(key_fields[0]); i++) {
			if (strlen(key_fields[i].name) == len && strncmp(p, key_fields[i].name, len) == 0) {
				bits |= key_fields[i].bit;
				found = true;
			}
		}
		if (!found) {
			fprintf(stderr, "nitride: --fields: unknown field '%.*s' (policy, image_id, family_id, measurement, guest_svn, tcb_version)\n",
				(int)len, p);
			return -1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	*out = bits;
	return 0;
}

static int
key_derive(int argc, char **argv)
{
	enum { O_ROOT = 256, O_FIELDS, O_SVN, O_TCB, O_VMPL, O_SNP };
	static const struct option opts[] = {
		{ "root", required_argument, NULL, O_ROOT },
		{ "fields", required_argument, NULL, O_FIELDS },
		{ "svn", required_argument, NULL, O_SVN },
		{ "tcb", required_argument, NULL, O_TCB },
		{ "vmpl", required_argument, NULL, O_VMPL },
		{ "snp", required_argument, NULL, O_SNP },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	snp_key_request req = { .root_key = SNP_KEY_ROOT_VCEK };
	uint8_t key[SNP_DERIVED_KEY_LEN];
	char hex[2 * SNP_DERIVED_KEY_LEN + 1];
	const char *spec = NULL;
	snp_error err = { 0 };
	snp_guest *g = NULL;
	uint64_t v;
	int c, ret = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_ROOT:
			if (strcmp(optarg, "vcek") == 0) {
				req.root_key = SNP_KEY_ROOT_VCEK;
			} else if (strcmp(optarg, "vmrk") == 0) {
				req.root_key = SNP_KEY_ROOT_VMRK;
			} else {
				fprintf(stderr, "nitride: --root '%s': expected vcek or vmrk\n", optarg);
				goto out;
			}
			break;
		case O_FIELDS:
			if (parse_fields(optarg, &req.guest_field_select) != 0)
				goto out;
			break;
		case O_SVN:
			if (cli_parse_u64("--svn", optarg, UINT32_MAX, &v) != 0)
				goto out;
			req.guest_svn = (uint32_t)v;
			break;
		case O_TCB:
			if (cli_parse_u64("--tcb", optarg, UINT64_MAX, &req.tcb_version) != 0)
				goto out;
			break;
		case O_VMPL:
			if (cli_parse_u64("--vmpl", optarg, 3, &v) != 0)
				goto out;
			req.vmpl = (uint32_t)v;
			break;
		case O_SNP: spec = optarg; break;
		case 'h': fputs(derive_usage, stdout); ret = EXIT_OK; goto out;
		default: fputs(derive_usage, stderr); goto out;
		}
	}
	if (optind != argc) {
		fputs(derive_usage, stderr);
		goto out;
	}
	if (open_guest(spec, &g) != 0)
		goto out;
	if (snp_guest_derive_key(g, &req, key, &err) != SNP_OK) {
		fprintf(stderr, "nitride: key derive: %s\n", err.detail);
		ret = EXIT_NEGATIVE;
		goto out;
	}
	hex_encode(key, sizeof(key), hex);
	printf("%s\n", hex);
	ret = fflush(stdout) == 0 ? EXIT_OK : EXIT_USAGE;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(hex, sizeof(hex));
	snp_guest_close(g);
	return ret;
}

int
cmd_key(int argc, char **argv)
{
	static const char usage[] = "usage: nitride key derive [options]   (nitride key derive --help)\n";

	if (argc >= 2 && strcmp(argv[1], "derive") == 0)
		return key_derive(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	fputs(usage, stderr);
	return EXIT_USAGE;
}
