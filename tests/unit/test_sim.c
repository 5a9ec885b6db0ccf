/*
 * Unit tests: the snpsimd modules (src/sim).  Reports of every version,
 * product and signing key verify against the simulator's pinned roots and fail
 * with `chain` against AMD's; the launch configuration shows in the fields;
 * firmware refusals; derived keys; launch-file errors; the socket protocol.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nitride/snp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/rbuf.h"
#include "sim/sim_firmware.h"
#include "sim/sim_launch.h"
#include "sim/sim_server.h"
#include "sim/sim_state.h"
#include "snp/guestmsg.h"
#include "snp/simproto.h"
#include "testsupport.h"

static const snp_product products[3] = { SNP_PRODUCT_MILAN, SNP_PRODUCT_GENOA, SNP_PRODUCT_TURIN };

/* Shared by all tests: one state directory with the three hierarchies. */
static char state_dir[512];
static struct sim_state *state;
static snp_trust *sim_trust; /* pins the simulator's ARKs */
static snp_trust *amd_trust; /* AMD's roots only */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_tree(const char *dir)
{
	(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
make_temp_dir(char *buf, size_t len)
{
	const char *base = getenv("NITRIDE_TEST_TMP");

	(void)snprintf(buf, len, "%s/test_sim.XXXXXX", base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(buf) == NULL)
		fail_msg("mkdtemp %s: %s", buf, strerror(errno));
}

static snp_cert *
ca_cert(snp_product p, snp_cert_role role)
{
	char err[SIM_LAUNCH_ERR_MAX];
	snp_error e = { 0 };
	snp_cert *c = NULL;
	uint8_t *der = NULL;
	size_t len = 0;

	if (sim_state_ca_cert(state, p, role, false, &der, &len, err, sizeof(err)) != 0)
		fail_msg("ca cert: %s", err);
	if (snp_cert_parse(der, len, &c, &e) != SNP_OK)
		fail_msg("parse CA cert: %s", e.detail);
	free(der);
	return c;
}

static int
group_setup(void **ctx)
{
	char err[SIM_LAUNCH_ERR_MAX], dir[4096];
	snp_error e = { 0 };
	size_t i;

	(void)ctx;
	make_temp_dir(state_dir, sizeof(state_dir));
	if (sim_state_open(state_dir, &state, err, sizeof(err)) != 0)
		fail_msg("state: %s", err);
	assert_int_equal(snp_trust_new(&sim_trust), SNP_OK);
	for (i = 0; i < 3; i++) {
		snp_cert_role roles[3] = { SNP_ROLE_ARK, SNP_ROLE_ASK, SNP_ROLE_ASVK };
		uint8_t pin[32];
		int k;

		if (sim_state_ensure_ca(state, products[i], err, sizeof(err)) != 0)
			fail_msg("ensure_ca: %s", err);
		for (k = 0; k < 3; k++) {
			snp_cert *c = ca_cert(products[i], roles[k]);

			assert_int_equal(snp_cert_get_role(c), roles[k]);
			assert_int_equal(snp_cert_product(c), products[i]);
			if (k == 0) {
				snp_cert_spki_sha256(c, pin);
				assert_int_equal(snp_trust_pin(sim_trust, products[i], pin), SNP_OK);
			}
			if (snp_trust_add_cert(sim_trust, c, &e) != SNP_OK)
				fail_msg("add %s: %s", snp_cert_role_name(roles[k]), e.detail);
			snp_cert_free(c);
		}
	}
	assert_int_equal(snp_trust_new(&amd_trust), SNP_OK);
	(void)snprintf(dir, sizeof(dir), "%s/amd", ts_vectors_dir());
	if (snp_trust_load_dir(amd_trust, dir, &e) != SNP_OK)
		fail_msg("load %s: %s", dir, e.detail);
	return 0;
}

static int
group_teardown(void **ctx)
{
	(void)ctx;
	snp_trust_free(sim_trust);
	snp_trust_free(amd_trust);
	sim_state_free(state);
	rm_tree(state_dir);
	return 0;
}

static void
launch_defaults(struct sim_launch *l, snp_product p)
{
	char err[SIM_LAUNCH_ERR_MAX];

	sim_launch_init(l);
	l->product = p;
	if (sim_launch_finalize(l, err, sizeof(err)) != 0)
		fail_msg("finalize: %s", err);
}

static struct sim_fw *
launch(const struct sim_launch *l)
{
	char err[SIM_LAUNCH_ERR_MAX];
	struct sim_fw *fw = NULL;

	if (sim_fw_new(l, state, &fw, err, sizeof(err)) != 0)
		fail_msg("sim_fw_new: %s", err);
	return fw;
}

/* The signer certificate from the firmware's certificate table. */
static snp_cert *
signer_from_table(const struct sim_fw *fw, snp_cert_kind kind)
{
	snp_certtable *t = NULL;
	snp_error e = { 0 };
	const uint8_t *tb, *blob;
	size_t tlen, blen;
	snp_cert *c = NULL;

	tb = sim_fw_certtable(fw, &tlen);
	if (snp_certtable_parse(tb, tlen, &t, &e) != SNP_OK)
		fail_msg("certtable: %s", e.detail);
	assert_int_equal(snp_certtable_count(t), 3);
	assert_int_equal(snp_certtable_find(t, kind, &blob, &blen), SNP_OK);
	assert_int_equal(snp_cert_parse(blob, blen, &c, &e), SNP_OK);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_ASK, &blob, &blen), SNP_OK);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_ARK, &blob, &blen), SNP_OK);
	snp_certtable_free(t);
	return c;
}

