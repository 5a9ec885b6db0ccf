/* Launch configuration: defaults, INI file, single keys, finalize (sim_launch.h). */
#include "sim/sim_log.h"
#include "sim/sim_launch.h"

#include "common/inifile.h"
#include "common/hex.h"
#include "sim/sim_boot.h"
#include "sim/sim_num.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


enum key_kind {
	K_PRODUCT,
	K_BYTES,    /* fixed-length hex */
	K_U64,
	K_POLICY,
	K_PLATFORM_INFO,
	K_GUEST_SVN,
	K_TCB,      /* idx = sim_tcb_which */
	K_TCB_COMP, /* idx = which * SIM_COMP_COUNT + comp */
	K_VERSION,  /* idx 0 current, 1 committed */
	K_CHIP_ID,
	K_BOOL,
	K_SIGNING_KEY,
	K_REPORT_VERSION,
	K_VMPL,
	K_STRING,    /* NUL-terminated text into a char array of `len` bytes */
	K_VCPUS,
	K_VMM,
};

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off; /* into struct sim_launch, for K_BYTES/K_U64/K_BOOL */
	size_t len; /* K_BYTES length */
	int idx;
	const char *help;
};

#define F(field) offsetof(struct sim_launch, field)
#define TCB_KEYS(w, wname)                                                                       \
	{ wname "_tcb", K_TCB, 0, 0, w, "TCB_VERSION as a u64 (hex 0x… or decimal)" },          \
	{ wname "_tcb_fmc", K_TCB_COMP, 0, 0, w * SIM_COMP_COUNT + SIM_COMP_FMC, "FMC SPL (Turin)" }, \
	{ wname "_tcb_bl", K_TCB_COMP, 0, 0, w * SIM_COMP_COUNT + SIM_COMP_BL, "boot loader SPL" }, \
	{ wname "_tcb_tee", K_TCB_COMP, 0, 0, w * SIM_COMP_COUNT + SIM_COMP_TEE, "TEE SPL" },     \
	{ wname "_tcb_snp", K_TCB_COMP, 0, 0, w * SIM_COMP_COUNT + SIM_COMP_SNP, "SNP SPL" },     \
	{ wname "_tcb_ucode", K_TCB_COMP, 0, 0, w * SIM_COMP_COUNT + SIM_COMP_UCODE, "microcode SPL" }

