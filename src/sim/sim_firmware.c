/*
 * The simulated firmware: reports and derived keys (sim_firmware.h).
 * Report layout: reference/snp-format.md §1; signing §1.1; messages §9.
 */
#include "sim/sim_log.h"
#include "sim/sim_firmware.h"

#include "common/rbuf.h"
#include "sim/sim_crypto.h"
#include "snp/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#define KDF_SALT "snpsimd derived key v1"
#define KDF_LABEL "SNP-SIM-MSG_KEY_REQ"

struct sim_fw {
	struct sim_launch launch;
	uint8_t secret[SIM_CHIP_SECRET_LEN];
	uint8_t report_id[SNP_REPORT_ID_LEN];
	EVP_PKEY *signer;
	uint8_t *signer_der;
	size_t signer_der_len;
	uint8_t *certs;
	size_t certs_len;
};

/* CPUID family/model/stepping the report carries for each product (v3+). */
static void
product_cpuid(snp_product p, uint8_t fms[3])
{
	switch (p) {
	case SNP_PRODUCT_MILAN: fms[0] = 0x19, fms[1] = 0x01, fms[2] = 0x01; break;
	case SNP_PRODUCT_GENOA: fms[0] = 0x19, fms[1] = 0x11, fms[2] = 0x01; break;
	default: fms[0] = 0x1A, fms[1] = 0x02, fms[2] = 0x01; break;
	}
}

static int
build_certtable(struct sim_fw *fw, struct sim_state *st, char *err, size_t errlen)
{
	bool vlek = fw->launch.signing_key == SNP_SIGNING_KEY_VLEK;
	snp_certtable *t = NULL;
	uint8_t *ask = NULL, *ark = NULL;
	size_t ask_len = 0, ark_len = 0, len = 0;
	int r = -1;

	if (sim_state_ca_cert(st, fw->launch.product, vlek ? SNP_ROLE_ASVK : SNP_ROLE_ASK, false, &ask,
			      &ask_len, err, errlen) != 0 ||
	    sim_state_ca_cert(st, fw->launch.product, SNP_ROLE_ARK, false, &ark, &ark_len, err, errlen) != 0)
		goto out;
	if (snp_certtable_new(&t) != SNP_OK ||
	    snp_certtable_add(t, vlek ? SNP_CERT_KIND_VLEK : SNP_CERT_KIND_VCEK, fw->signer_der,
			      fw->signer_der_len) != SNP_OK ||
	    snp_certtable_add(t, SNP_CERT_KIND_ASK, ask, ask_len) != SNP_OK ||
	    snp_certtable_add(t, SNP_CERT_KIND_ARK, ark, ark_len) != SNP_OK ||
	    snp_certtable_serialize(t, NULL, &len) != SNP_OK || (fw->certs = malloc(len)) == NULL ||
	    snp_certtable_serialize(t, fw->certs, &len) != SNP_OK) {
		(void)sim_fail(err, errlen, "cannot build the certificate table");
		goto out;
	}
	fw->certs_len = len;
	r = 0;
out:
	snp_certtable_free(t);
	free(ask);
	free(ark);
	return r;
}

int
sim_fw_new(const struct sim_launch *l, struct sim_state *st, struct sim_fw **out, char *err,
	   size_t errlen)
{
	struct sim_fw *fw = NULL;
	snp_cert_role role;
	int r = -1;

	if ((fw = calloc(1, sizeof(*fw))) == NULL) {
		(void)sim_fail(err, errlen, "out of memory");
		goto out;
	}
	fw->launch = *l;
	if (!fw->launch.chip_id_set) {
		if (sim_state_chip_id(st, l->product, fw->launch.chip_id) != 0) {
			(void)sim_fail(err, errlen, "cannot derive the chip id");
			goto out;
		}
		fw->launch.chip_id_set = true;
	}
	memcpy(fw->secret, sim_state_chip_secret(st), sizeof(fw->secret));
	if (RAND_bytes(fw->report_id, sizeof(fw->report_id)) != 1) {
		(void)sim_fail(err, errlen, "no random bytes for REPORT_ID");
		goto out;
	}
	role = l->signing_key == SNP_SIGNING_KEY_VLEK ? SNP_ROLE_VLEK : SNP_ROLE_VCEK;
	/* The firmware signs with the key for REPORTED_TCB, the TCB the host reports. */
	if (sim_state_leaf(st, l->product, role, fw->launch.chip_id, l->tcb[SIM_TCB_REPORTED],
			   &fw->signer_der, &fw->signer_der_len, &fw->signer, err, errlen) != 0)
		goto out;
	if (build_certtable(fw, st, err, errlen) != 0)
		goto out;
	*out = fw;
	fw = NULL;
	r = 0;
out:
	sim_fw_free(fw);
	return r;
}

void
sim_fw_free(struct sim_fw *fw)
{
	if (fw == NULL)
		return;
	EVP_PKEY_free(fw->signer);
	free(fw->signer_der);
	free(fw->certs);
	OPENSSL_cleanse(fw->secret, sizeof(fw->secret));
	free(fw);
}