static snp_report *
get_report(const struct sim_fw *fw, uint32_t vmpl, uint8_t data[SNP_REPORT_DATA_LEN])
{
	struct snp_report_req req;
	uint8_t rep[SNP_REPORT_SIZE];
	snp_report *r = NULL;
	snp_error e = { 0 };

	assert_int_equal(RAND_bytes(data, SNP_REPORT_DATA_LEN), 1);
	memcpy(req.report_data, data, SNP_REPORT_DATA_LEN);
	req.vmpl = vmpl;
	assert_int_equal(sim_fw_get_report(fw, &req, rep), SNP_FW_STATUS_SUCCESS);
	if (snp_report_parse(rep, sizeof(rep), &r, &e) != SNP_OK)
		fail_msg("snp_report_parse: %s", e.detail);
	return r;
}

/* Every version x product x signing key verifies with the simulator's roots only. */
static void
test_matrix_verifies(void **ctx)
{
	static const unsigned versions[3] = { 2, 3, 5 };
	size_t v, p, k;

	(void)ctx;
	for (v = 0; v < 3; v++) {
		for (p = 0; p < 3; p++) {
			for (k = 0; k < 2; k++) {
				struct sim_launch l;
				struct sim_fw *fw;
				snp_report *rep;
				snp_cert *signer;
				snp_verify_result res;
				snp_verify_opts opts = { 0 };
				snp_error e = { 0 };
				uint8_t data[SNP_REPORT_DATA_LEN];
				unsigned key = k == 0 ? SNP_SIGNING_KEY_VCEK : SNP_SIGNING_KEY_VLEK;
				int r;

				launch_defaults(&l, products[p]);
				l.report_version = versions[v];
				l.signing_key = key;
				fw = launch(&l);
				rep = get_report(fw, 0, data);
				signer = signer_from_table(fw, k == 0 ? SNP_CERT_KIND_VCEK : SNP_CERT_KIND_VLEK);
				assert_int_equal(snp_report_version(rep), versions[v]);
				assert_int_equal(snp_report_signing_key(rep), key);
				assert_int_equal(snp_cert_get_role(signer), k == 0 ? SNP_ROLE_VCEK : SNP_ROLE_VLEK);
				assert_int_equal(snp_report_verify_signature(rep, signer, &e), SNP_OK);
				if (versions[v] >= 3)
					assert_int_equal(snp_report_cpuid_product(rep), products[p]);
				r = snp_verify(sim_trust, rep, signer, &opts, &res, &e);
				if (r != SNP_OK)
					fail_msg("v%u %s %s: %s", versions[v], snp_product_name(products[p]),
						 k == 0 ? "vcek" : "vlek", e.detail);
				assert_int_equal(res.product, products[p]);
				assert_int_equal(res.signing_key, key);
				assert_int_equal(snp_verify(amd_trust, rep, signer, &opts, NULL, &e), SNP_E_CHAIN);
				snp_cert_free(signer);
				snp_report_free(rep);
				sim_fw_free(fw);
			}
		}
	}
}

/* REPORT_DATA and VMPL are echoed; REPORT_ID is per launch; REPORT_ID_MA all FF. */
static void
test_echo(void **ctx)
{
	struct sim_launch l;
	struct sim_fw *fw, *fw2;
	snp_report *a, *b, *c;
	uint8_t da[SNP_REPORT_DATA_LEN], db[SNP_REPORT_DATA_LEN], dc[SNP_REPORT_DATA_LEN], ff[32];

	(void)ctx;
	launch_defaults(&l, SNP_PRODUCT_GENOA);
	fw = launch(&l);
	fw2 = launch(&l);
	a = get_report(fw, 0, da);
	b = get_report(fw, 3, db);
	c = get_report(fw2, 2, dc);
	assert_memory_equal(snp_report_report_data(a), da, SNP_REPORT_DATA_LEN);
	assert_memory_equal(snp_report_report_data(b), db, SNP_REPORT_DATA_LEN);
	assert_memory_not_equal(snp_report_report_data(a), snp_report_report_data(b), SNP_REPORT_DATA_LEN);
	assert_int_equal(snp_report_vmpl(a), 0);
	assert_int_equal(snp_report_vmpl(b), 3);
	assert_int_equal(snp_report_vmpl(c), 2);
	assert_memory_equal(snp_report_report_id(a), snp_report_report_id(b), SNP_REPORT_ID_LEN);
	assert_memory_not_equal(snp_report_report_id(a), snp_report_report_id(c), SNP_REPORT_ID_LEN);
	memset(ff, 0xFF, sizeof(ff));
	assert_memory_equal(snp_report_report_id_ma(a), ff, 32);
	snp_report_free(a);
	snp_report_free(b);
	snp_report_free(c);
	sim_fw_free(fw);
	sim_fw_free(fw2);
}

