/*
 * nitride report show | verify
 */
#include "cli/cli.h"

#include "common/fileio.h"
#include "common/hex.h"
#include "common/timefmt.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char show_usage[] =
	"usage: nitride report show FILE [--json] [--product milan|genoa|turin]\n"
	"\n"
	"Print every field of the attestation report in FILE (1184 bytes, or a\n"
	"report followed by its certificate table).  TCB values are decoded for the\n"
	"product named by the report's CPUID (version 3 and later), else --product,\n"
	"else Milan's layout.\n"
	"  --json       machine-readable output (docs/snp.md lists the fields)\n"
	"  --product P  product whose TCB layout applies to a version 2 report\n";

static const char verify_usage[] =
	"usage: nitride report verify --report FILE [--cert FILE] [--certs FILE]\n"
	"                             [--roots DIR] [--product P] [--at RFC3339]\n"
	"                             [--crl FILE] [--require-crl] [--pin-roots] [--json]\n"
	"\n"
	"Verify an attestation report: the signer certificate (VCEK or VLEK) must\n"
	"chain to AMD's pinned root key for the product, the report's signature must\n"
	"verify, and REPORTED_TCB and CHIP_ID must match the certificate.\n"
	"  --report FILE   the report; bytes after the first 1184 are read as its\n"
	"                  certificate table when --certs is not given\n"
	"  --cert FILE     the VCEK or VLEK (DER or PEM); default: from the table\n"
	"  --certs FILE    an extended-report certificate table (ARK, ASK, VCEK, ...)\n"
	"  --roots DIR     ark_<product>.pem, ask_<product>.pem, asvk_<product>.pem\n"
	"  --pin-roots     also trust the ARK keys found in --roots (a simulator's or a\n"
	"                  private test hierarchy's); AMD's genuine keys are always pinned\n"
	"  --product P     milan, genoa or turin (default: from the report, else the cert)\n"
	"  --at TIME       check validity at this RFC 3339 instant (default: now)\n"
	"  --crl FILE      an ARK-signed CRL (DER or PEM)\n"
	"  --require-crl   reject unless a current CRL covers the chain\n"
	"  --json          machine-readable verdict\n"
	"Exit status: 0 verified, 1 rejected, 2 usage or I/O error.\n";

/* Read a file for the CLI; prints the error and returns -1 on failure. */
static int
read_input(const char *what, const char *path, uint8_t **buf, size_t *len)
{
	int r = file_read_all(path, CLI_FILE_MAX, buf, len);

	if (r == 0)
		return 0;
	if (r == -EFBIG)
		fprintf(stderr, "nitride: %s %s: larger than %u bytes\n", what, path, CLI_FILE_MAX);
	else
		fprintf(stderr, "nitride: %s %s: %s\n", what, path, strerror(-r));
	return -1;
}

static void
print_tcb(const char *name, uint64_t raw, snp_product product)
{
	snp_tcb t;

	snp_tcb_decode(raw, product, &t);
	printf("%-20s 0x%016" PRIx64 " (", name, raw);
	if (t.has_fmc)
		printf("fmc %u, ", t.fmc);
	printf("bootloader %u, tee %u, snp %u, microcode %u)\n", t.bootloader, t.tee, t.snp,
	       t.microcode);
}

static void
print_hex(const char *name, const uint8_t *p, size_t n)
{
	char buf[2 * SNP_SIG_COMPONENT_LEN + 1];

	hex_encode(p, n, buf);
	printf("%-20s %s\n", name, buf);
}

