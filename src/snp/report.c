/*
 * ATTESTATION_REPORT codec (SEV-SNP firmware ABI, versions 2, 3/4 and 5) and
 * the report signature.
 *
 * The parser reads every field through the bounded reader in field order and
 * insists that each reserved area of the report's version is zero, so that
 * the serialiser, which writes the fields and zero-fills the rest, reproduces
 * the input byte for byte.  The SIGNATURE block is kept as it came and judged
 * only by the signature check (a mangled signature is a `signature` failure,
 * not `format`).  Signatures are always checked over the raw bytes kept
 * alongside the fields, never over a re-encoding.
 */
#include "snp/internal.h"

#include "common/rbuf.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>

/* Offsets of the fields that depend on the version (see docs/snp.md). */
#define OFF_CPUID 0x188u
#define OFF_CHIP_ID 0x1A0u
#define OFF_LAUNCH_MIT 0x1F8u
#define OFF_SIGNATURE 0x2A0u
#define SIG_RESERVED_LEN 368u
/* P-384 integers occupy 48 of the 72 little-endian bytes of r and s. */
#define P384_LEN 48u

struct snp_report {
	uint32_t version;
	uint32_t guest_svn;
	uint64_t policy;
	uint8_t family_id[SNP_ID_LEN];
	uint8_t image_id[SNP_ID_LEN];
	uint32_t vmpl;
	uint32_t signature_algo;
	uint64_t current_tcb;
	uint64_t platform_info;
	uint32_t key_info;
	uint8_t report_data[SNP_REPORT_DATA_LEN];
	uint8_t measurement[SNP_MEASUREMENT_LEN];
	uint8_t host_data[SNP_HOST_DATA_LEN];
	uint8_t id_key_digest[SNP_KEY_DIGEST_LEN];
	uint8_t author_key_digest[SNP_KEY_DIGEST_LEN];
	uint8_t report_id[SNP_REPORT_ID_LEN];
	uint8_t report_id_ma[SNP_REPORT_ID_LEN];
	uint64_t reported_tcb;
	uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step;
	uint8_t chip_id[SNP_CHIP_ID_LEN];
	uint64_t committed_tcb;
	uint8_t current_build, current_minor, current_major;
	uint8_t committed_build, committed_minor, committed_major;
	uint64_t launch_tcb;
	uint64_t launch_mit_vector;
	uint64_t current_mit_vector;
	/* The whole SIGNATURE block (R, S, reserved).  Its contents are judged by
	 * snp_report_verify_signature(), so that a mangled signature is a
	 * `signature` rejection rather than a `format` one. */
	uint8_t sig_r[SNP_SIG_COMPONENT_LEN];
	uint8_t sig_s[SNP_SIG_COMPONENT_LEN];
	uint8_t sig_reserved[SIG_RESERVED_LEN];
	uint8_t raw[SNP_REPORT_SIZE];
};

/* Layout decisions that depend on VERSION. */
static bool
has_cpuid(uint32_t version)
{
	return version >= 3;
}

static bool
has_mit_vectors(uint32_t version)
{
	return version >= 5;
}

/* Consume a reserved area; report the first non-zero byte. */
static int
expect_reserved(struct rbuf *b, size_t n, const char *what, snp_error *err)
{
	size_t at = 0, start = rbuf_offset(b);

	if (rbuf_expect_zero(b, n, &at) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"report: reserved %s (0x%03zx-0x%03zx) must be zero, byte 0x%03zx is 0x%02x",
				what, start, start + n - 1, at, b->base[at]);
	return SNP_OK;
}

