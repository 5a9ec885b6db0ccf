/*
 * testca — a throwaway AMD-like certificate hierarchy for tests.
 *
 * One testca is one product's ARK (self-signed) → ASK and ASVK, with AMD's
 * distinguished names ("OU=Engineering, C=US, L=Santa Clara, ST=CA,
 * O=Advanced Micro Devices, CN=ARK-<P> | SEV-<P> | SEV-VLEK-<P>"), extensions
 * (basicConstraints critical CA:TRUE, keyUsage critical keyCertSign[, cRLSign])
 * and signature algorithm (RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48).  The
 * keys are RSA-2048 (AMD uses 4096) to keep tests fast.  Leaves (VCEK/VLEK)
 * are EC P-384 with AMD's extensions written as raw extnValues, so tests can
 * also write malformed ones.
 *
 * Conventions: functions return 0 on success and -1 when OpenSSL fails (the
 * snp_* wrappers return the snp status instead).  Outputs are written only on
 * success; DER buffers are malloc'ed (free()), keys are EVP_PKEY (EVP_PKEY_free).
 */
#ifndef NITRIDE_TESTCA_H
#define NITRIDE_TESTCA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nitride/snp.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#define TESTCA_SPL_COUNT 9    /* 1.3.6.1.4.1.3704.1.3.1 … .3.9 */
#define TESTCA_ABSENT (-1)    /* for spl[] and struct_version: omit the extension */
#define TESTCA_MAX_EXTRA 4

/* SPL slots (extension .3.(i+1)) */
enum { TESTCA_BL = 0, TESTCA_TEE = 1, TESTCA_SNP = 2, TESTCA_UCODE = 7, TESTCA_FMC = 8 };

enum testca_sig {
	TESTCA_SIG_PSS_SHA384 = 0,   /* AMD's: RSASSA-PSS SHA-384, MGF1-SHA-384, salt 48 */
	TESTCA_SIG_PSS_SHA384_SALT32, /* same but salt 32: must be rejected */
	TESTCA_SIG_PKCS1_SHA256,      /* RSA PKCS#1 v1.5 with SHA-256: must be rejected */
};

typedef struct testca {
	char product[16];          /* AMD's spelling: "Milan", "Genoa", "Turin" */
	snp_product product_id;
	EVP_PKEY *ark_key, *ask_key, *asvk_key;
	X509 *ark, *ask, *asvk;
} testca;

#define TESTCA_ARK_SERIAL 0x1000
#define TESTCA_ASK_SERIAL 0x1001
#define TESTCA_ASVK_SERIAL 0x1002

/* A new hierarchy for `product` (AMD spelling) whose three certificates are valid
 * from not_before to not_after; serials TESTCA_*_SERIAL. */
int testca_new(const char *product, time_t not_before, time_t not_after, testca **out);
void testca_free(testca *ca);

/* Re-issue the ASK (role SNP_ROLE_ASK) or ASVK (SNP_ROLE_ASVK) with the same key and
 * name, signed by the ARK, with another serial and validity.  Replaces ca->ask/asvk. */
int testca_reissue(testca *ca, snp_cert_role role, long serial, time_t not_before,
		   time_t not_after);

/* A raw extension: OID in dotted form, extnValue bytes. */
typedef struct testca_ext {
	const char *oid;
	const uint8_t *value;
	size_t len;
} testca_ext;

/* Everything about a VCEK/VLEK leaf.  Start from testca_leaf_defaults(). */
typedef struct testca_leaf {
	snp_cert_role role;         /* SNP_ROLE_VCEK (CN=SEV-VCEK) or SNP_ROLE_VLEK (CN=SEV-VLEK) */
	const char *product_name;   /* productName (.2) IA5String; NULL omits it */
	int struct_version;         /* structVersion (.1); TESTCA_ABSENT omits it */
	int spl[TESTCA_SPL_COUNT];  /* .3.1 … .3.9 as DER INTEGER (any value >= 0); TESTCA_ABSENT omits */
	const uint8_t *hwid;        /* hwID (.4); NULL omits it */
	size_t hwid_len;
	bool hwid_der;              /* write hwID as a DER OCTET STRING instead of raw bytes */
	const char *csp_id;         /* csp_id (.5) IA5String; NULL omits it */
	long serial;
	time_t not_before, not_after;
	X509 *issuer;               /* issuer name comes from this certificate … */
	EVP_PKEY *issuer_key;       /* … and the signature from this key */
	enum testca_sig sig;
	EVP_PKEY *key;              /* subject key (borrowed); NULL: a fresh P-384 key */
	testca_ext extra[TESTCA_MAX_EXTRA]; /* appended after the AMD extensions */
	size_t n_extra;
} testca_leaf;

/*
 * Defaults for a `role` leaf under `ca`: productName "<P>-B0" for a Milan VCEK,
 * else "<P>"; structVersion 0 (1 on Turin); SPLs bl=3 tee=0 snp=8 spl_4..7=0
 * ucode=115, on Turin fmc=1 and no spl_4; VCEK: hwID 64 bytes (8 on Turin)
 * 0x01,0x02,… raw (testca_default_hwid); VLEK: csp_id "CN=test.example";
 * serial 0; the ASK's (VCEK) or ASVK's (VLEK) validity, name and key; AMD's
 * signature algorithm; a fresh key.
 */
void testca_leaf_defaults(testca_leaf *o, const testca *ca, snp_cert_role role);
/* The 64 bytes testca_leaf_defaults() uses as hwID (first 8 on Turin). */
const uint8_t *testca_default_hwid(void);

/* Build and sign the leaf.  *der: malloc'ed DER; *key_out (optional): its private key. */
int testca_issue_leaf(const testca_leaf *o, uint8_t **der, size_t *der_len, EVP_PKEY **key_out);
/* Same, then snp_cert_parse(): returns its status (SNP_E_FORMAT for malformed
 * extensions), or SNP_E_INTERNAL when building failed. */
int testca_issue_leaf_cert(const testca_leaf *o, snp_cert **out, EVP_PKEY **key_out);

/* A v2 CRL with issuer name = issuer's subject, signed by `key` with `sig`, listing
 * `serials` (revocationDate = this_update); next_update 0 omits nextUpdate. */
int testca_make_crl(X509 *issuer, EVP_PKEY *key, enum testca_sig sig, const long *serials,
		    size_t n, time_t this_update, time_t next_update, uint8_t **der,
		    size_t *der_len);

/* DER of a certificate (malloc'ed). */
int testca_der(X509 *x, uint8_t **der, size_t *der_len);
/* A certificate as an snp_cert (snp_cert_parse status). */
int testca_cert(X509 *x, snp_cert **out);
/* SHA-256 of the ARK's SubjectPublicKeyInfo: the value for snp_trust_pin(). */
void testca_ark_pin(const testca *ca, uint8_t out[32]);
/* Pin the ARK's key for its product and add ARK, ASK and ASVK to `t`.  Returns the
 * first failing snp status (err filled) or SNP_OK. */
int testca_install(const testca *ca, snp_trust *t, snp_error *err);

#endif
