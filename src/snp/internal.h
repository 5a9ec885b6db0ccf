/*
 * Internals of libsnp shared between its modules.  Not installed.
 */
#ifndef NITRIDE_SNP_INTERNAL_H
#define NITRIDE_SNP_INTERNAL_H

#include <nitride/snp.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/*
 * Fill `err` (may be NULL) with status and a printf-style detail, and return
 * status, so that callers can write `return snp_fail(err, SNP_E_FORMAT, …);`
 * or `r = snp_fail(…); goto out;`.
 */
int snp_fail(snp_error *err, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append the first queued OpenSSL error text (if any) to err->detail and clear
 * the OpenSSL error queue of this thread. */
void snp_fail_append_openssl(snp_error *err);

/* Number of SPL extensions a VCEK/VLEK may carry: 1.3.6.1.4.1.3704.1.3.1 … .3.9 */
#define SNP_CERT_SPL_COUNT 9

struct snp_cert {
	X509 *x509;
	EVP_PKEY *pkey;       /* borrowed from x509 (X509_get0_pubkey) */
	uint8_t *der;         /* owned DER encoding */
	size_t der_len;
	snp_cert_role role;
	snp_product product;  /* from productName, else CN */
	char product_name[32];/* productName extension, "" when absent */
	int struct_version;   /* -1 when absent */
	/* spl[i] is extension .3.(i+1): bl, tee, snp, spl4, spl5, spl6, spl7, ucode, fmc */
	uint8_t spl[SNP_CERT_SPL_COUNT];
	bool spl_present[SNP_CERT_SPL_COUNT];
	uint8_t hwid[SNP_HWID_LEN_LEGACY];
	size_t hwid_len;      /* 0 (absent), 8 or 64 */
	uint8_t fingerprint[32];  /* SHA-256 of der */
	uint8_t spki_sha256[32];  /* SHA-256 of the DER SubjectPublicKeyInfo */
	time_t not_before, not_after;
};

/*
 * Check that `signer` (a VCEK or VLEK of `product`) chains to a pinned ARK of
 * `product` through the trust store's ASK (VCEK) or ASVK (VLEK): RSASSA-PSS
 * signatures, every certificate valid at `at`, none revoked by an accepted CRL
 * (and, with require_crl, a CRL present and current).  A signer that passed
 * once is remembered by fingerprint so that later calls only redo the time
 * and revocation checks.  Returns SNP_OK, SNP_E_CHAIN, SNP_E_EXPIRED,
 * SNP_E_REVOKED or SNP_E_PRODUCT.
 */
int snp_trust_check_signer(snp_trust *t, const snp_cert *signer, snp_product product, time_t at,
			   bool require_crl, snp_error *err);

/* An ASN.1 time as a time_t (UTC).  Returns 0, or -1 (OpenSSL queue cleared). */
int snp_asn1_time(const ASN1_TIME *t, time_t *out);

/* True when all n bytes are zero. */
bool snp_all_zero(const uint8_t *p, size_t n);

#endif