int
snp_report_parse(const uint8_t *buf, size_t len, snp_report **out, snp_error *err)
{
	snp_report *r = NULL;
	struct rbuf b;
	unsigned signing_key;
	int ret = SNP_E_FORMAT;

	if (buf == NULL || out == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "report: no buffer");
	if (len < SNP_REPORT_SIZE)
		return snp_fail(err, SNP_E_FORMAT, "report: %zu bytes, a report is %u bytes", len,
				SNP_REPORT_SIZE);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return snp_fail(err, SNP_E_NOMEM, "report: out of memory");
	memcpy(r->raw, buf, SNP_REPORT_SIZE);
	rbuf_init(&b, r->raw, SNP_REPORT_SIZE);

	/* The reads below cannot run short (the buffer is exactly one report), but
	 * each is still checked so that a layout mistake fails closed. */
	if (rbuf_get_u32le(&b, &r->version) != 0)
		goto short_read;
	if (r->version < 2 || r->version > 5) {
		ret = snp_fail(err, SNP_E_FORMAT,
			       "report: VERSION is %u, supported versions are 2, 3, 4 and 5",
			       r->version);
		goto out;
	}
	if (rbuf_get_u32le(&b, &r->guest_svn) != 0 || rbuf_get_u64le(&b, &r->policy) != 0 ||
	    rbuf_get_bytes(&b, r->family_id, SNP_ID_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->image_id, SNP_ID_LEN) != 0 ||
	    rbuf_get_u32le(&b, &r->vmpl) != 0 || rbuf_get_u32le(&b, &r->signature_algo) != 0 ||
	    rbuf_get_u64le(&b, &r->current_tcb) != 0 ||
	    rbuf_get_u64le(&b, &r->platform_info) != 0 || rbuf_get_u32le(&b, &r->key_info) != 0)
		goto short_read;
	if ((ret = expect_reserved(&b, 4, "after KEY_INFO", err)) != SNP_OK)
		goto out;
	if (rbuf_get_bytes(&b, r->report_data, SNP_REPORT_DATA_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->measurement, SNP_MEASUREMENT_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->host_data, SNP_HOST_DATA_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->id_key_digest, SNP_KEY_DIGEST_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->author_key_digest, SNP_KEY_DIGEST_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->report_id, SNP_REPORT_ID_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->report_id_ma, SNP_REPORT_ID_LEN) != 0 ||
	    rbuf_get_u64le(&b, &r->reported_tcb) != 0)
		goto short_read;
	if (has_cpuid(r->version)) {
		if (rbuf_get_u8(&b, &r->cpuid_fam_id) != 0 || rbuf_get_u8(&b, &r->cpuid_mod_id) != 0 ||
		    rbuf_get_u8(&b, &r->cpuid_step) != 0)
			goto short_read;
	}
	if ((ret = expect_reserved(&b, OFF_CHIP_ID - rbuf_offset(&b), "before CHIP_ID", err)) !=
	    SNP_OK)
		goto out;
	if (rbuf_get_bytes(&b, r->chip_id, SNP_CHIP_ID_LEN) != 0 ||
	    rbuf_get_u64le(&b, &r->committed_tcb) != 0 || rbuf_get_u8(&b, &r->current_build) != 0 ||
	    rbuf_get_u8(&b, &r->current_minor) != 0 || rbuf_get_u8(&b, &r->current_major) != 0)
		goto short_read;
	if ((ret = expect_reserved(&b, 1, "after CURRENT_MAJOR", err)) != SNP_OK)
		goto out;
	if (rbuf_get_u8(&b, &r->committed_build) != 0 || rbuf_get_u8(&b, &r->committed_minor) != 0 ||
	    rbuf_get_u8(&b, &r->committed_major) != 0)
		goto short_read;
	if ((ret = expect_reserved(&b, 1, "after COMMITTED_MAJOR", err)) != SNP_OK)
		goto out;
	if (rbuf_get_u64le(&b, &r->launch_tcb) != 0)
		goto short_read;
	if (has_mit_vectors(r->version)) {
		if (rbuf_get_u64le(&b, &r->launch_mit_vector) != 0 ||
		    rbuf_get_u64le(&b, &r->current_mit_vector) != 0)
			goto short_read;
	}
	if ((ret = expect_reserved(&b, OFF_SIGNATURE - rbuf_offset(&b), "before SIGNATURE",
				   err)) != SNP_OK)
		goto out;
	if (rbuf_get_bytes(&b, r->sig_r, SNP_SIG_COMPONENT_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->sig_s, SNP_SIG_COMPONENT_LEN) != 0 ||
	    rbuf_get_bytes(&b, r->sig_reserved, SIG_RESERVED_LEN) != 0)
		goto short_read;

	/* KEY_INFO: bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_KEY, bits 4:2 SIGNING_KEY. */
	if ((r->key_info & ~UINT32_C(0x1F)) != 0) {
		ret = snp_fail(err, SNP_E_FORMAT,
			       "report: KEY_INFO 0x%08x has reserved bits 31:5 set", r->key_info);
		goto out;
	}
	signing_key = (r->key_info >> 2) & 7;
	if (signing_key != SNP_SIGNING_KEY_VCEK && signing_key != SNP_SIGNING_KEY_VLEK &&
	    signing_key != SNP_SIGNING_KEY_NONE) {
		ret = snp_fail(err, SNP_E_FORMAT,
			       "report: KEY_INFO.SIGNING_KEY is %u, expected 0 (VCEK), 1 (VLEK) or 7 (none)",
			       signing_key);
		goto out;
	}
	/* An unsigned report (SIGNING_KEY none) may say algorithm 0; anything signed
	 * must be ECDSA P-384 with SHA-384, the only algorithm the firmware defines. */
	if (r->signature_algo != SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 &&
	    !(signing_key == SNP_SIGNING_KEY_NONE && r->signature_algo == 0)) {
		ret = snp_fail(err, SNP_E_FORMAT,
			       "report: SIGNATURE_ALGO is %u, expected 1 (ECDSA P-384 with SHA-384)",
			       r->signature_algo);
		goto out;
	}
	if (rbuf_remaining(&b) != 0)
		goto short_read;

	*out = r;
	r = NULL;
	ret = SNP_OK;
	goto out;
short_read:
	ret = snp_fail(err, SNP_E_FORMAT, "report: internal layout error at offset 0x%03zx",
		       rbuf_offset(&b));
out:
	free(r);
	return ret;
}

