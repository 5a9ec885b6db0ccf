/*
 * nitride measure — the expected launch measurement of an SEV-SNP (or SEV,
 * SEV-ES) guest, with the options and answers of virtee/sev-snp-measure.
 *
 * Exit status, as the reference: 0 printed, 1 the inputs cannot be measured
 * ("Error: …", e.g. a kernel for firmware without a hashes section, a
 * malformed firmware image), 2 usage error ("nitride measure: error: …") or a
 * file that cannot be read or written.
 */
#include "cli/cli.h"

#include <nitride/snp_measure.h>

#include "common/fileio.h"
#include "common/hex.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage: nitride measure --mode MODE --ovmf PATH [--vcpus N]\n"
	"                       [--vcpu-type CPUTYPE | --vcpu-sig VALUE |\n"
	"                        --vcpu-family F --vcpu-model M --vcpu-stepping S]\n"
	"                       [--vmm-type QEMU|ec2|gce] [--kernel PATH [--initrd PATH]\n"
	"                       [--append CMDLINE]] [--guest-features VALUE]\n"
	"                       [--snp-ovmf-hash HEX] [--output-format hex|base64]\n"
	"                       [--dump-vmsa] [--json] [-v]\n"
	"\n"
	"Calculate the launch measurement of an AMD SEV / SEV-ES / SEV-SNP guest\n"
	"(the same answers as virtee/sev-snp-measure 0.0.13).\n"
	"  --mode MODE            snp, snp:ovmf-hash (firmware pages only, a seed for\n"
	"                         --snp-ovmf-hash), seves or sev\n"
	"  --ovmf PATH            the OVMF firmware image\n"
	"  --vcpus N              number of guest vCPUs (all modes but sev)\n"
	"  --vcpu-type CPUTYPE    QEMU CPU model: EPYC, EPYC-v1..v4, EPYC-IBPB,\n"
	"                         EPYC-Rome(-v1..v3), EPYC-Milan(-v1,-v2),\n"
	"                         EPYC-Genoa(-v1), EPYC-Turin\n"
	"  --vcpu-sig VALUE       CPUID 1 EAX signature (0x prefix for hex)\n"
	"  --vcpu-family/--vcpu-model/--vcpu-stepping N   signature from its parts\n"
	"                         (precedence: family, then sig, then type; required\n"
	"                         for QEMU)\n"
	"  --vmm-type TYPE        QEMU (default; also qemu), ec2 or gce\n"
	"  --kernel PATH          measured direct boot: the kernel, and optionally\n"
	"  --initrd PATH          the initrd and\n"
	"  --append CMDLINE       the kernel command line\n"
	"  --guest-features VALUE VMSA SEV_FEATURES (default 0x1, SNPActive)\n"
	"  --snp-ovmf-hash HEX    precalculated snp:ovmf-hash value (snp mode)\n"
	"  --output-format FMT    hex (default) or base64\n"
	"  --dump-vmsa            write the measured VMSAs to vmsa<N>.bin here\n"
	"  --json                 print a reference-value entry for the Attestation\n"
	"                         Service: {\"measurement\", \"mode\", \"inputs\"}\n"
	"  -v, --verbose          say what was calculated\n"
	"Exit status: 0 measured, 1 the inputs cannot be measured, 2 usage or I/O error.\n";

/* Also in cli/cli.h once the dispatcher knows the command. */
int cmd_measure(int argc, char **argv);

struct measure_args {
	const char *mode, *ovmf, *kernel, *initrd, *append, *vcpu_type, *vmm_type;
	const char *ovmf_hash, *output_format;
	bool has_vcpus, has_sig, has_family, has_model, has_stepping;
	uint64_t vcpus, sig, family, model, stepping, features;
	bool dump_vmsa, json, verbose;
};

