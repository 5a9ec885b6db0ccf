/*
 * Verification of a report against its signer certificate and the trust
 * store.  The order of the checks is deliberate (docs/snp.md): cheap checks
 * that decide which keys are even eligible come first, the chain before the
 * report signature (a signature by an untrusted key proves nothing), and the
 * binding checks last, since they compare values that only mean something
 * once both the certificate and the report are authentic.
 */
#include "snp/internal.h"

#include <openssl/crypto.h>
#include <string.h>

/* Decide the product from the caller, the report's CPUID and the certificate;
 * any two that are known must agree. */
static int
resolve_product(const snp_report *report, const snp_cert *signer, snp_product wanted,
		snp_product *out, snp_error *err)
{
	snp_product from_report = snp_report_cpuid_product(report);
	snp_product from_cert = snp_cert_product(signer);
	snp_product p = wanted;

	if (snp_report_version(report) >= 3 && from_report == SNP_PRODUCT_UNKNOWN && p == SNP_PRODUCT_UNKNOWN)
		return snp_fail(err, SNP_E_PRODUCT,
				"report: CPUID_FAM_ID 0x%02x / CPUID_MOD_ID 0x%02x name no known product; give the product explicitly",
				snp_report_cpuid_fam_id(report), snp_report_cpuid_mod_id(report));
	if (p != SNP_PRODUCT_UNKNOWN && from_report != SNP_PRODUCT_UNKNOWN && from_report != p)
		return snp_fail(err, SNP_E_PRODUCT,
				"product: the report's CPUID says %s, expected %s",
				snp_product_name(from_report), snp_product_name(p));
	if (p == SNP_PRODUCT_UNKNOWN)
		p = from_report;
	if (from_cert != SNP_PRODUCT_UNKNOWN && p != SNP_PRODUCT_UNKNOWN && from_cert != p)
		return snp_fail(err, SNP_E_PRODUCT,
				"product: the %s certificate is for %s, expected %s",
				snp_cert_role_name(snp_cert_get_role(signer)), snp_product_name(from_cert),
				snp_product_name(p));
	if (p == SNP_PRODUCT_UNKNOWN)
		p = from_cert;
	if (p == SNP_PRODUCT_UNKNOWN)
		return snp_fail(err, SNP_E_PRODUCT,
				"product: neither the report (version %u) nor the certificate names a product; give it explicitly",
				snp_report_version(report));
	*out = p;
	return SNP_OK;
}

static int
check_signing_key(const snp_report *report, const snp_cert *signer, snp_error *err)
{
	unsigned key = snp_report_signing_key(report);
	snp_cert_role role = snp_cert_get_role(signer);

	if (key == SNP_SIGNING_KEY_NONE)
		return snp_fail(err, SNP_E_SIGNING_KEY,
				"signing key: KEY_INFO.SIGNING_KEY is 7 (none), the report is unsigned");
	if (key == SNP_SIGNING_KEY_VCEK && role != SNP_ROLE_VCEK)
		return snp_fail(err, SNP_E_SIGNING_KEY,
				"signing key: the report says VCEK (KEY_INFO 0x%x), the certificate's role is %s",
				snp_report_key_info(report), snp_cert_role_name(role));
	if (key == SNP_SIGNING_KEY_VLEK && role != SNP_ROLE_VLEK)
		return snp_fail(err, SNP_E_SIGNING_KEY,
				"signing key: the report says VLEK (KEY_INFO 0x%x), the certificate's role is %s",
				snp_report_key_info(report), snp_cert_role_name(role));
	return SNP_OK;
}