void
snp_report_free(snp_report *r)
{
	free(r);
}

void
snp_report_serialize(const snp_report *r, uint8_t out[SNP_REPORT_SIZE])
{
	memset(out, 0, SNP_REPORT_SIZE);
	put_u32le(out + 0x000, r->version);
	put_u32le(out + 0x004, r->guest_svn);
	put_u64le(out + 0x008, r->policy);
	memcpy(out + 0x010, r->family_id, SNP_ID_LEN);
	memcpy(out + 0x020, r->image_id, SNP_ID_LEN);
	put_u32le(out + 0x030, r->vmpl);
	put_u32le(out + 0x034, r->signature_algo);
	put_u64le(out + 0x038, r->current_tcb);
	put_u64le(out + 0x040, r->platform_info);
	put_u32le(out + 0x048, r->key_info);
	memcpy(out + 0x050, r->report_data, SNP_REPORT_DATA_LEN);
	memcpy(out + 0x090, r->measurement, SNP_MEASUREMENT_LEN);
	memcpy(out + 0x0C0, r->host_data, SNP_HOST_DATA_LEN);
	memcpy(out + 0x0E0, r->id_key_digest, SNP_KEY_DIGEST_LEN);
	memcpy(out + 0x110, r->author_key_digest, SNP_KEY_DIGEST_LEN);
	memcpy(out + 0x140, r->report_id, SNP_REPORT_ID_LEN);
	memcpy(out + 0x160, r->report_id_ma, SNP_REPORT_ID_LEN);
	put_u64le(out + 0x180, r->reported_tcb);
	if (has_cpuid(r->version)) {
		out[OFF_CPUID] = r->cpuid_fam_id;
		out[OFF_CPUID + 1] = r->cpuid_mod_id;
		out[OFF_CPUID + 2] = r->cpuid_step;
	}
	memcpy(out + OFF_CHIP_ID, r->chip_id, SNP_CHIP_ID_LEN);
	put_u64le(out + 0x1E0, r->committed_tcb);
	out[0x1E8] = r->current_build;
	out[0x1E9] = r->current_minor;
	out[0x1EA] = r->current_major;
	out[0x1EC] = r->committed_build;
	out[0x1ED] = r->committed_minor;
	out[0x1EE] = r->committed_major;
	put_u64le(out + 0x1F0, r->launch_tcb);
	if (has_mit_vectors(r->version)) {
		put_u64le(out + OFF_LAUNCH_MIT, r->launch_mit_vector);
		put_u64le(out + OFF_LAUNCH_MIT + 8, r->current_mit_vector);
	}
	memcpy(out + OFF_SIGNATURE, r->sig_r, SNP_SIG_COMPONENT_LEN);
	memcpy(out + OFF_SIGNATURE + SNP_SIG_COMPONENT_LEN, r->sig_s, SNP_SIG_COMPONENT_LEN);
	memcpy(out + OFF_SIGNATURE + 2 * SNP_SIG_COMPONENT_LEN, r->sig_reserved, SIG_RESERVED_LEN);
}