static void
set(struct sim_launch *l, const char *key, const char *value)
{
	char err[SIM_LAUNCH_ERR_MAX];

	if (sim_launch_set(l, key, value, err, sizeof(err)) != 0)
		fail_msg("set %s: %s", key, err);
}

static void
hex_fill(char *out, size_t nbytes, uint8_t start)
{
	size_t i;

	for (i = 0; i < nbytes; i++)
		(void)snprintf(out + 2 * i, 3, "%02x", (uint8_t)(start + i));
}

/* The launch configuration appears in the report fields. */
static void
test_launch_fields(void **ctx)
{
	char hex[2 * 64 + 1], err[SIM_LAUNCH_ERR_MAX];
	uint8_t want[64], data[SNP_REPORT_DATA_LEN], zero[64];
	struct sim_launch l;
	struct sim_fw *fw;
	snp_report *r;
	snp_cert *vcek;
	snp_error e = { 0 };
	snp_tcb t;
	size_t i;

	(void)ctx;
	memset(zero, 0, sizeof(zero));
	sim_launch_init(&l);
	set(&l, "product", "milan");
	hex_fill(hex, 48, 0x10);
	set(&l, "measurement", hex);
	hex_fill(hex, 32, 0x40);
	set(&l, "host_data", hex);
	hex_fill(hex, 16, 0x60);
	set(&l, "family_id", hex);
	hex_fill(hex, 16, 0x70);
	set(&l, "image_id", hex);
	hex_fill(hex, 48, 0x80);
	set(&l, "id_key_digest", hex);
	hex_fill(hex, 48, 0xB0);
	set(&l, "author_key_digest", hex);
	hex_fill(hex, 64, 0xC0);
	set(&l, "chip_id", hex);
	set(&l, "policy", "0x3001f");
	set(&l, "guest_svn", "7");
	set(&l, "platform_info", "0x25");
	set(&l, "current_tcb_snp", "9");
	set(&l, "current_tcb_ucode", "0xd1");
	set(&l, "committed_tcb_snp", "8");
	set(&l, "launch_tcb", "0x7308000000000002");
	set(&l, "reported_tcb_bl", "2");
	set(&l, "current_version", "1.55.29");
	set(&l, "committed_version", "1.54.1");
	set(&l, "report_version", "5");
	set(&l, "launch_mit_vector", "0x5");
	set(&l, "current_mit_vector", "7");
	set(&l, "guest_vmpl", "1");
	if (sim_launch_finalize(&l, err, sizeof(err)) != 0)
		fail_msg("finalize: %s", err);
	fw = launch(&l);
	r = get_report(fw, 1, data);
	for (i = 0; i < 48; i++)
		want[i] = (uint8_t)(0x10 + i);
	assert_memory_equal(snp_report_measurement(r), want, 48);
	for (i = 0; i < 32; i++)
		want[i] = (uint8_t)(0x40 + i);
	assert_memory_equal(snp_report_host_data(r), want, 32);
	for (i = 0; i < 16; i++)
		want[i] = (uint8_t)(0x60 + i);
	assert_memory_equal(snp_report_family_id(r), want, 16);
	for (i = 0; i < 16; i++)
		want[i] = (uint8_t)(0x70 + i);
	assert_memory_equal(snp_report_image_id(r), want, 16);
	for (i = 0; i < 48; i++)
		want[i] = (uint8_t)(0x80 + i);
	assert_memory_equal(snp_report_id_key_digest(r), want, 48);
	for (i = 0; i < 48; i++)
		want[i] = (uint8_t)(0xB0 + i);
	assert_memory_equal(snp_report_author_key_digest(r), want, 48);
	assert_int_equal(snp_report_key_info(r) & 1u, 1u); /* AUTHOR_KEY_EN */
	for (i = 0; i < 64; i++)
		want[i] = (uint8_t)(0xC0 + i);
	assert_memory_equal(snp_report_chip_id(r), want, 64);
	assert_int_equal(snp_report_policy(r), 0x3001f);
	assert_int_equal(snp_report_guest_svn(r), 7);
	assert_int_equal(snp_report_platform_info(r), 0x25);
	snp_tcb_decode(snp_report_current_tcb(r), SNP_PRODUCT_MILAN, &t);
	assert_int_equal(t.bootloader, 3);
	assert_int_equal(t.snp, 9);
	assert_int_equal(t.microcode, 0xd1);
	/* committed defaults to current, then its snp component is overridden */
	snp_tcb_decode(snp_report_committed_tcb(r), SNP_PRODUCT_MILAN, &t);
	assert_int_equal(t.snp, 8);
	assert_int_equal(t.microcode, 0xd1);
	assert_int_equal(snp_report_launch_tcb(r), 0x7308000000000002ull);
	snp_tcb_decode(snp_report_reported_tcb(r), SNP_PRODUCT_MILAN, &t);
	assert_int_equal(t.bootloader, 2);
	assert_int_equal(t.snp, 9);
	assert_int_equal(snp_report_current_major(r), 1);
	assert_int_equal(snp_report_current_minor(r), 55);
	assert_int_equal(snp_report_current_build(r), 29);
	assert_int_equal(snp_report_committed_minor(r), 54);
	assert_int_equal(snp_report_committed_build(r), 1);
	assert_int_equal(snp_report_launch_mit_vector(r), 5);
	assert_int_equal(snp_report_current_mit_vector(r), 7);
	assert_int_equal(snp_report_cpuid_fam_id(r), 0x19);
	assert_int_equal(snp_report_cpuid_mod_id(r), 0x01);
	assert_int_equal(snp_report_cpuid_step(r), 0x01);
	/* The VCEK was issued for REPORTED_TCB and this chip, and the report verifies. */
	vcek = signer_from_table(fw, SNP_CERT_KIND_VCEK);
	assert_string_equal(snp_cert_product_name(vcek), "Milan-B0");
	assert_int_equal(snp_cert_struct_version(vcek), 0);
	assert_int_equal(snp_cert_tcb(vcek, &t), SNP_OK);
	assert_int_equal(t.bootloader, 2);
	{
		size_t hl = 0;
		const uint8_t *hw = snp_cert_hwid(vcek, &hl);

		assert_int_equal(hl, 64);
		assert_memory_equal(hw, want, 64);
	}
	if (snp_verify(sim_trust, r, vcek, NULL, NULL, &e) != SNP_OK)
		fail_msg("verify: %s", e.detail);
	snp_cert_free(vcek);
	snp_report_free(r);
	sim_fw_free(fw);

	/* MASK_CHIP_ID: zero CHIP_ID (VLEK-signed so that verification still applies). */
	sim_launch_init(&l);
	set(&l, "product", "genoa");
	set(&l, "mask_chip_id", "yes");
	set(&l, "signing_key", "vlek");
	set(&l, "report_version", "3");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), 0);
	fw = launch(&l);
	r = get_report(fw, 0, data);
	assert_memory_equal(snp_report_chip_id(r), zero, 64);
	assert_int_equal(snp_report_key_info(r), 1u << 2); /* VLEK, no author key */
	assert_int_equal(snp_report_launch_mit_vector(r), 0);
	snp_report_free(r);
	sim_fw_free(fw);
}