static void
print_text(const snp_report *r, snp_product product)
{
	printf("%-20s %u\n", "version", snp_report_version(r));
	printf("%-20s %s\n", "product", snp_product_name(product));
	printf("%-20s %u\n", "guest_svn", snp_report_guest_svn(r));
	printf("%-20s 0x%" PRIx64 "\n", "policy", snp_report_policy(r));
	print_hex("family_id", snp_report_family_id(r), SNP_ID_LEN);
	print_hex("image_id", snp_report_image_id(r), SNP_ID_LEN);
	printf("%-20s %u\n", "vmpl", snp_report_vmpl(r));
	printf("%-20s %u\n", "signature_algo", snp_report_signature_algo(r));
	print_tcb("current_tcb", snp_report_current_tcb(r), product);
	printf("%-20s 0x%" PRIx64 "\n", "platform_info", snp_report_platform_info(r));
	printf("%-20s 0x%x (signing key %u)\n", "key_info", snp_report_key_info(r),
	       snp_report_signing_key(r));
	print_hex("report_data", snp_report_report_data(r), SNP_REPORT_DATA_LEN);
	print_hex("measurement", snp_report_measurement(r), SNP_MEASUREMENT_LEN);
	print_hex("host_data", snp_report_host_data(r), SNP_HOST_DATA_LEN);
	print_hex("id_key_digest", snp_report_id_key_digest(r), SNP_KEY_DIGEST_LEN);
	print_hex("author_key_digest", snp_report_author_key_digest(r), SNP_KEY_DIGEST_LEN);
	print_hex("report_id", snp_report_report_id(r), SNP_REPORT_ID_LEN);
	print_hex("report_id_ma", snp_report_report_id_ma(r), SNP_REPORT_ID_LEN);
	print_tcb("reported_tcb", snp_report_reported_tcb(r), product);
	printf("%-20s 0x%02x 0x%02x 0x%02x\n", "cpuid fam/mod/step", snp_report_cpuid_fam_id(r),
	       snp_report_cpuid_mod_id(r), snp_report_cpuid_step(r));
	print_hex("chip_id", snp_report_chip_id(r), SNP_CHIP_ID_LEN);
	print_tcb("committed_tcb", snp_report_committed_tcb(r), product);
	printf("%-20s %u.%u.%u\n", "current firmware", snp_report_current_major(r),
	       snp_report_current_minor(r), snp_report_current_build(r));
	printf("%-20s %u.%u.%u\n", "committed firmware", snp_report_committed_major(r),
	       snp_report_committed_minor(r), snp_report_committed_build(r));
	print_tcb("launch_tcb", snp_report_launch_tcb(r), product);
	printf("%-20s 0x%" PRIx64 "\n", "launch_mit_vector", snp_report_launch_mit_vector(r));
	printf("%-20s 0x%" PRIx64 "\n", "current_mit_vector", snp_report_current_mit_vector(r));
	print_hex("signature_r", snp_report_signature_r(r), SNP_SIG_COMPONENT_LEN);
	print_hex("signature_s", snp_report_signature_s(r), SNP_SIG_COMPONENT_LEN);
}

static int
parse_product(const char *s, snp_product *out)
{
	*out = snp_product_from_name(s);
	if (*out == SNP_PRODUCT_UNKNOWN) {
		fprintf(stderr, "nitride: --product '%s': expected milan, genoa or turin\n", s);
		return -1;
	}
	return 0;
}

static int
report_show(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "product", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	snp_product product = SNP_PRODUCT_UNKNOWN;
	snp_report *report = NULL;
	snp_error err = { 0 };
	json_t *json = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	bool as_json = false;
	int c, ret = EXIT_USAGE;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j': as_json = true; break;
		case 'p':
			if (parse_product(optarg, &product) != 0)
				goto out;
			break;
		case 'h': fputs(show_usage, stdout); ret = EXIT_OK; goto out;
		default: fputs(show_usage, stderr); goto out;
		}
	}
	if (optind != argc - 1) {
		fputs(show_usage, stderr);
		goto out;
	}
	if (read_input("report", argv[optind], &buf, &len) != 0)
		goto out;
	if (snp_report_parse(buf, len, &report, &err) != SNP_OK) {
		fprintf(stderr, "nitride: report %s: %s\n", argv[optind], err.detail);
		ret = EXIT_NEGATIVE;
		goto out;
	}
	if (snp_report_cpuid_product(report) != SNP_PRODUCT_UNKNOWN)
		product = snp_report_cpuid_product(report);
	else if (product == SNP_PRODUCT_UNKNOWN)
		product = SNP_PRODUCT_MILAN;
	if (as_json) {
		if ((json = report_to_json(report, product)) == NULL || cli_print_json(json) != 0) {
			fprintf(stderr, "nitride: cannot write JSON\n");
			goto out;
		}
	} else {
		print_text(report, product);
	}
	ret = EXIT_OK;
out:
	json_decref(json);
	snp_report_free(report);
	free(buf);
	return ret;
}