static const struct key_def keys[] = {
	{ "product", K_PRODUCT, 0, 0, 0, "milan, genoa or turin" },
	{ "measurement", K_BYTES, F(measurement), SNP_MEASUREMENT_LEN, 0, "MEASUREMENT, 96 hex digits" },
	{ "host_data", K_BYTES, F(host_data), SNP_HOST_DATA_LEN, 0, "HOST_DATA, 64 hex digits" },
	{ "family_id", K_BYTES, F(family_id), SNP_ID_LEN, 0, "FAMILY_ID, 32 hex digits" },
	{ "image_id", K_BYTES, F(image_id), SNP_ID_LEN, 0, "IMAGE_ID, 32 hex digits" },
	{ "id_key_digest", K_BYTES, F(id_key_digest), SNP_KEY_DIGEST_LEN, 0, "ID_KEY_DIGEST, 96 hex digits" },
	{ "author_key_digest", K_BYTES, F(author_key_digest), SNP_KEY_DIGEST_LEN, 0,
	  "AUTHOR_KEY_DIGEST, 96 hex digits (non-zero sets AUTHOR_KEY_EN)" },
	{ "policy", K_POLICY, 0, 0, 0, "guest POLICY u64 (bit 17 must be 1, bits 63:26 zero)" },
	{ "guest_svn", K_GUEST_SVN, 0, 0, 0, "GUEST_SVN u32" },
	{ "platform_info", K_PLATFORM_INFO, 0, 0, 0, "PLATFORM_INFO u64 (bits 63:8 zero)" },
	TCB_KEYS(SIM_TCB_CURRENT, "current"),
	TCB_KEYS(SIM_TCB_COMMITTED, "committed"),
	TCB_KEYS(SIM_TCB_LAUNCH, "launch"),
	TCB_KEYS(SIM_TCB_REPORTED, "reported"),
	{ "current_version", K_VERSION, 0, 0, 0, "firmware version major.minor.build" },
	{ "committed_version", K_VERSION, 0, 0, 1, "committed firmware version major.minor.build" },
	{ "chip_id", K_CHIP_ID, 0, 0, 0, "CHIP_ID, 128 hex digits (16 on Turin); default from the chip secret" },
	{ "mask_chip_id", K_BOOL, F(mask_chip_id), 0, 0, "true: CHIP_ID reads as zero (MASK_CHIP_ID)" },
	{ "signing_key", K_SIGNING_KEY, 0, 0, 0, "vcek or vlek" },
	{ "report_version", K_REPORT_VERSION, 0, 0, 0, "2, 3 or 5" },
	{ "guest_vmpl", K_VMPL, 0, 0, 0, "VMPL the simulated guest runs at, 0..3" },
	{ "launch_mit_vector", K_U64, F(launch_mit_vector), 0, 0, "LAUNCH_MIT_VECTOR u64 (version 5)" },
	{ "current_mit_vector", K_U64, F(current_mit_vector), 0, 0, "CURRENT_MIT_VECTOR u64 (version 5)" },
	{ "boot_ovmf", K_STRING, F(boot.ovmf), SIM_PATH_MAX, 0,
	  "OVMF image: compute MEASUREMENT from the boot_* inputs (as nitride measure does)" },
	{ "boot_kernel", K_STRING, F(boot.kernel), SIM_PATH_MAX, 0, "kernel for measured direct boot" },
	{ "boot_initrd", K_STRING, F(boot.initrd), SIM_PATH_MAX, 0, "initrd for measured direct boot" },
	{ "boot_append", K_STRING, F(boot.append), SIM_APPEND_MAX, 1, "kernel command line" },
	{ "boot_vcpus", K_VCPUS, 0, 0, 0, "number of vCPUs measured (default 1)" },
	{ "boot_vcpu_type", K_STRING, F(boot.vcpu_type), 32, 0, "vCPU type, e.g. EPYC-v4 (default)" },
	{ "boot_vmm_type", K_VMM, 0, 0, 0, "qemu (default), ec2 or gce" },
	{ "boot_guest_features", K_U64, F(boot.guest_features), 0, 0, "VMSA SEV_FEATURES (default 0x1)" },
};
#undef F
#undef TCB_KEYS

static const char *const tcb_names[SIM_TCB_COUNT] = { "current_tcb", "committed_tcb", "launch_tcb",
						     "reported_tcb" };

size_t
sim_launch_key_count(void)
{
	return sizeof(keys) / sizeof(keys[0]);
}

const char *
sim_launch_key_name(size_t i)
{
	return i < sim_launch_key_count() ? keys[i].name : NULL;
}

const char *
sim_launch_key_help(size_t i)
{
	return i < sim_launch_key_count() ? keys[i].help : NULL;
}

uint64_t
sim_launch_default_tcb(snp_product p)
{
	snp_tcb t;

	memset(&t, 0, sizeof(t));
	switch (p) {
	case SNP_PRODUCT_MILAN:
		t.bootloader = 3, t.tee = 0, t.snp = 8, t.microcode = 115;
		break;
	case SNP_PRODUCT_TURIN:
		t.fmc = 0, t.bootloader = 1, t.tee = 0, t.snp = 2, t.microcode = 71;
		break;
	default:
		t.bootloader = 10, t.tee = 0, t.snp = 27, t.microcode = 88;
		break;
	}
	return snp_tcb_encode(&t, p);
}