/* Print a usage error in the reference's style; returns EXIT_USAGE. */
static int __attribute__((format(printf, 1, 2)))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("usage: nitride measure --mode MODE --ovmf PATH [options] (see --help)\n", stderr);
	fputs("nitride measure: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

static bool
valid_digit(char c, int base)
{
	if (c >= '0' && c <= '9')
		return c - '0' < base;
	if (base == 16)
		return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	return false;
}

/*
 * Parse a non-negative integer of at most `max`.  With auto_base, as Python's
 * int(s, 0): 0x/0o/0b prefixes, and no leading zero on a decimal other than 0.
 * Otherwise decimal.  Returns 0, or -1 after printing a usage error.
 */
static int
parse_number(const char *opt, const char *s, bool auto_base, uint64_t max, uint64_t *out)
{
	const char *digits = s;
	unsigned long long v;
	char *end = NULL;
	int base = 10;
	size_t i;

	if (auto_base && s[0] == '0' && s[1] != '\0') {
		if (s[1] == 'x' || s[1] == 'X')
			base = 16;
		else if (s[1] == 'o' || s[1] == 'O')
			base = 8;
		else if (s[1] == 'b' || s[1] == 'B')
			base = 2;
		if (base != 10)
			digits = s + 2;
		else if (strspn(s, "0") != strlen(s))
			goto bad; /* "012" is not a number for int(s, 0) */
	}
	if (digits[0] == '\0')
		goto bad;
	for (i = 0; digits[i] != '\0'; i++)
		if (!valid_digit(digits[i], base))
			goto bad;
	errno = 0;
	v = strtoull(digits, &end, base);
	if (errno != 0 || end == digits || *end != '\0' || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	usage_error("argument %s: invalid value '%s' (expected %s at most %" PRIu64 ")", opt, s,
		    auto_base ? "an integer (0x for hex)" : "a decimal integer", max);
	return -1;
}

enum {
	OPT_MODE = 256, OPT_VCPUS, OPT_VCPU_TYPE, OPT_VCPU_SIG, OPT_VCPU_FAMILY, OPT_VCPU_MODEL,
	OPT_VCPU_STEPPING, OPT_VMM_TYPE, OPT_OVMF, OPT_KERNEL, OPT_INITRD, OPT_APPEND,
	OPT_GUEST_FEATURES, OPT_SNP_OVMF_HASH, OPT_OUTPUT_FORMAT, OPT_DUMP_VMSA, OPT_JSON,
	OPT_SVSM, OPT_VARS_SIZE, OPT_VARS_FILE, OPT_VERSION
};

static int
parse_args(int argc, char **argv, struct measure_args *a)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "vcpus", required_argument, NULL, OPT_VCPUS },
		{ "vcpu-type", required_argument, NULL, OPT_VCPU_TYPE },
		{ "vcpu-sig", required_argument, NULL, OPT_VCPU_SIG },
		{ "vcpu-family", required_argument, NULL, OPT_VCPU_FAMILY },
		{ "vcpu-model", required_argument, NULL, OPT_VCPU_MODEL },
		{ "vcpu-stepping", required_argument, NULL, OPT_VCPU_STEPPING },
		{ "vmm-type", required_argument, NULL, OPT_VMM_TYPE },
		{ "ovmf", required_argument, NULL, OPT_OVMF },
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "append", required_argument, NULL, OPT_APPEND },
		{ "guest-features", required_argument, NULL, OPT_GUEST_FEATURES },
		{ "snp-ovmf-hash", required_argument, NULL, OPT_SNP_OVMF_HASH },
		{ "output-format", required_argument, NULL, OPT_OUTPUT_FORMAT },
		{ "dump-vmsa", no_argument, NULL, OPT_DUMP_VMSA },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "svsm", required_argument, NULL, OPT_SVSM },
		{ "vars-size", required_argument, NULL, OPT_VARS_SIZE },
		{ "vars-file", required_argument, NULL, OPT_VARS_FILE },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint32_t sig32;
	int c;

	memset(a, 0, sizeof(*a));
	a->features = 0x1;
	a->vmm_type = "QEMU";
	a->output_format = "hex";
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hv", opts, NULL)) != -1) {
		switch (c) {
		case OPT_MODE:
			if (strcmp(optarg, "snp") != 0 && strcmp(optarg, "snp:ovmf-hash") != 0 &&
			    strcmp(optarg, "seves") != 0 && strcmp(optarg, "sev") != 0) {
				if (strcmp(optarg, "snp:svsm") == 0)
					return usage_error("--mode snp:svsm (Coconut-SVSM) is not "
							   "supported");
				return usage_error("argument --mode: invalid choice: '%s' (choose "
						   "from 'sev', 'seves', 'snp', 'snp:ovmf-hash')",
						   optarg);
			}
			a->mode = optarg;
			break;
		case OPT_VCPUS:
			if (parse_number("--vcpus", optarg, false, SNP_MEASURE_MAX_VCPUS, &a->vcpus) != 0)
				return EXIT_USAGE;
			a->has_vcpus = true;
			break;
		case OPT_VCPU_TYPE:
			if (snp_vcpu_type_sig(optarg, &sig32) != SNP_OK)
				return usage_error("argument --vcpu-type: invalid choice: '%s' "
						   "(see --help)", optarg);
			a->vcpu_type = optarg;
			break;
		case OPT_VCPU_SIG:
			if (parse_number("--vcpu-sig", optarg, true, UINT64_MAX, &a->sig) != 0)
				return EXIT_USAGE;
			a->has_sig = true;
			break;
		case OPT_VCPU_FAMILY:
			if (parse_number("--vcpu-family", optarg, false, UINT32_MAX, &a->family) != 0)
				return EXIT_USAGE;
			a->has_family = true;
			break;
		case OPT_VCPU_MODEL:
			if (parse_number("--vcpu-model", optarg, false, UINT32_MAX, &a->model) != 0)
				return EXIT_USAGE;
			a->has_model = true;
			break;
		case OPT_VCPU_STEPPING:
			if (parse_number("--vcpu-stepping", optarg, false, UINT32_MAX,
					 &a->stepping) != 0)
				return EXIT_USAGE;
			a->has_stepping = true;
			break;
		case OPT_VMM_TYPE: a->vmm_type = optarg; break;
		case OPT_OVMF: a->ovmf = optarg; break;
		case OPT_KERNEL: a->kernel = optarg; break;
		case OPT_INITRD: a->initrd = optarg; break;
		case OPT_APPEND: a->append = optarg; break;
		case OPT_GUEST_FEATURES:
			if (parse_number("--guest-features", optarg, true, UINT64_MAX, &a->features) != 0)
				return EXIT_USAGE;
			break;
		case OPT_SNP_OVMF_HASH: a->ovmf_hash = optarg; break;
		case OPT_OUTPUT_FORMAT:
			if (strcmp(optarg, "hex") != 0 && strcmp(optarg, "base64") != 0)
				return usage_error("argument --output-format: invalid choice: '%s' "
						   "(choose from 'hex', 'base64')", optarg);
			a->output_format = optarg;
			break;
		case OPT_DUMP_VMSA: a->dump_vmsa = true; break;
		case OPT_JSON: a->json = true; break;
		case OPT_SVSM:
		case OPT_VARS_SIZE:
		case OPT_VARS_FILE:
			return usage_error("%s: the snp:svsm mode is not supported", argv[optind - 1]);
		case 'v': a->verbose = true; break;
		case OPT_VERSION:
			printf("nitride measure (sev-snp-measure 0.0.13 compatible)\n");
			return -1;
		case 'h': fputs(usage_text, stdout); return -1;
		case ':':
			return usage_error("argument %s: expected one argument", argv[optind - 1]);
		default:
			return usage_error("unrecognized argument: %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unrecognized argument: %s", argv[optind]);
	if (a->mode == NULL || a->ovmf == NULL)
		return usage_error("the following arguments are required: %s",
				   a->mode == NULL && a->ovmf == NULL ? "--mode, --ovmf" :
				   a->mode == NULL ? "--mode" : "--ovmf");
	return EXIT_OK;
}

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; out has room for 4 * ((n + 2) / 3) + 1. */
static void
base64_encode(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);

		out[o++] = b64_alphabet[v >> 18];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