const struct sim_launch *
sim_fw_launch(const struct sim_fw *fw)
{
	return &fw->launch;
}

const uint8_t *
sim_fw_certtable(const struct sim_fw *fw, size_t *len)
{
	*len = fw->certs_len;
	return fw->certs;
}

const uint8_t *
sim_fw_signer_der(const struct sim_fw *fw, size_t *len)
{
	*len = fw->signer_der_len;
	return fw->signer_der;
}

/* ECDSA P-384 SHA-384 over rep[0..0x2A0): r and s little-endian, 72 bytes each. */
static int
sign_report(EVP_PKEY *key, uint8_t rep[SNP_REPORT_SIZE])
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	ECDSA_SIG *sig = NULL;
	unsigned char der[160];
	const unsigned char *p = der;
	const BIGNUM *r = NULL, *s = NULL;
	size_t der_len = sizeof(der);
	int rc = -1;

	if (mctx == NULL || EVP_DigestSignInit(mctx, NULL, EVP_sha384(), NULL, key) != 1 ||
	    EVP_DigestSign(mctx, der, &der_len, rep, SNP_REPORT_SIGNED_SIZE) != 1 ||
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2lebinpad(r, rep + 0x2A0, SNP_SIG_COMPONENT_LEN) != (int)SNP_SIG_COMPONENT_LEN ||
	    BN_bn2lebinpad(s, rep + 0x2E8, SNP_SIG_COMPONENT_LEN) != (int)SNP_SIG_COMPONENT_LEN)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(mctx);
	ERR_clear_error();
	return rc;
}

uint32_t
sim_fw_get_report(const struct sim_fw *fw, const struct snp_report_req *req,
		  uint8_t rep[SNP_REPORT_SIZE])
{
	const struct sim_launch *l = &fw->launch;
	uint32_t key_info;

	memset(rep, 0, SNP_REPORT_SIZE);
	if (req->vmpl > 3 || req->vmpl < l->guest_vmpl)
		return SNP_FW_STATUS_INVALID_PARAM;
	put_u32le(rep + 0x000, l->report_version);
	put_u32le(rep + 0x004, l->guest_svn);
	put_u64le(rep + 0x008, l->policy);
	memcpy(rep + 0x010, l->family_id, SNP_ID_LEN);
	memcpy(rep + 0x020, l->image_id, SNP_ID_LEN);
	put_u32le(rep + 0x030, req->vmpl);
	put_u32le(rep + 0x034, SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384);
	put_u64le(rep + 0x038, l->tcb[SIM_TCB_CURRENT]);
	put_u64le(rep + 0x040, l->platform_info);
	/* KEY_INFO: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY (0: we sign), bits 4:2 SIGNING_KEY. */
	key_info = (uint32_t)(l->signing_key & 7u) << 2;
	if (!snp_all_zero(l->author_key_digest, SNP_KEY_DIGEST_LEN))
		key_info |= 1u;
	put_u32le(rep + 0x048, key_info);
	memcpy(rep + 0x050, req->report_data, SNP_REPORT_DATA_LEN);
	memcpy(rep + 0x090, l->measurement, SNP_MEASUREMENT_LEN);
	memcpy(rep + 0x0C0, l->host_data, SNP_HOST_DATA_LEN);
	memcpy(rep + 0x0E0, l->id_key_digest, SNP_KEY_DIGEST_LEN);
	memcpy(rep + 0x110, l->author_key_digest, SNP_KEY_DIGEST_LEN);
	memcpy(rep + 0x140, fw->report_id, SNP_REPORT_ID_LEN);
	memset(rep + 0x160, 0xFF, SNP_REPORT_ID_LEN); /* no migration agent */
	put_u64le(rep + 0x180, l->tcb[SIM_TCB_REPORTED]);
	if (l->report_version >= 3)
		product_cpuid(l->product, rep + 0x188);
	if (!l->mask_chip_id)
		memcpy(rep + 0x1A0, l->chip_id, SNP_CHIP_ID_LEN);
	put_u64le(rep + 0x1E0, l->tcb[SIM_TCB_COMMITTED]);
	rep[0x1E8] = l->current_version[2];
	rep[0x1E9] = l->current_version[1];
	rep[0x1EA] = l->current_version[0];
	rep[0x1EC] = l->committed_version[2];
	rep[0x1ED] = l->committed_version[1];
	rep[0x1EE] = l->committed_version[0];
	put_u64le(rep + 0x1F0, l->tcb[SIM_TCB_LAUNCH]);
	if (l->report_version >= 5) {
		put_u64le(rep + 0x1F8, l->launch_mit_vector);
		put_u64le(rep + 0x200, l->current_mit_vector);
	}
	if (sign_report(fw->signer, rep) != 0) {
		/* The firmware does not fail to sign; a simulator that cannot is broken. */
		memset(rep, 0, SNP_REPORT_SIZE);
		return SNP_FW_STATUS_INVALID_KEY;
	}
	return SNP_FW_STATUS_SUCCESS;
}