/* Turin: 8-byte chip id and hwID, fmcSPL and structVersion 1 in the VCEK. */
static void
test_turin_vcek(void **ctx)
{
	struct sim_launch l;
	struct sim_fw *fw;
	snp_report *r;
	snp_cert *vcek;
	snp_tcb t;
	uint8_t data[SNP_REPORT_DATA_LEN], zero[64] = { 0 };
	const uint8_t *hw;
	size_t hl = 0;
	char err[SIM_LAUNCH_ERR_MAX];

	(void)ctx;
	sim_launch_init(&l);
	set(&l, "product", "turin");
	set(&l, "current_tcb_fmc", "3");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), 0);
	fw = launch(&l);
	r = get_report(fw, 0, data);
	vcek = signer_from_table(fw, SNP_CERT_KIND_VCEK);
	assert_string_equal(snp_cert_product_name(vcek), "Turin");
	assert_int_equal(snp_cert_struct_version(vcek), 1);
	assert_int_equal(snp_cert_tcb(vcek, &t), SNP_OK);
	assert_int_equal(t.fmc, 3);
	hw = snp_cert_hwid(vcek, &hl);
	assert_int_equal(hl, 8);
	assert_memory_equal(hw, snp_report_chip_id(r), 8);
	assert_memory_not_equal(hw, zero, 8);
	assert_memory_equal(snp_report_chip_id(r) + 8, zero, 56);
	assert_int_equal(snp_report_cpuid_fam_id(r), 0x1A);
	assert_int_equal(snp_report_cpuid_mod_id(r), 0x02);
	snp_cert_free(vcek);
	snp_report_free(r);
	sim_fw_free(fw);
}