/* Accessors. */
uint32_t snp_report_version(const snp_report *r) { return r->version; }
uint32_t snp_report_guest_svn(const snp_report *r) { return r->guest_svn; }
uint64_t snp_report_policy(const snp_report *r) { return r->policy; }
const uint8_t *snp_report_family_id(const snp_report *r) { return r->family_id; }
const uint8_t *snp_report_image_id(const snp_report *r) { return r->image_id; }
uint32_t snp_report_vmpl(const snp_report *r) { return r->vmpl; }
uint32_t snp_report_signature_algo(const snp_report *r) { return r->signature_algo; }
uint64_t snp_report_current_tcb(const snp_report *r) { return r->current_tcb; }
uint64_t snp_report_platform_info(const snp_report *r) { return r->platform_info; }
uint32_t snp_report_key_info(const snp_report *r) { return r->key_info; }
unsigned snp_report_signing_key(const snp_report *r) { return (r->key_info >> 2) & 7; }
const uint8_t *snp_report_report_data(const snp_report *r) { return r->report_data; }
const uint8_t *snp_report_measurement(const snp_report *r) { return r->measurement; }
const uint8_t *snp_report_host_data(const snp_report *r) { return r->host_data; }
const uint8_t *snp_report_id_key_digest(const snp_report *r) { return r->id_key_digest; }
const uint8_t *snp_report_author_key_digest(const snp_report *r) { return r->author_key_digest; }
const uint8_t *snp_report_report_id(const snp_report *r) { return r->report_id; }
const uint8_t *snp_report_report_id_ma(const snp_report *r) { return r->report_id_ma; }
uint64_t snp_report_reported_tcb(const snp_report *r) { return r->reported_tcb; }
uint8_t snp_report_cpuid_fam_id(const snp_report *r) { return r->cpuid_fam_id; }
uint8_t snp_report_cpuid_mod_id(const snp_report *r) { return r->cpuid_mod_id; }
uint8_t snp_report_cpuid_step(const snp_report *r) { return r->cpuid_step; }
const uint8_t *snp_report_chip_id(const snp_report *r) { return r->chip_id; }
uint64_t snp_report_committed_tcb(const snp_report *r) { return r->committed_tcb; }
uint8_t snp_report_current_build(const snp_report *r) { return r->current_build; }
uint8_t snp_report_current_minor(const snp_report *r) { return r->current_minor; }
uint8_t snp_report_current_major(const snp_report *r) { return r->current_major; }
uint8_t snp_report_committed_build(const snp_report *r) { return r->committed_build; }
uint8_t snp_report_committed_minor(const snp_report *r) { return r->committed_minor; }
uint8_t snp_report_committed_major(const snp_report *r) { return r->committed_major; }
uint64_t snp_report_launch_tcb(const snp_report *r) { return r->launch_tcb; }
uint64_t snp_report_launch_mit_vector(const snp_report *r) { return r->launch_mit_vector; }
uint64_t snp_report_current_mit_vector(const snp_report *r) { return r->current_mit_vector; }
const uint8_t *snp_report_signature_r(const snp_report *r) { return r->sig_r; }
const uint8_t *snp_report_signature_s(const snp_report *r) { return r->sig_s; }
const uint8_t *snp_report_bytes(const snp_report *r) { return r->raw; }

snp_product
snp_report_cpuid_product(const snp_report *r)
{
	if (!has_cpuid(r->version))
		return SNP_PRODUCT_UNKNOWN;
	return snp_product_from_cpuid(r->cpuid_fam_id, r->cpuid_mod_id);
}