static const char *
mode_long_name(snp_measure_mode m)
{
	switch (m) {
	case SNP_MODE_SEV: return "SEV";
	case SNP_MODE_SEV_ES: return "SEV_ES";
	default: return "SEV_SNP";
	}
}

static json_t *
hex_json(const uint8_t *p, size_t n)
{
	char buf[2 * SNP_LD_LEN + 1];

	hex_encode(p, n, buf);
	return json_string(buf);
}

static json_t *
u64_hex_json(uint64_t v)
{
	char buf[24];

	(void)snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_string(buf);
}

/* The reference-value entry: {"measurement", "mode", "inputs": {…}}. */
static int
print_json(const struct measure_args *a, const snp_measure_params *p, const uint8_t *ld,
	   size_t ld_len, const uint8_t ovmf_sha256[SNP_SHA256_LEN])
{
	json_t *o = NULL, *in = NULL;
	bool vcpus = p->mode == SNP_MODE_SNP || p->mode == SNP_MODE_SEV_ES;
	int r = -1;

	if ((o = json_object()) == NULL || (in = json_object()) == NULL)
		goto out;
	if (json_object_set_new(o, "measurement", hex_json(ld, ld_len)) != 0 ||
	    json_object_set_new(o, "mode", json_string(snp_measure_mode_name(p->mode))) != 0 ||
	    json_object_set_new(in, "ovmf", json_string(a->ovmf)) != 0 ||
	    json_object_set_new(in, "ovmf_sha256", hex_json(ovmf_sha256, SNP_SHA256_LEN)) != 0)
		goto out;
	if (p->mode == SNP_MODE_SNP && p->ovmf_hash != NULL &&
	    json_object_set_new(in, "snp_ovmf_hash", hex_json(p->ovmf_hash, SNP_LD_LEN)) != 0)
		goto out;
	if (vcpus &&
	    (json_object_set_new(in, "vmm_type", json_string(snp_vmm_type_name(p->vmm))) != 0 ||
	     json_object_set_new(in, "vcpus", json_integer(p->vcpus)) != 0 ||
	     json_object_set_new(in, "vcpu_sig", u64_hex_json(p->vcpu_sig)) != 0))
		goto out;
	if (p->mode == SNP_MODE_SNP &&
	    json_object_set_new(in, "guest_features", u64_hex_json(p->guest_features)) != 0)
		goto out;
	if (p->has_kernel &&
	    (json_object_set_new(in, "kernel", json_string(a->kernel)) != 0 ||
	     json_object_set_new(in, "kernel_sha256", hex_json(p->kernel_sha256, SNP_SHA256_LEN)) != 0 ||
	     json_object_set_new(in, "initrd", a->initrd != NULL && a->initrd[0] != '\0' ?
				 json_string(a->initrd) : json_null()) != 0 ||
	     json_object_set_new(in, "initrd_sha256", hex_json(p->initrd_sha256, SNP_SHA256_LEN)) != 0 ||
	     json_object_set_new(in, "append", json_string(a->append != NULL ? a->append : "")) != 0 ||
	     json_object_set_new(in, "cmdline_sha256", hex_json(p->cmdline_sha256, SNP_SHA256_LEN)) != 0))
		goto out;
	if (json_object_set_new(o, "inputs", in) != 0) {
		in = NULL;
		goto out;
	}
	in = NULL;
	r = cli_print_json(o);
out:
	json_decref(in);
	json_decref(o);
	return r;
}