/* The firmware's INVALID_PARAM answers. */
static void
test_invalid_param(void **ctx)
{
	struct sim_launch l;
	struct sim_fw *fw;
	struct snp_report_req req;
	snp_key_request kr;
	uint8_t rep[SNP_REPORT_SIZE], key[32], wire[MSG_REPORT_REQ_SIZE], rsp[MSG_REPORT_RSP_SIZE];
	uint8_t kwire[MSG_KEY_REQ_SIZE], krsp[MSG_KEY_RSP_SIZE], zero[32] = { 0 };
	char err[SIM_LAUNCH_ERR_MAX];
	snp_tcb t;

	(void)ctx;
	sim_launch_init(&l);
	set(&l, "guest_vmpl", "2");
	set(&l, "guest_svn", "5");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), 0);
	fw = launch(&l);
	memset(&req, 0, sizeof(req));
	req.vmpl = 4;
	assert_int_equal(sim_fw_get_report(fw, &req, rep), SNP_FW_STATUS_INVALID_PARAM);
	req.vmpl = 1; /* more privileged than the guest */
	assert_int_equal(sim_fw_get_report(fw, &req, rep), SNP_FW_STATUS_INVALID_PARAM);
	req.vmpl = 2;
	assert_int_equal(sim_fw_get_report(fw, &req, rep), SNP_FW_STATUS_SUCCESS);
	/* Reserved bytes of MSG_REPORT_REQ */
	guestmsg_encode_report_req(&req, wire);
	wire[MSG_REPORT_REQ_SIZE - 1] = 1;
	assert_int_equal(sim_fw_report_msg(fw, wire, sizeof(wire), rsp), 0);
	assert_int_equal(rsp[0], SNP_FW_STATUS_INVALID_PARAM);
	wire[MSG_REPORT_REQ_SIZE - 1] = 0;
	assert_int_equal(sim_fw_report_msg(fw, wire, sizeof(wire), rsp), 0);
	assert_int_equal(rsp[0], SNP_FW_STATUS_SUCCESS);
	assert_int_equal(sim_fw_report_msg(fw, wire, sizeof(wire) - 1, rsp), -1);

	memset(&kr, 0, sizeof(kr));
	kr.vmpl = 2;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_SUCCESS);
	kr.vmpl = 1;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	assert_memory_equal(key, zero, 32);
	kr.vmpl = 4;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	kr.vmpl = 3;
	kr.guest_svn = 6;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	kr.guest_svn = 5;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_SUCCESS);
	kr.tcb_version = l.tcb[SIM_TCB_COMMITTED];
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_SUCCESS);
	snp_tcb_decode(l.tcb[SIM_TCB_COMMITTED], l.product, &t);
	t.snp++;
	kr.tcb_version = snp_tcb_encode(&t, l.product);
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	kr.tcb_version = l.tcb[SIM_TCB_COMMITTED] | (1ull << 24); /* a reserved byte */
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	kr.tcb_version = 0;
	kr.guest_field_select = 1ull << 6; /* LAUNCH_MIT_VECTOR: not in message version 1 */
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	kr.guest_field_select = 0;
	kr.root_key = 2;
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), SNP_FW_STATUS_INVALID_PARAM);
	/* Wire: reserved bits are INVALID_PARAM, a wrong length is not a request. */
	kr.root_key = 0;
	guestmsg_encode_key_req(&kr, kwire);
	kwire[4] = 1;
	assert_int_equal(sim_fw_key_msg(fw, kwire, sizeof(kwire), krsp), 0);
	assert_int_equal(krsp[0], SNP_FW_STATUS_INVALID_PARAM);
	kwire[4] = 0;
	assert_int_equal(sim_fw_key_msg(fw, kwire, sizeof(kwire), krsp), 0);
	assert_int_equal(krsp[0], SNP_FW_STATUS_SUCCESS);
	assert_int_equal(sim_fw_key_msg(fw, kwire, sizeof(kwire) + 1, krsp), -1);
	sim_fw_free(fw);
}

static void
derive(const struct sim_fw *fw, const snp_key_request *kr, uint8_t key[32])
{
	assert_int_equal(sim_fw_derive_key(fw, kr, key), SNP_FW_STATUS_SUCCESS);
}

/* One launch-field change: different key when selected, same key when not. */
static void
check_field(const char *key_name, const char *value, uint64_t field)
{
	struct sim_launch a, b;
	struct sim_fw *fa, *fb;
	snp_key_request kr;
	uint8_t ka[32], kb[32];
	char err[SIM_LAUNCH_ERR_MAX];

	launch_defaults(&a, SNP_PRODUCT_GENOA);
	sim_launch_init(&b);
	set(&b, key_name, value);
	assert_int_equal(sim_launch_finalize(&b, err, sizeof(err)), 0);
	fa = launch(&a);
	fb = launch(&b);
	memset(&kr, 0, sizeof(kr));
	kr.guest_field_select = field;
	derive(fa, &kr, ka);
	derive(fb, &kr, kb);
	if (memcmp(ka, kb, 32) == 0)
		fail_msg("%s selected: keys equal", key_name);
	kr.guest_field_select = SNP_KEY_FIELD_MASK & ~field;
	derive(fa, &kr, ka);
	derive(fb, &kr, kb);
	if (memcmp(ka, kb, 32) != 0)
		fail_msg("%s not selected: keys differ", key_name);
	sim_fw_free(fa);
	sim_fw_free(fb);
}