struct verify_args {
	const char *report, *cert, *certs, *roots, *crl, *at_text;
	snp_verify_opts opts;
	bool json;
	bool pin_roots;
};

/* Outcome of verification, for the text and JSON printers. */
struct verdict {
	int status;             /* SNP_OK or a rejection class */
	snp_error err;
	snp_verify_result result;
	int report_signing_key; /* KEY_INFO.SIGNING_KEY once the report parsed, else -1 */
};

static json_t *
signing_key_json(int key)
{
	if (key == (int)SNP_SIGNING_KEY_VCEK)
		return json_string("vcek");
	if (key == (int)SNP_SIGNING_KEY_VLEK)
		return json_string("vlek");
	if (key == (int)SNP_SIGNING_KEY_NONE)
		return json_string("none");
	return json_null();
}

static int
print_verdict(const struct verify_args *a, const struct verdict *v, time_t at)
{
	char when[RFC3339_LEN];
	json_t *o = NULL;
	int r = -1;

	rfc3339_format(at, when);
	if (!a->json) {
		if (v->status == SNP_OK)
			printf("verified: %s report signed by its %s, which chains to a pinned ARK, at %s\n",
			       snp_product_name(v->result.product),
			       v->result.signing_key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", when);
		else
			fprintf(stderr, "rejected (%s): %s\n", snp_status_class(v->status), v->err.detail);
		return 0;
	}
	if ((o = json_object()) == NULL)
		return -1;
	if (json_object_set_new(o, "verified", json_boolean(v->status == SNP_OK)) != 0 ||
	    json_object_set_new(o, "reason", v->status == SNP_OK ? json_null() :
				json_string(snp_status_class(v->status))) != 0 ||
	    json_object_set_new(o, "detail", json_string(v->status == SNP_OK ? "" : v->err.detail)) != 0 ||
	    json_object_set_new(o, "at", json_string(when)) != 0)
		goto out;
	if (v->status == SNP_OK &&
	    (json_object_set_new(o, "product", json_string(snp_product_name(v->result.product))) != 0 ||
	     json_object_set_new(o, "signing_key", signing_key_json((int)v->result.signing_key)) != 0 ||
	     json_object_set_new(o, "reported_tcb", tcb_to_json(v->result.reported_tcb.raw, v->result.product)) != 0))
		goto out;
	/* On a rejection, say what is known: the product asked for, the key the report names. */
	if (v->status != SNP_OK &&
	    (json_object_set_new(o, "product", a->opts.product != SNP_PRODUCT_UNKNOWN ?
				json_string(snp_product_name(a->opts.product)) : json_null()) != 0 ||
	     json_object_set_new(o, "signing_key", signing_key_json(v->report_signing_key)) != 0))
		goto out;
	r = cli_print_json(o);
out:
	json_decref(o);
	return r;
}

/*
 * Pin the public key of every ark_<product>.pem in `dir`: an explicit act of
 * trust by the operator (the simulator's roots are never trusted otherwise).
 */
static int
pin_roots_in(snp_trust *trust, const char *dir)
{
	int p, pinned = 0, ret = -1;

	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		snp_error err = { 0 };
		snp_cert *ark = NULL;
		uint8_t *buf = NULL, spki[32];
		size_t len = 0;
		char path[4096];
		int r;

		if ((size_t)snprintf(path, sizeof(path), "%s/ark_%s.pem", dir,
				     snp_product_name((snp_product)p)) >= sizeof(path)) {
			fprintf(stderr, "nitride: --roots %s: path too long\n", dir);
			goto out;
		}
		if ((r = file_read_all(path, CLI_FILE_MAX, &buf, &len)) == -ENOENT)
			continue;
		if (r != 0) {
			fprintf(stderr, "nitride: %s: %s\n", path, strerror(-r));
			goto out;
		}
		r = snp_cert_parse(buf, len, &ark, &err);
		free(buf);
		if (r == SNP_OK && (snp_cert_get_role(ark) != SNP_ROLE_ARK ||
				    snp_cert_product(ark) != (snp_product)p)) {
			(void)snprintf(err.detail, sizeof(err.detail), "not an ARK for %s",
				       snp_product_name((snp_product)p));
			r = SNP_E_CHAIN;
		}
		if (r == SNP_OK) {
			snp_cert_spki_sha256(ark, spki);
			r = snp_trust_pin(trust, (snp_product)p, spki);
		}
		snp_cert_free(ark);
		if (r != SNP_OK) {
			fprintf(stderr, "nitride: --pin-roots %s: %s\n", path, err.detail);
			goto out;
		}
		pinned++;
	}
	if (pinned == 0) {
		fprintf(stderr, "nitride: --pin-roots: no ark_<product>.pem in %s\n", dir);
		goto out;
	}
	ret = 0;
out:
	return ret;
}