static int
print_measurement(const struct measure_args *a, const snp_measure_params *p, const uint8_t *ld,
		  size_t ld_len, const uint8_t ovmf_sha256[SNP_SHA256_LEN])
{
	char text[4 * ((SNP_LD_LEN + 2) / 3) + 2 * SNP_LD_LEN + 1];

	if (a->json)
		return print_json(a, p, ld, ld_len, ovmf_sha256);
	/* snp:ovmf-hash is always hex: it is the input of --snp-ovmf-hash. */
	if (strcmp(a->output_format, "base64") == 0 && p->mode != SNP_MODE_SNP_OVMF_HASH)
		base64_encode(ld, ld_len, text);
	else
		hex_encode(ld, ld_len, text);
	if (a->verbose && p->mode != SNP_MODE_SNP_OVMF_HASH)
		printf("Calculated %s guest measurement: %s\n", mode_long_name(p->mode), text);
	else
		printf("%s\n", text);
	return fflush(stdout) == 0 ? 0 : -1;
}

/* Write vmsa<i>.bin for every vCPU into the current directory. */
static int
dump_vmsas(const snp_measure_params *p)
{
	uint8_t page[SNP_VMSA_SIZE];
	snp_error err = { 0 };
	char name[32];
	FILE *f;
	unsigned i;

	for (i = 0; i < p->vcpus; i++) {
		if (snp_measure_vmsa(p, i, page, &err) != SNP_OK) {
			fprintf(stderr, "Error: %s\n", err.detail);
			return EXIT_NEGATIVE;
		}
		(void)snprintf(name, sizeof(name), "vmsa%u.bin", i);
		if ((f = fopen(name, "wbe")) == NULL) {
			fprintf(stderr, "nitride: %s: %s\n", name, strerror(errno));
			return EXIT_USAGE;
		}
		if (fwrite(page, 1, sizeof(page), f) != sizeof(page) || fclose(f) != 0) {
			fprintf(stderr, "nitride: %s: write failed\n", name);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

/* Fill the parameters that need no files, checking the option combinations in
 * the reference's order.  Returns EXIT_OK or EXIT_USAGE (printed). */
static int
build_params(const struct measure_args *a, snp_measure_params *p)
{
	uint32_t sig32 = 0;
	bool has_kernel = a->kernel != NULL && a->kernel[0] != '\0';

	snp_measure_params_init(p);
	if (strcmp(a->mode, "snp") == 0)
		p->mode = SNP_MODE_SNP;
	else if (strcmp(a->mode, "snp:ovmf-hash") == 0)
		p->mode = SNP_MODE_SNP_OVMF_HASH;
	else if (strcmp(a->mode, "seves") == 0)
		p->mode = SNP_MODE_SEV_ES;
	else
		p->mode = SNP_MODE_SEV;
	if (p->mode == SNP_MODE_SNP_OVMF_HASH)
		return EXIT_OK; /* everything else is ignored, as by the reference */
	if (a->initrd != NULL && a->initrd[0] != '\0' && a->kernel == NULL)
		return usage_error("--kernel required when using --initrd");
	if (a->append != NULL && a->append[0] != '\0' && a->kernel == NULL)
		return usage_error("--kernel required when using --append");
	if (p->mode != SNP_MODE_SEV && !a->has_vcpus)
		return usage_error("missing --vcpus N in guest mode '%s'", a->mode);
	if (strcmp(a->vmm_type, "QEMU") == 0 || strcmp(a->vmm_type, "qemu") == 0)
		p->vmm = SNP_VMM_QEMU;
	else if (strcmp(a->vmm_type, "ec2") == 0)
		p->vmm = SNP_VMM_EC2;
	else if (strcmp(a->vmm_type, "gce") == 0)
		p->vmm = SNP_VMM_GCE;
	else
		return usage_error("unknown VMM type '%s'", a->vmm_type);
	if (p->mode == SNP_MODE_SEV) {
		p->vcpu_sig = 0;
	} else if (a->has_family) {
		if (!a->has_model || !a->has_stepping)
			return usage_error("--vcpu-family needs --vcpu-model and --vcpu-stepping");
		p->vcpu_sig = snp_vcpu_sig((unsigned)a->family, (unsigned)a->model,
					   (unsigned)a->stepping);
	} else if (a->has_sig) {
		p->vcpu_sig = a->sig;
	} else if (a->vcpu_type != NULL) {
		if (snp_vcpu_type_sig(a->vcpu_type, &sig32) != SNP_OK)
			return usage_error("unknown --vcpu-type '%s'", a->vcpu_type);
		p->vcpu_sig = sig32;
	} else if (p->vmm == SNP_VMM_QEMU) {
		return usage_error("missing --vcpu-type or --vcpu-sig or --vcpu-family in guest "
				   "mode '%s'", a->mode);
	}
	if (a->dump_vmsa && p->mode == SNP_MODE_SEV)
		return usage_error("--dump-vmsa is not available in the selected mode");
	if (a->ovmf_hash != NULL && a->ovmf_hash[0] != '\0' && p->mode != SNP_MODE_SNP)
		return usage_error("--snp-ovmf-hash only works with --mode snp");
	p->vcpus = (unsigned)a->vcpus;
	p->guest_features = a->features;
	p->has_kernel = has_kernel;
	if (snp_sev_hash_cmdline(a->append, p->cmdline_sha256) != SNP_OK) {
		fprintf(stderr, "nitride: SHA-256 unavailable\n");
		return EXIT_USAGE;
	}
	return EXIT_OK;
}

int
cmd_measure(int argc, char **argv)
{
	struct measure_args a;
	snp_measure_params p;
	snp_ovmf *ovmf = NULL;
	snp_error err = { 0 };
	uint8_t seed[SNP_LD_LEN], ld[SNP_LD_LEN], ovmf_sha256[SNP_SHA256_LEN];
	uint8_t *fw = NULL;
	size_t fw_len = 0, ld_len = 0;
	int r, ret = EXIT_USAGE;

	if ((r = parse_args(argc, argv, &a)) != EXIT_OK) {
		ret = r < 0 ? EXIT_OK : r;
		goto out;
	}
	if ((ret = build_params(&a, &p)) != EXIT_OK)
		goto out;
	ret = EXIT_USAGE;
	if (p.mode == SNP_MODE_SNP && a.ovmf_hash != NULL && a.ovmf_hash[0] != '\0') {
		if (hex_decode(a.ovmf_hash, seed, sizeof(seed)) != 0) {
			ret = usage_error("argument --snp-ovmf-hash: expected %u hex digits",
					  2 * SNP_LD_LEN);
			goto out;
		}
		p.ovmf_hash = seed;
	}
	if ((r = file_read_all(a.ovmf, SNP_OVMF_MAX_SIZE, &fw, &fw_len)) != 0) {
		if (r == -EFBIG)
			fprintf(stderr, "nitride: firmware %s: larger than %u bytes\n", a.ovmf,
				SNP_OVMF_MAX_SIZE);
		else
			fprintf(stderr, "nitride: firmware %s: %s\n", a.ovmf, strerror(-r));
		goto out;
	}
	if (p.has_kernel) {
		if (snp_sha256_file(a.kernel, p.kernel_sha256, &err) != SNP_OK ||
		    (a.initrd != NULL && a.initrd[0] != '\0' &&
		     snp_sha256_file(a.initrd, p.initrd_sha256, &err) != SNP_OK)) {
			fprintf(stderr, "nitride: %s\n", err.detail);
			goto out;
		}
	}
	if (snp_sha256(fw, fw_len, ovmf_sha256) != SNP_OK) {
		fprintf(stderr, "nitride: SHA-256 unavailable\n");
		goto out;
	}
	ret = EXIT_NEGATIVE;
	if (snp_ovmf_parse_static(fw, fw_len, &ovmf, &err) != SNP_OK) {
		fprintf(stderr, "Error: %s: %s\n", a.ovmf, err.detail);
		goto out;
	}
	p.ovmf = ovmf;
	if (snp_measure(&p, ld, &ld_len, &err) != SNP_OK) {
		fprintf(stderr, "Error: %s\n", err.detail);
		ret = err.status == SNP_E_ARGUMENT ? EXIT_USAGE : EXIT_NEGATIVE;
		goto out;
	}
	if (a.dump_vmsa && (p.mode == SNP_MODE_SNP || p.mode == SNP_MODE_SEV_ES) &&
	    (ret = dump_vmsas(&p)) != EXIT_OK)
		goto out;
	if (print_measurement(&a, &p, ld, ld_len, ovmf_sha256) != 0) {
		fprintf(stderr, "nitride: cannot write the measurement\n");
		ret = EXIT_USAGE;
		goto out;
	}
	ret = EXIT_OK;
out:
	snp_ovmf_free(ovmf);
	free(fw);
	return ret;
}