void
sim_launch_init(struct sim_launch *l)
{
	int i;

	memset(l, 0, sizeof(*l));
	l->product = SNP_PRODUCT_GENOA;
	l->policy = SNP_POLICY_SMT | SNP_POLICY_RESERVED_1;
	l->platform_info = 0x3;
	for (i = 0; i < SIM_TCB_COUNT; i++)
		l->tcb[i] = sim_launch_default_tcb(l->product);
	l->current_version[0] = 1, l->current_version[1] = 55, l->current_version[2] = 21;
	memcpy(l->committed_version, l->current_version, 3);
	l->signing_key = SNP_SIGNING_KEY_VCEK;
	l->report_version = 3;
	l->boot.vcpus = 1;
	l->boot.vmm = SNP_VMM_QEMU;
	l->boot.guest_features = 0x1; /* SNPActive, as nitride measure's default */
	memcpy(l->boot.vcpu_type, "EPYC-v4", sizeof("EPYC-v4"));
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* "major.minor.build", each 0..255. */
static int
parse_version(const char *v, uint8_t out[3])
{
	char buf[32];
	char *p = buf, *dot;
	uint64_t n;
	uint8_t tmp[3];
	int i;

	if (strlen(v) >= sizeof(buf))
		return -1;
	memcpy(buf, v, strlen(v) + 1);
	for (i = 0; i < 3; i++) {
		dot = strchr(p, '.');
		if ((i < 2) != (dot != NULL))
			return -1;
		if (dot != NULL)
			*dot = '\0';
		if (sim_parse_dec(p, 255, &n) != 0)
			return -1;
		tmp[i] = (uint8_t)n;
		p = dot != NULL ? dot + 1 : p;
	}
	memcpy(out, tmp, 3);
	return 0;
}

static const struct key_def *
find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sim_launch_key_count(); i++) {
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	}
	return NULL;
}