/* True when `req` is at most `limit` in every component and has no reserved bytes. */
static bool
tcb_within(uint64_t req, uint64_t limit, snp_product p)
{
	snp_tcb a, b;

	snp_tcb_decode(req, p, &a);
	snp_tcb_decode(limit, p, &b);
	if (snp_tcb_encode(&a, p) != req)
		return false;
	return a.fmc <= b.fmc && a.bootloader <= b.bootloader && a.tee <= b.tee && a.snp <= b.snp &&
	       a.microcode <= b.microcode;
}

uint32_t
sim_fw_derive_key(const struct sim_fw *fw, const snp_key_request *req, uint8_t key[SNP_DERIVED_KEY_LEN])
{
	const struct sim_launch *l = &fw->launch;
	/* label ‖ root u32 ‖ vmpl u32 ‖ gfs u64 ‖ policy 8 ‖ image 16 ‖ family 16 ‖ measurement 48 ‖ svn 4 ‖ tcb 8 */
	uint8_t info[sizeof(KDF_LABEL) - 1 + 4 + 4 + 8 + 8 + 16 + 16 + 48 + 4 + 8];
	size_t n = 0;
	uint64_t gfs = req->guest_field_select;
	uint32_t status = SNP_FW_STATUS_INVALID_PARAM;

	memset(key, 0, SNP_DERIVED_KEY_LEN);
	if ((req->root_key & ~UINT32_C(1)) != 0 || (gfs & ~SNP_KEY_FIELD_MASK) != 0 || req->vmpl > 3 ||
	    req->vmpl < l->guest_vmpl || req->guest_svn > l->guest_svn ||
	    !tcb_within(req->tcb_version, l->tcb[SIM_TCB_COMMITTED], l->product))
		goto out;
	memcpy(info, KDF_LABEL, sizeof(KDF_LABEL) - 1);
	n = sizeof(KDF_LABEL) - 1;
	put_u32le(info + n, req->root_key), n += 4;
	put_u32le(info + n, req->vmpl), n += 4;
	put_u64le(info + n, gfs), n += 8;
	/* Selected fields only, in bit order, each at its fixed size: the field-select
	 * word above says which are present, so the encoding is unambiguous. */
	if (gfs & SNP_KEY_FIELD_POLICY)
		put_u64le(info + n, l->policy), n += 8;
	if (gfs & SNP_KEY_FIELD_IMAGE_ID)
		memcpy(info + n, l->image_id, SNP_ID_LEN), n += SNP_ID_LEN;
	if (gfs & SNP_KEY_FIELD_FAMILY_ID)
		memcpy(info + n, l->family_id, SNP_ID_LEN), n += SNP_ID_LEN;
	if (gfs & SNP_KEY_FIELD_MEASUREMENT)
		memcpy(info + n, l->measurement, SNP_MEASUREMENT_LEN), n += SNP_MEASUREMENT_LEN;
	if (gfs & SNP_KEY_FIELD_GUEST_SVN)
		put_u32le(info + n, req->guest_svn), n += 4;
	if (gfs & SNP_KEY_FIELD_TCB_VERSION)
		put_u64le(info + n, req->tcb_version), n += 8;
	if (sim_hkdf_sha384(fw->secret, sizeof(fw->secret), (const uint8_t *)KDF_SALT,
			    sizeof(KDF_SALT) - 1, info, n, key, SNP_DERIVED_KEY_LEN) != 0) {
		memset(key, 0, SNP_DERIVED_KEY_LEN);
		status = SNP_FW_STATUS_INVALID_KEY;
		goto out;
	}
	status = SNP_FW_STATUS_SUCCESS;
out:
	OPENSSL_cleanse(info, sizeof(info));
	return status;
}

int
sim_fw_report_msg(const struct sim_fw *fw, const uint8_t *req, size_t len,
		  uint8_t rsp[MSG_REPORT_RSP_SIZE])
{
	struct snp_report_req r;
	uint8_t rep[SNP_REPORT_SIZE];
	uint32_t status;

	if (len != MSG_REPORT_REQ_SIZE)
		return -1;
	/* Non-zero reserved bytes: the firmware answers INVALID_PARAM. */
	if (guestmsg_decode_report_req(req, len, &r) != 0)
		status = SNP_FW_STATUS_INVALID_PARAM;
	else
		status = sim_fw_get_report(fw, &r, rep);
	guestmsg_encode_report_rsp(status, status == SNP_FW_STATUS_SUCCESS ? rep : NULL, rsp);
	return 0;
}

int
sim_fw_key_msg(const struct sim_fw *fw, const uint8_t *req, size_t len, uint8_t rsp[MSG_KEY_RSP_SIZE])
{
	snp_key_request r;
	uint8_t key[SNP_DERIVED_KEY_LEN];
	uint32_t status;

	if (len != MSG_KEY_REQ_SIZE)
		return -1;
	if (guestmsg_decode_key_req(req, len, &r) != 0)
		status = SNP_FW_STATUS_INVALID_PARAM;
	else
		status = sim_fw_derive_key(fw, &r, key);
	guestmsg_encode_key_rsp(status, status == SNP_FW_STATUS_SUCCESS ? key : NULL, rsp);
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}