/*
 * Load everything and verify.  Returns EXIT_USAGE for problems with the
 * command or its trust configuration (already printed); otherwise fills `v`
 * with the verdict on the evidence and returns EXIT_OK.
 */
static int
run_verify(struct verify_args *a, struct verdict *v)
{
	uint8_t *report_buf = NULL, *cert_buf = NULL, *table_buf = NULL, *crl_buf = NULL;
	size_t report_len = 0, cert_len = 0, table_len = 0, crl_len = 0;
	const uint8_t *table = NULL, *blob = NULL;
	size_t table_bytes = 0, blob_len = 0;
	snp_certtable *certtable = NULL;
	snp_report *report = NULL;
	snp_cert *signer = NULL, *extra = NULL;
	snp_trust *trust = NULL;
	snp_error err = { 0 };
	int ret = EXIT_USAGE;
	size_t i;

	v->status = SNP_OK;
	v->report_signing_key = -1;
	if (read_input("report", a->report, &report_buf, &report_len) != 0 ||
	    (a->cert != NULL && read_input("certificate", a->cert, &cert_buf, &cert_len) != 0) ||
	    (a->certs != NULL && read_input("certificate table", a->certs, &table_buf, &table_len) != 0) ||
	    (a->crl != NULL && read_input("CRL", a->crl, &crl_buf, &crl_len) != 0))
		goto out;
	if (snp_trust_new(&trust) != SNP_OK) {
		fprintf(stderr, "nitride: out of memory\n");
		goto out;
	}
	if (a->pin_roots && pin_roots_in(trust, a->roots) != 0)
		goto out;
	if (a->roots != NULL && snp_trust_load_dir(trust, a->roots, &err) != SNP_OK) {
		fprintf(stderr, "nitride: --roots %s: %s\n", a->roots, err.detail);
		goto out;
	}
	ret = EXIT_OK; /* from here on, failures are verdicts on the evidence */

	if ((v->status = snp_report_parse(report_buf, report_len, &report, &v->err)) != SNP_OK)
		goto out;
	v->report_signing_key = (int)snp_report_signing_key(report);
	if (table_buf != NULL) {
		table = table_buf;
		table_bytes = table_len;
	} else if (report_len > SNP_REPORT_SIZE) {
		table = report_buf + SNP_REPORT_SIZE;
		table_bytes = report_len - SNP_REPORT_SIZE;
	}
	if (table != NULL &&
	    (v->status = snp_certtable_parse(table, table_bytes, &certtable, &v->err)) != SNP_OK)
		goto out;
	/* The table's ARK and ASK/ASVK are only candidates: snp_trust_add_cert
	 * accepts them only if they chain to a pinned key. */
	for (i = 0; certtable != NULL && i < snp_certtable_count(certtable); i++) {
		snp_cert_kind kind;
		const uint8_t *guid;

		if (snp_certtable_entry(certtable, i, &kind, &guid, &blob, &blob_len) != SNP_OK ||
		    (kind != SNP_CERT_KIND_ARK && kind != SNP_CERT_KIND_ASK))
			continue;
		if ((v->status = snp_cert_parse(blob, blob_len, &extra, &v->err)) != SNP_OK ||
		    (v->status = snp_trust_add_cert(trust, extra, &v->err)) != SNP_OK)
			goto out;
		snp_cert_free(extra);
		extra = NULL;
	}
	if (crl_buf != NULL && (v->status = snp_trust_add_crl(trust, crl_buf, crl_len, &v->err)) != SNP_OK)
		goto out;
	if (cert_buf != NULL) {
		v->status = snp_cert_parse(cert_buf, cert_len, &signer, &v->err);
	} else if (certtable != NULL &&
		   (snp_certtable_find(certtable, SNP_CERT_KIND_VCEK, &blob, &blob_len) == SNP_OK ||
		    snp_certtable_find(certtable, SNP_CERT_KIND_VLEK, &blob, &blob_len) == SNP_OK)) {
		v->status = snp_cert_parse(blob, blob_len, &signer, &v->err);
	} else {
		fprintf(stderr, "nitride: no signer certificate: give --cert, or a certificate table with a VCEK or VLEK\n");
		ret = EXIT_USAGE;
		goto out;
	}
	if (v->status != SNP_OK)
		goto out;
	v->status = snp_verify(trust, report, signer, &a->opts, &v->result, &v->err);
out:
	snp_cert_free(extra);
	snp_cert_free(signer);
	snp_certtable_free(certtable);
	snp_report_free(report);
	snp_trust_free(trust);
	free(report_buf);
	free(cert_buf);
	free(table_buf);
	free(crl_buf);
	return ret;
}