/*
 * Order of the P-384 group, big-endian.  r and s must lie in [1, n-1]: OpenSSL
 * rejects out-of-range values too, but checking here gives the caller a reason
 * rather than a generic verification error.
 */
static const uint8_t p384_order[P384_LEN] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2,
	0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
};

/* Convert a 72-byte little-endian component to big-endian 48 bytes and check its range. */
static int
sig_component_be(const uint8_t le[SNP_SIG_COMPONENT_LEN], uint8_t be[P384_LEN], const char *name,
		 snp_error *err)
{
	size_t i;

	if (!snp_all_zero(le + P384_LEN, SNP_SIG_COMPONENT_LEN - P384_LEN))
		return snp_fail(err, SNP_E_SIGNATURE, "report: signature %s exceeds 384 bits", name);
	for (i = 0; i < P384_LEN; i++)
		be[i] = le[P384_LEN - 1 - i];
	if (snp_all_zero(be, P384_LEN))
		return snp_fail(err, SNP_E_SIGNATURE, "report: signature %s is zero", name);
	if (memcmp(be, p384_order, P384_LEN) >= 0)
		return snp_fail(err, SNP_E_SIGNATURE,
				"report: signature %s is not below the P-384 group order", name);
	return SNP_OK;
}

int
snp_report_verify_signature(const snp_report *report, const snp_cert *signer, snp_error *err)
{
	uint8_t rbe[P384_LEN], sbe[P384_LEN];
	BIGNUM *rbn = NULL, *sbn = NULL;
	ECDSA_SIG *sig = NULL;
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	char group[64];
	int derlen, v, ret;

	if (report == NULL || signer == NULL || signer->pkey == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "report signature: no report or signer");
	if (snp_report_signing_key(report) == SNP_SIGNING_KEY_NONE)
		return snp_fail(err, SNP_E_SIGNING_KEY,
				"report: KEY_INFO.SIGNING_KEY is 7 (none): the report is not signed");
	if (EVP_PKEY_get_base_id(signer->pkey) != EVP_PKEY_EC ||
	    EVP_PKEY_get_utf8_string_param(signer->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
					   sizeof(group), NULL) != 1 ||
	    strcmp(group, "secp384r1") != 0) {
		ERR_clear_error();
		return snp_fail(err, SNP_E_SIGNATURE, "report signature: signer key is not EC P-384");
	}
	if (!snp_all_zero(report->sig_reserved, SIG_RESERVED_LEN))
		return snp_fail(err, SNP_E_SIGNATURE,
				"report: reserved signature bytes 0x330-0x49F must be zero for SIGNATURE_ALGO 1");
	if ((ret = sig_component_be(report->sig_r, rbe, "R", err)) != SNP_OK ||
	    (ret = sig_component_be(report->sig_s, sbe, "S", err)) != SNP_OK)
		return ret;

	ret = SNP_E_INTERNAL;
	if ((sig = ECDSA_SIG_new()) == NULL || (rbn = BN_bin2bn(rbe, P384_LEN, NULL)) == NULL ||
	    (sbn = BN_bin2bn(sbe, P384_LEN, NULL)) == NULL)
		goto openssl_fail;
	if (ECDSA_SIG_set0(sig, rbn, sbn) != 1)
		goto openssl_fail;
	rbn = sbn = NULL; /* owned by sig now */
	if ((derlen = i2d_ECDSA_SIG(sig, &der)) <= 0)
		goto openssl_fail;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(md, NULL, "SHA384", NULL, NULL, signer->pkey, NULL) != 1)
		goto openssl_fail;
	v = EVP_DigestVerify(md, der, (size_t)derlen, report->raw, SNP_REPORT_SIGNED_SIZE);
	if (v == 1) {
		ret = SNP_OK;
	} else {
		ERR_clear_error();
		ret = snp_fail(err, SNP_E_SIGNATURE,
			       "report: ECDSA P-384 signature over bytes 0x000-0x29F does not verify with the %s key",
			       snp_cert_role_name(signer->role));
	}
	goto out;
openssl_fail:
	ret = snp_fail(err, SNP_E_INTERNAL, "report signature: OpenSSL failure");
	snp_fail_append_openssl(err);
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	BN_free(rbn);
	BN_free(sbn);
	return ret;
}