static void
test_derived_keys(void **ctx)
{
	char hex[97];
	struct sim_launch l;
	struct sim_fw *f1, *f2;
	snp_key_request kr, k2;
	uint8_t a[32], b[32], zero[32] = { 0 };
	char err[SIM_LAUNCH_ERR_MAX];
	snp_tcb t;

	(void)ctx;
	/* Deterministic: two launches of the same configuration, same key. */
	sim_launch_init(&l);
	set(&l, "guest_svn", "3");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), 0);
	f1 = launch(&l);
	f2 = launch(&l);
	memset(&kr, 0, sizeof(kr));
	kr.guest_field_select = SNP_KEY_FIELD_MASK;
	kr.guest_svn = 2;
	kr.tcb_version = l.tcb[SIM_TCB_COMMITTED];
	derive(f1, &kr, a);
	derive(f2, &kr, b);
	assert_memory_equal(a, b, 32);
	assert_memory_not_equal(a, zero, 32);
	/* Request fields: SVN, TCB, root, VMPL */
	k2 = kr;
	k2.guest_svn = 3;
	derive(f1, &k2, b);
	assert_memory_not_equal(a, b, 32);
	k2 = kr;
	snp_tcb_decode(kr.tcb_version, l.product, &t);
	t.microcode--;
	k2.tcb_version = snp_tcb_encode(&t, l.product);
	derive(f1, &k2, b);
	assert_memory_not_equal(a, b, 32);
	k2 = kr;
	k2.root_key = SNP_KEY_ROOT_VMRK;
	derive(f1, &k2, b);
	assert_memory_not_equal(a, b, 32);
	k2 = kr;
	k2.vmpl = 1;
	derive(f1, &k2, b);
	assert_memory_not_equal(a, b, 32);
	/* SVN and TCB not selected: their values do not matter. */
	kr.guest_field_select = SNP_KEY_FIELD_MEASUREMENT;
	derive(f1, &kr, a);
	k2 = kr;
	k2.guest_svn = 1;
	k2.tcb_version = 0;
	derive(f1, &k2, b);
	assert_memory_equal(a, b, 32);
	sim_fw_free(f1);
	sim_fw_free(f2);
	/* Launch fields */
	hex_fill(hex, 48, 0x33);
	check_field("measurement", hex, SNP_KEY_FIELD_MEASUREMENT);
	check_field("policy", "0x70000", SNP_KEY_FIELD_POLICY);
	hex_fill(hex, 16, 0x44);
	check_field("image_id", hex, SNP_KEY_FIELD_IMAGE_ID);
	check_field("family_id", hex, SNP_KEY_FIELD_FAMILY_ID);
	/* Fields that never enter the key (host data) change nothing even with all selected. */
	{
		struct sim_launch x, y;
		struct sim_fw *fx, *fy;

		launch_defaults(&x, SNP_PRODUCT_GENOA);
		sim_launch_init(&y);
		hex_fill(hex, 32, 0x55);
		set(&y, "host_data", hex);
		assert_int_equal(sim_launch_finalize(&y, err, sizeof(err)), 0);
		fx = launch(&x);
		fy = launch(&y);
		memset(&kr, 0, sizeof(kr));
		kr.guest_field_select = SNP_KEY_FIELD_MASK & ~SNP_KEY_FIELD_TCB_VERSION;
		derive(fx, &kr, a);
		derive(fy, &kr, b);
		assert_memory_equal(a, b, 32);
		sim_fw_free(fx);
		sim_fw_free(fy);
	}
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
expect_file_error(const char *text, const char *want1, const char *want2)
{
	char path[600], err[SIM_LAUNCH_ERR_MAX];
	struct sim_launch l;

	(void)snprintf(path, sizeof(path), "%s/launch.ini", state_dir);
	write_file(path, text);
	sim_launch_init(&l);
	assert_int_equal(sim_launch_load_file(&l, path, err, sizeof(err)), -1);
	if (strstr(err, path) == NULL || strstr(err, want1) == NULL ||
	    (want2 != NULL && strstr(err, want2) == NULL))
		fail_msg("error '%s' lacks '%s' / '%s'", err, want1, want2 != NULL ? want2 : "");
	(void)unlink(path);
}