static int
check_tcb(const snp_report *report, const snp_cert *signer, snp_product product, snp_tcb *reported,
	  snp_error *err)
{
	snp_tcb cert;
	int r;

	snp_tcb_decode(snp_report_reported_tcb(report), product, reported);
	if ((r = snp_cert_tcb(signer, &cert)) != SNP_OK)
		return snp_fail(err, SNP_E_TCB, "tcb: the %s certificate carries no SPL extensions",
				snp_cert_role_name(snp_cert_get_role(signer)));
#define TCB_FIELD(f, ext)                                                                       \
	if (reported->f != cert.f)                                                              \
		return snp_fail(err, SNP_E_TCB,                                                 \
				"tcb: REPORTED_TCB." #f " is %u, the certificate's " ext " is %u", \
				reported->f, cert.f);
	if (product == SNP_PRODUCT_TURIN) {
		TCB_FIELD(fmc, "fmcSPL")
	}
	TCB_FIELD(bootloader, "blSPL")
	TCB_FIELD(tee, "teeSPL")
	TCB_FIELD(snp, "snpSPL")
	TCB_FIELD(microcode, "ucodeSPL")
#undef TCB_FIELD
	/* The reserved bytes of REPORTED_TCB must be zero too: the SPLs above do not
	 * cover them, and the certificate's spl_4..7 are always 0. */
	if (reported->raw != snp_tcb_encode(reported, product))
		return snp_fail(err, SNP_E_TCB,
				"tcb: REPORTED_TCB 0x%016llx has reserved bytes set (certificate TCB 0x%016llx)",
				(unsigned long long)reported->raw, (unsigned long long)cert.raw);
	return SNP_OK;
}

static int
check_chip_id(const snp_report *report, const snp_cert *signer, snp_product product,
	      snp_error *err)
{
	const uint8_t *chip = snp_report_chip_id(report);
	const uint8_t *hwid;
	size_t hwid_len, used;

	if (snp_cert_get_role(signer) != SNP_ROLE_VCEK)
		return SNP_OK; /* a VLEK is not tied to a chip */
	if (snp_all_zero(chip, SNP_CHIP_ID_LEN))
		return snp_fail(err, SNP_E_CHIP_ID,
				"chip_id: CHIP_ID is all zero (masked by the host), which cannot match a VCEK");
	hwid = snp_cert_hwid(signer, &hwid_len);
	used = product == SNP_PRODUCT_TURIN ? SNP_HWID_LEN_TURIN : SNP_HWID_LEN_LEGACY;
	if (hwid == NULL || hwid_len != used)
		return snp_fail(err, SNP_E_CHIP_ID,
				"chip_id: the VCEK's hwID is %zu bytes, %s uses %zu", hwid_len,
				snp_product_name(product), used);
	if (CRYPTO_memcmp(chip, hwid, used) != 0)
		return snp_fail(err, SNP_E_CHIP_ID,
				"chip_id: CHIP_ID %02x%02x%02x%02x… differs from the VCEK's hwID %02x%02x%02x%02x…",
				chip[0], chip[1], chip[2], chip[3], hwid[0], hwid[1], hwid[2], hwid[3]);
	if (!snp_all_zero(chip + used, SNP_CHIP_ID_LEN - used))
		return snp_fail(err, SNP_E_CHIP_ID,
				"chip_id: %s uses the first %zu bytes of CHIP_ID, the rest must be zero",
				snp_product_name(product), used);
	return SNP_OK;
}

int
snp_verify(snp_trust *trust, const snp_report *report, const snp_cert *signer,
	   const snp_verify_opts *opts, snp_verify_result *result, snp_error *err)
{
	snp_verify_opts defaults = { 0 };
	snp_verify_result res = { 0 };
	time_t at;
	int r;

	if (trust == NULL || report == NULL || signer == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "verify: trust, report and signer are required");
	if (opts == NULL)
		opts = &defaults;
	at = opts->at != 0 ? opts->at : time(NULL);

	if ((r = resolve_product(report, signer, opts->product, &res.product, err)) != SNP_OK ||
	    (r = check_signing_key(report, signer, err)) != SNP_OK ||
	    (r = snp_trust_check_signer(trust, signer, res.product, at, opts->require_crl, err)) !=
		    SNP_OK ||
	    (r = snp_report_verify_signature(report, signer, err)) != SNP_OK ||
	    (r = check_tcb(report, signer, res.product, &res.reported_tcb, err)) != SNP_OK ||
	    (r = check_chip_id(report, signer, res.product, err)) != SNP_OK)
		return r;
	res.signing_key = snp_report_signing_key(report);
	if (result != NULL)
		*result = res;
	return SNP_OK;
}