int
sim_launch_set(struct sim_launch *l, const char *key, const char *value, char *err, size_t errlen)
{
	const struct key_def *k = find_key(key);
	uint8_t *base = (uint8_t *)l;
	uint64_t v;

	if (k == NULL)
		return sim_fail(err, errlen, "unknown key '%s'", key);
	if (value == NULL)
		value = "";
	switch (k->kind) {
	case K_PRODUCT: {
		snp_product p = snp_product_from_name(value);

		if (p == SNP_PRODUCT_UNKNOWN)
			return sim_fail(err, errlen, "key '%s': '%.64s' is not milan, genoa or turin", key, value);
		l->product = p;
		return 0;
	}
	case K_STRING:
		if (strlen(value) >= k->len)
			return sim_fail(err, errlen, "key '%s': longer than %zu bytes", key, k->len - 1);
		memcpy(base + k->off, value, strlen(value) + 1);
		if (k->idx == 1)
			l->boot.append_set = true;
		return 0;
	case K_VCPUS:
		if (sim_parse_u64(value, SNP_MEASURE_MAX_VCPUS, &v) != 0 || v == 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not a vCPU count from 1 to %u", key,
				    value, SNP_MEASURE_MAX_VCPUS);
		l->boot.vcpus = (uint32_t)v;
		return 0;
	case K_VMM:
		if (strcasecmp(value, "qemu") == 0)
			l->boot.vmm = SNP_VMM_QEMU;
		else if (strcasecmp(value, "ec2") == 0)
			l->boot.vmm = SNP_VMM_EC2;
		else if (strcasecmp(value, "gce") == 0)
			l->boot.vmm = SNP_VMM_GCE;
		else
			return sim_fail(err, errlen, "key '%s': '%.40s' is not qemu, ec2 or gce", key, value);
		return 0;
	case K_BYTES:
		if (k->off == offsetof(struct sim_launch, measurement))
			l->measurement_set = true;
		if (sim_parse_hex(value, base + k->off, k->len) != 0)
			return sim_fail(err, errlen, "key '%s': expected %zu hex digits, got '%.40s%s'", key,
				    2 * k->len, value, strlen(value) > 40 ? "…" : "");
		return 0;
	case K_U64:
		if (sim_parse_u64(value, UINT64_MAX, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not an unsigned 64-bit number", key, value);
		memcpy(base + k->off, &v, sizeof(v));
		return 0;
	case K_POLICY:
		if (sim_parse_u64(value, UINT64_MAX, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not an unsigned 64-bit number", key, value);
		if ((v & SNP_POLICY_RESERVED_1) == 0)
			return sim_fail(err, errlen, "key '%s': 0x%llx: bit 17 is reserved and must be 1", key,
				    (unsigned long long)v);
		if ((v >> 26) != 0)
			return sim_fail(err, errlen, "key '%s': 0x%llx: bits 63:26 are reserved and must be 0",
				    key, (unsigned long long)v);
		l->policy = v;
		return 0;
	case K_PLATFORM_INFO:
		if (sim_parse_u64(value, UINT64_MAX, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not an unsigned 64-bit number", key, value);
		if ((v >> 8) != 0)
			return sim_fail(err, errlen, "key '%s': 0x%llx: bits 63:8 are reserved and must be 0",
				    key, (unsigned long long)v);
		l->platform_info = v;
		return 0;
	case K_GUEST_SVN:
		if (sim_parse_u64(value, UINT32_MAX, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not a number 0..4294967295", key, value);
		l->guest_svn = (uint32_t)v;
		return 0;
	case K_TCB:
		if (sim_parse_u64(value, UINT64_MAX, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not a u64 TCB_VERSION (0x… or decimal)",
				    key, value);
		l->tcb[k->idx] = v;
		l->tcb_set[k->idx] = true;
		return 0;
	case K_TCB_COMP: {
		int w = k->idx / SIM_COMP_COUNT, c = k->idx % SIM_COMP_COUNT;

		if (sim_parse_u64(value, 255, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not an SPL 0..255", key, value);
		l->tcb_comp[w][c] = (uint8_t)v;
		l->tcb_comp_set[w] |= 1u << c;
		return 0;
	}
	case K_VERSION:
		if (parse_version(value, k->idx == 0 ? l->current_version : l->committed_version) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not major.minor.build (each 0..255)",
				    key, value);
		if (k->idx == 1)
			l->committed_version_set = true;
		return 0;
	case K_CHIP_ID: {
		uint8_t id[SNP_CHIP_ID_LEN];

		memset(id, 0, sizeof(id));
		if (sim_parse_hex(value, id, SNP_CHIP_ID_LEN) != 0 &&
		    sim_parse_hex(value, id, SNP_HWID_LEN_TURIN) != 0)
			return sim_fail(err, errlen,
				    "key '%s': expected 128 hex digits (or 16 for a Turin chip), got '%.40s%s'",
				    key, value, strlen(value) > 40 ? "…" : "");
		memcpy(l->chip_id, id, sizeof(id));
		l->chip_id_set = true;
		return 0;
	}
	case K_BOOL: {
		bool b;

		if (parse_bool(value, &b) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not true/false/yes/no/on/off/1/0", key, value);
		memcpy(base + k->off, &b, sizeof(b));
		return 0;
	}
	case K_SIGNING_KEY:
		if (strcasecmp(value, "vcek") == 0)
			l->signing_key = SNP_SIGNING_KEY_VCEK;
		else if (strcasecmp(value, "vlek") == 0)
			l->signing_key = SNP_SIGNING_KEY_VLEK;
		else
			return sim_fail(err, errlen, "key '%s': '%.40s' is not vcek or vlek", key, value);
		return 0;
	case K_REPORT_VERSION:
		if (sim_parse_u64(value, 255, &v) != 0 || (v != 2 && v != 3 && v != 5))
			return sim_fail(err, errlen, "key '%s': '%.40s' is not 2, 3 or 5", key, value);
		l->report_version = (unsigned)v;
		return 0;
	case K_VMPL:
		if (sim_parse_u64(value, 3, &v) != 0)
			return sim_fail(err, errlen, "key '%s': '%.40s' is not a VMPL 0..3", key, value);
		l->guest_vmpl = (uint32_t)v;
		return 0;
	}
	return sim_fail(err, errlen, "key '%s': internal error", key);
}

/* One key of a launch file: the [launch] section or none. */
static int
launch_ini_entry(void *arg, const char *section, const char *name, const char *value, char *msg,
		 size_t msglen)
{
	if (section[0] != '\0' && strcmp(section, "launch") != 0)
		return sim_fail(msg, msglen, "key '%s': unknown section [%s] (use [launch])", name,
				section);
	return sim_launch_set(arg, name, value, msg, msglen);
}

int
sim_launch_load_file(struct sim_launch *l, const char *path, char *err, size_t errlen)
{
	return inifile_load(path, launch_ini_entry, l, err, errlen);
}

/* Component order in snp_tcb for sim_tcb_comp. */
static uint8_t *
comp_field(snp_tcb *t, int c)
{
	switch (c) {
	case SIM_COMP_FMC: return &t->fmc;
	case SIM_COMP_BL: return &t->bootloader;
	case SIM_COMP_TEE: return &t->tee;
	case SIM_COMP_SNP: return &t->snp;
	default: return &t->microcode;
	}
}

int
sim_launch_finalize(struct sim_launch *l, char *err, size_t errlen)
{
	snp_tcb t;
	int w, c;

	for (w = 0; w < SIM_TCB_COUNT; w++) {
		uint64_t raw;

		if (l->tcb_set[w])
			raw = l->tcb[w];
		else if (w == SIM_TCB_CURRENT)
			raw = sim_launch_default_tcb(l->product);
		else
			raw = l->tcb[SIM_TCB_CURRENT]; /* resolved first */
		snp_tcb_decode(raw, l->product, &t);
		if (snp_tcb_encode(&t, l->product) != raw)
			return sim_fail(err, errlen,
				    "key '%s': 0x%016llx has reserved bytes set for the %s TCB layout",
				    tcb_names[w], (unsigned long long)raw, snp_product_name(l->product));
		if ((l->tcb_comp_set[w] & (1u << SIM_COMP_FMC)) && l->product != SNP_PRODUCT_TURIN)
			return sim_fail(err, errlen, "key '%s_fmc': only Turin has an FMC SPL", tcb_names[w]);
		for (c = 0; c < SIM_COMP_COUNT; c++) {
			if (l->tcb_comp_set[w] & (1u << c))
				*comp_field(&t, c) = l->tcb_comp[w][c];
		}
		l->tcb[w] = snp_tcb_encode(&t, l->product);
	}
	if (!l->committed_version_set)
		memcpy(l->committed_version, l->current_version, 3);
	if (l->boot.ovmf[0] != '\0') {
		if (l->measurement_set)
			return sim_fail(err, errlen,
				    "keys 'measurement' and 'boot_ovmf': give one; the measurement is computed from the boot inputs");
		if (sim_boot_measure(&l->boot, l->measurement, err, errlen) != 0)
			return -1;
	} else if (l->boot.kernel[0] != '\0' || l->boot.initrd[0] != '\0' || l->boot.append_set) {
		return sim_fail(err, errlen, "keys 'boot_kernel', 'boot_initrd', 'boot_append' need 'boot_ovmf'");
	}
	if (l->chip_id_set) {
		size_t used = l->product == SNP_PRODUCT_TURIN ? SNP_HWID_LEN_TURIN : SNP_CHIP_ID_LEN;
		size_t i;

		for (i = used; i < SNP_CHIP_ID_LEN; i++) {
			if (l->chip_id[i] != 0)
				return sim_fail(err, errlen,
					    "key 'chip_id': a Turin chip id has 8 bytes; bytes 8..63 must be zero");
		}
		for (i = 0; i < used && l->chip_id[i] == 0; i++)
			;
		if (i == used)
			return sim_fail(err, errlen,
				    "key 'chip_id': all zero; set mask_chip_id = true to simulate a masked CHIP_ID");
	}
	return 0;
}

static void
print_hex(FILE *f, const char *name, const uint8_t *p, size_t n)
{
	char hex[2 * SNP_CHIP_ID_LEN + 1];

	hex_encode(p, n, hex);
	(void)fprintf(f, "%s = %s\n", name, hex);
}

void
sim_launch_print(const struct sim_launch *l, FILE *f)
{
	int w;

	(void)fprintf(f, "product = %s\n", snp_product_name(l->product));
	print_hex(f, "measurement", l->measurement, sizeof(l->measurement));
	print_hex(f, "host_data", l->host_data, sizeof(l->host_data));
	print_hex(f, "family_id", l->family_id, sizeof(l->family_id));
	print_hex(f, "image_id", l->image_id, sizeof(l->image_id));
	print_hex(f, "id_key_digest", l->id_key_digest, sizeof(l->id_key_digest));
	print_hex(f, "author_key_digest", l->author_key_digest, sizeof(l->author_key_digest));
	(void)fprintf(f, "policy = 0x%llx\n", (unsigned long long)l->policy);
	(void)fprintf(f, "guest_svn = %u\n", l->guest_svn);
	(void)fprintf(f, "platform_info = 0x%llx\n", (unsigned long long)l->platform_info);
	for (w = 0; w < SIM_TCB_COUNT; w++)
		(void)fprintf(f, "%s = 0x%016llx\n", tcb_names[w], (unsigned long long)l->tcb[w]);
	(void)fprintf(f, "current_version = %u.%u.%u\n", l->current_version[0], l->current_version[1],
		      l->current_version[2]);
	(void)fprintf(f, "committed_version = %u.%u.%u\n", l->committed_version[0],
		      l->committed_version[1], l->committed_version[2]);
	if (l->chip_id_set)
		print_hex(f, "chip_id", l->chip_id, SNP_CHIP_ID_LEN);
	else
		(void)fprintf(f, "chip_id = (from the state directory's chip secret)\n");
	(void)fprintf(f, "mask_chip_id = %s\n", l->mask_chip_id ? "true" : "false");
	(void)fprintf(f, "signing_key = %s\n", l->signing_key == SNP_SIGNING_KEY_VLEK ? "vlek" : "vcek");
	(void)fprintf(f, "report_version = %u\n", l->report_version);
	(void)fprintf(f, "guest_vmpl = %u\n", l->guest_vmpl);
	(void)fprintf(f, "launch_mit_vector = 0x%llx\n", (unsigned long long)l->launch_mit_vector);
	(void)fprintf(f, "current_mit_vector = 0x%llx\n", (unsigned long long)l->current_mit_vector);
	if (l->boot.ovmf[0] != '\0') {
		(void)fprintf(f, "boot_ovmf = %s\n", l->boot.ovmf);
		if (l->boot.kernel[0] != '\0')
			(void)fprintf(f, "boot_kernel = %s\n", l->boot.kernel);
		if (l->boot.initrd[0] != '\0')
			(void)fprintf(f, "boot_initrd = %s\n", l->boot.initrd);
		if (l->boot.append_set)
			(void)fprintf(f, "boot_append = %s\n", l->boot.append);
		(void)fprintf(f, "boot_vcpus = %u\nboot_vcpu_type = %s\nboot_vmm_type = %s\n",
			      l->boot.vcpus, l->boot.vcpu_type, snp_vmm_type_name(l->boot.vmm));
		(void)fprintf(f, "boot_guest_features = 0x%llx\n",
			      (unsigned long long)l->boot.guest_features);
	}
}