static void
test_launch_file(void **ctx)
{
	char path[600], err[SIM_LAUNCH_ERR_MAX];
	struct sim_launch l;

	(void)ctx;
	(void)snprintf(path, sizeof(path), "%s/launch.ini", state_dir);
	write_file(path, "; a comment\n[launch]\nproduct = Turin\nguest_svn = 0x10\n"
			 "signing_key = vlek\nreport_version = 5\ncurrent_tcb_fmc = 2\n"
			 "mask_chip_id = off\nchip_id = 0102030405060708\n");
	sim_launch_init(&l);
	if (sim_launch_load_file(&l, path, err, sizeof(err)) != 0)
		fail_msg("load: %s", err);
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), 0);
	assert_int_equal(l.product, SNP_PRODUCT_TURIN);
	assert_int_equal(l.guest_svn, 16);
	assert_int_equal(l.signing_key, SNP_SIGNING_KEY_VLEK);
	assert_int_equal(l.report_version, 5);
	assert_int_equal(l.tcb[SIM_TCB_REPORTED] & 0xff, 2); /* fmc is byte 0 on Turin */
	assert_int_equal(l.chip_id[7], 8);
	assert_int_equal(l.chip_id[8], 0);
	(void)unlink(path);

	expect_file_error("[launch]\nproduct = milan\npolicy = 0x10000\n", ":3:", "'policy'");
	expect_file_error("product = milan\n\nmeasurement = abcd\n", ":3:", "'measurement'");
	expect_file_error("bogus = 1\n", ":1:", "'bogus'");
	expect_file_error("[other]\nproduct = milan\n", ":2:", "[other]");
	expect_file_error("report_version = 4\n", ":1:", "'report_version'");
	expect_file_error("guest_vmpl = 4\n", ":1:", "'guest_vmpl'");
	expect_file_error("guest_svn = -1\n", ":1:", "'guest_svn'");
	expect_file_error("current_tcb_snp = 256\n", ":1:", "'current_tcb_snp'");
	expect_file_error("current_version = 1.55\n", ":1:", "'current_version'");
	expect_file_error("platform_info = 0x100\n", ":1:", "'platform_info'");
	expect_file_error("signing_key = ark\n", ":1:", "'signing_key'");
	expect_file_error("product = milan\nthis is not ini\n", ":2:", NULL);

	/* Cross-field rules at finalize name the key. */
	sim_launch_init(&l);
	set(&l, "product", "milan");
	set(&l, "current_tcb_fmc", "1");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "current_tcb_fmc"));
	sim_launch_init(&l);
	set(&l, "reported_tcb", "0x0000000000ff0000"); /* a reserved byte on Genoa */
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reported_tcb"));
	sim_launch_init(&l);
	set(&l, "product", "turin");
	set(&l, "chip_id", "01020304050607080900000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000");
	assert_int_equal(sim_launch_finalize(&l, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chip_id"));
	sim_launch_init(&l);
	assert_int_equal(sim_launch_set(&l, "nope", "1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nope"));
}

/* State: reopened, the same roots, chip id and certificates come back. */
static void
test_state_reload(void **ctx)
{
	char err[SIM_LAUNCH_ERR_MAX], path[700];
	struct sim_state *st2 = NULL;
	uint8_t *a = NULL, *b = NULL, ida[64], idb[64];
	size_t alen = 0, blen = 0;
	uint64_t tcb = sim_launch_default_tcb(SNP_PRODUCT_MILAN);
	EVP_PKEY *ka = NULL, *kb = NULL;
	struct stat sb;

	(void)ctx;
	if (sim_state_open(state_dir, &st2, err, sizeof(err)) != 0)
		fail_msg("reopen: %s", err);
	assert_int_equal(sim_state_ca_cert(state, SNP_PRODUCT_MILAN, SNP_ROLE_ARK, false, &a, &alen, err, sizeof(err)), 0);
	assert_int_equal(sim_state_ca_cert(st2, SNP_PRODUCT_MILAN, SNP_ROLE_ARK, false, &b, &blen, err, sizeof(err)), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	free(a);
	free(b);
	assert_int_equal(sim_state_chip_id(state, SNP_PRODUCT_MILAN, ida), 0);
	assert_int_equal(sim_state_chip_id(st2, SNP_PRODUCT_MILAN, idb), 0);
	assert_memory_equal(ida, idb, 64);
	assert_int_equal(sim_state_chip_id(st2, SNP_PRODUCT_GENOA, idb), 0);
	assert_memory_not_equal(ida, idb, 64);
	assert_int_equal(sim_state_leaf(state, SNP_PRODUCT_MILAN, SNP_ROLE_VCEK, ida, tcb, &a, &alen, &ka, err, sizeof(err)), 0);
	assert_int_equal(sim_state_leaf(st2, SNP_PRODUCT_MILAN, SNP_ROLE_VCEK, ida, tcb, &b, &blen, &kb, err, sizeof(err)), 0);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen); /* the stored certificate, not a new one */
	assert_int_equal(EVP_PKEY_eq(ka, kb), 1);
	free(b);
	EVP_PKEY_free(kb);
	kb = NULL;
	/* Another TCB: another key (VCEKs are per TCB). */
	assert_int_equal(sim_state_leaf(st2, SNP_PRODUCT_MILAN, SNP_ROLE_VCEK, ida, tcb - 1, &b, &blen, &kb, err, sizeof(err)), 0);
	assert_int_not_equal(EVP_PKEY_eq(ka, kb), 1);
	free(a);
	free(b);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
	sim_state_free(st2);
	/* Permissions */
	assert_int_equal(stat(state_dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	(void)snprintf(path, sizeof(path), "%s/chip.secret", state_dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	(void)snprintf(path, sizeof(path), "%s/milan/ark.key", state_dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* A secret readable by others is refused. */
	(void)snprintf(path, sizeof(path), "%s/chip.secret", state_dir);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sim_state_open(state_dir, &st2, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "chip.secret"));
	assert_int_equal(chmod(path, 0600), 0);
}

/* The CRL is signed by the ARK and accepted by the trust store. */
static void
test_crl(void **ctx)
{
	char err[SIM_LAUNCH_ERR_MAX];
	uint8_t *der = NULL;
	size_t len = 0;
	snp_error e = { 0 };

	(void)ctx;
	assert_int_equal(sim_state_crl(state, SNP_PRODUCT_GENOA, &der, &len, err, sizeof(err)), 0);
	if (snp_trust_add_crl(sim_trust, der, len, &e) != SNP_OK)
		fail_msg("add crl: %s", e.detail);
	assert_int_not_equal(snp_trust_add_crl(amd_trust, der, len, &e), SNP_OK);
	free(der);
}

struct serve_arg {
	const struct sim_fw *fw;
	int fd;
	unsigned n;
};

static void *
serve_thread(void *p)
{
	struct serve_arg *a = p;

	a->n = sim_server_serve_fd(a->fw, a->fd);
	return NULL;
}

static void
call(int fd, uint16_t type, const uint8_t *req, size_t len, uint16_t *rtype, uint8_t **rsp, size_t *rlen)
{
	assert_int_equal(simproto_write(fd, type, req, len), 0);
	assert_int_equal(simproto_read(fd, rtype, rsp, rlen, SIMPROTO_MAX_PAYLOAD), 0);
}

/* The socket protocol over a socketpair: report, extended report, key, errors. */
static void
test_socket_protocol(void **ctx)
{
	struct sim_launch l;
	struct sim_fw *fw;
	struct serve_arg arg;
	pthread_t tid;
	int sv[2];
	struct snp_report_req req;
	snp_key_request kr;
	uint8_t wire[MSG_REPORT_REQ_SIZE], kwire[MSG_KEY_REQ_SIZE], key[32];
	uint8_t *rsp = NULL;
	size_t rlen = 0, tlen = 0;
	uint16_t rtype = 0;
	uint32_t status = 0;
	const uint8_t *rep = NULL, *k = NULL, *table;
	snp_certtable *t = NULL;
	snp_error e = { 0 };

	(void)ctx;
	launch_defaults(&l, SNP_PRODUCT_MILAN);
	fw = launch(&l);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	arg.fw = fw;
	arg.fd = sv[1];
	arg.n = 0;
	assert_int_equal(pthread_create(&tid, NULL, serve_thread, &arg), 0);

	memset(&req, 0, sizeof(req));
	memset(req.report_data, 0xAB, sizeof(req.report_data));
	req.vmpl = 1;
	guestmsg_encode_report_req(&req, wire);
	call(sv[0], SIM_MSG_REPORT, wire, sizeof(wire), &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_REPORT | SIM_MSG_RESPONSE);
	assert_int_equal(rlen, MSG_REPORT_RSP_SIZE);
	assert_int_equal(guestmsg_decode_report_rsp(rsp, rlen, &status, &rep), 0);
	assert_int_equal(status, 0);
	assert_memory_equal(rep + 0x50, req.report_data, 64);
	free(rsp);

	call(sv[0], SIM_MSG_EXT_REPORT, wire, sizeof(wire), &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_EXT_REPORT | SIM_MSG_RESPONSE);
	table = sim_fw_certtable(fw, &tlen);
	assert_int_equal(rlen, MSG_REPORT_RSP_SIZE + tlen);
	assert_memory_equal(rsp + MSG_REPORT_RSP_SIZE, table, tlen);
	assert_int_equal(snp_certtable_parse(rsp + MSG_REPORT_RSP_SIZE, tlen, &t, &e), SNP_OK);
	snp_certtable_free(t);
	free(rsp);

	memset(&kr, 0, sizeof(kr));
	kr.guest_field_select = SNP_KEY_FIELD_MEASUREMENT;
	guestmsg_encode_key_req(&kr, kwire);
	call(sv[0], SIM_MSG_KEY, kwire, sizeof(kwire), &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_KEY | SIM_MSG_RESPONSE);
	assert_int_equal(guestmsg_decode_key_rsp(rsp, rlen, &status, &k), 0);
	assert_int_equal(status, 0);
	assert_int_equal(sim_fw_derive_key(fw, &kr, key), 0);
	assert_memory_equal(k, key, 32);
	free(rsp);

	/* A firmware refusal travels in the status; a wrong-size request is an error frame. */
	req.vmpl = 9;
	guestmsg_encode_report_req(&req, wire);
	call(sv[0], SIM_MSG_EXT_REPORT, wire, sizeof(wire), &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_EXT_REPORT | SIM_MSG_RESPONSE);
	assert_int_equal(rlen, MSG_REPORT_RSP_SIZE);
	assert_int_equal(guestmsg_decode_report_rsp(rsp, rlen, &status, &rep), 0);
	assert_int_equal(status, SNP_FW_STATUS_INVALID_PARAM);
	free(rsp);
	call(sv[0], SIM_MSG_REPORT, wire, 10, &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_ERROR);
	assert_true(rlen >= 4);
	assert_int_equal((int32_t)(rsp[0] | rsp[1] << 8 | rsp[2] << 16 | (uint32_t)rsp[3] << 24), SNP_E_FORMAT);
	free(rsp);
	call(sv[0], 0x42, wire, sizeof(wire), &rtype, &rsp, &rlen);
	assert_int_equal(rtype, SIM_MSG_ERROR);
	free(rsp);

	assert_int_equal(close(sv[0]), 0);
	assert_int_equal(pthread_join(tid, NULL), 0);
	assert_int_equal(arg.n, 6);
	(void)close(sv[1]);
	sim_fw_free(fw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matrix_verifies),
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_launch_fields),
		cmocka_unit_test(test_turin_vcek),
		cmocka_unit_test(test_invalid_param),
		cmocka_unit_test(test_derived_keys),
		cmocka_unit_test(test_launch_file),
		cmocka_unit_test(test_state_reload),
		cmocka_unit_test(test_crl),
		cmocka_unit_test(test_socket_protocol),
	};

	ts_require_vectors();
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