static int
report_verify(int argc, char **argv)
{
	enum { O_REPORT = 256, O_CERT, O_CERTS, O_ROOTS, O_PRODUCT, O_AT, O_CRL, O_REQUIRE_CRL, O_JSON,
	       O_PIN_ROOTS };
	static const struct option opts[] = {
		{ "report", required_argument, NULL, O_REPORT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "certs", required_argument, NULL, O_CERTS },
		{ "roots", required_argument, NULL, O_ROOTS },
		{ "product", required_argument, NULL, O_PRODUCT },
		{ "at", required_argument, NULL, O_AT },
		{ "crl", required_argument, NULL, O_CRL },
		{ "require-crl", no_argument, NULL, O_REQUIRE_CRL },
		{ "json", no_argument, NULL, O_JSON },
		{ "pin-roots", no_argument, NULL, O_PIN_ROOTS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct verify_args a = { 0 };
	struct verdict v = { 0 };
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_REPORT: a.report = optarg; break;
		case O_CERT: a.cert = optarg; break;
		case O_CERTS: a.certs = optarg; break;
		case O_ROOTS: a.roots = optarg; break;
		case O_CRL: a.crl = optarg; break;
		case O_REQUIRE_CRL: a.opts.require_crl = true; break;
		case O_JSON: a.json = true; break;
		case O_PIN_ROOTS: a.pin_roots = true; break;
		case O_PRODUCT:
			if (parse_product(optarg, &a.opts.product) != 0)
				return EXIT_USAGE;
			break;
		case O_AT:
			if (strcmp(optarg, "now") != 0 && rfc3339_parse(optarg, &a.opts.at) != 0) {
				fprintf(stderr, "nitride: --at '%s': expected an RFC 3339 instant such as 2025-06-01T00:00:00Z\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h': fputs(verify_usage, stdout); return EXIT_OK;
		default: fputs(verify_usage, stderr); return EXIT_USAGE;
		}
	}
	if (a.pin_roots && a.roots == NULL) {
		fprintf(stderr, "nitride: --pin-roots needs --roots DIR\n");
		return EXIT_USAGE;
	}
	if (optind != argc || a.report == NULL) {
		fprintf(stderr, "nitride: report verify needs --report and no other arguments\n");
		fputs(verify_usage, stderr);
		return EXIT_USAGE;
	}
	if (a.opts.at == 0)
		a.opts.at = time(NULL);
	if ((ret = run_verify(&a, &v)) != EXIT_OK)
		return ret;
	if (print_verdict(&a, &v, a.opts.at) != 0) {
		fprintf(stderr, "nitride: cannot write the verdict\n");
		return EXIT_USAGE;
	}
	return v.status == SNP_OK ? EXIT_OK : EXIT_NEGATIVE;
}

int
cmd_report(int argc, char **argv)
{
	static const char usage[] =
		"usage: nitride report show FILE [--json]\n"
		"       nitride report verify --report FILE --cert FILE [options]\n"
		"       nitride report get -o FILE [options]\n"
		"Run 'nitride report <show|verify|get> --help' for details.\n";

	if (argc < 2) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "show") == 0)
		return report_show(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return report_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "get") == 0)
		return cmd_report_get(argc - 1, argv + 1);
	fprintf(stderr, "nitride report: unknown subcommand '%s'\n", argv[1]);
	fputs(usage, stderr);
	return EXIT_USAGE;
}
