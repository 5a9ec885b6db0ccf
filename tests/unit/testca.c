/* testca — an AMD-like certificate hierarchy built with OpenSSL for tests (see testca.h). */
#include "testca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#define AMD_OID "1.3.6.1.4.1.3704.1"

static const uint8_t default_hwid[64] = {
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
	0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
	0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
	0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40,
};

const uint8_t *
testca_default_hwid(void)
{
	return default_hwid;
}

/* AMD's DN with the given CN. */
static X509_NAME *
amd_name(const char *cn)
{
	static const char *const fields[][2] = {
		{ "OU", "Engineering" }, { "C", "US" }, { "L", "Santa Clara" }, { "ST", "CA" },
		{ "O", "Advanced Micro Devices" },
	};
	X509_NAME *n = X509_NAME_new();
	size_t i;

	if (n == NULL)
		return NULL;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (X509_NAME_add_entry_by_txt(n, fields[i][0], MBSTRING_ASC,
					       (const unsigned char *)fields[i][1], -1, -1, 0) != 1)
			goto fail;
	}
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
				       0) != 1)
		goto fail;
	return n;
fail:
	X509_NAME_free(n);
	return NULL;
}

/* A DigestSign context for `sig` with `key`. */
static EVP_MD_CTX *
sign_ctx(EVP_PKEY *key, enum testca_sig sig)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = sig == TESTCA_SIG_PKCS1_SHA256 ? EVP_sha256() : EVP_sha384();

	if (mctx == NULL || EVP_DigestSignInit(mctx, &pctx, md, NULL, key) != 1)
		goto fail;
	if (sig == TESTCA_SIG_PSS_SHA384 || sig == TESTCA_SIG_PSS_SHA384_SALT32) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, sig == TESTCA_SIG_PSS_SHA384 ? 48 : 32) != 1)
			goto fail;
	} else if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
		goto fail;
	}
	return mctx;
fail:
	EVP_MD_CTX_free(mctx);
	return NULL;
}

static int
add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int r;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	r = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return r;
}

static int
add_raw_ext(X509 *x, const char *oid, const uint8_t *value, size_t len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	int r = -1;

	if (obj == NULL || os == NULL || ASN1_OCTET_STRING_set(os, value, (int)len) != 1)
		goto out;
	if ((ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os)) == NULL)
		goto out;
	if (X509_add_ext(x, ext, -1) != 1)
		goto out;
	r = 0;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	return r;
}

static int
add_int_ext(X509 *x, const char *oid, long v)
{
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	unsigned char *der = NULL;
	int len, r = -1;

	if (ai == NULL || ASN1_INTEGER_set(ai, v) != 1 || (len = i2d_ASN1_INTEGER(ai, &der)) <= 0)
		goto out;
	r = add_raw_ext(x, oid, der, (size_t)len);
out:
	OPENSSL_free(der);
	ASN1_INTEGER_free(ai);
	return r;
}

static int
add_ia5_ext(X509 *x, const char *oid, const char *s)
{
	ASN1_IA5STRING *a = ASN1_IA5STRING_new();
	unsigned char *der = NULL;
	int len, r = -1;

	if (a == NULL || ASN1_STRING_set(a, s, -1) != 1 || (len = i2d_ASN1_IA5STRING(a, &der)) <= 0)
		goto out;
	r = add_raw_ext(x, oid, der, (size_t)len);
out:
	OPENSSL_free(der);
	ASN1_IA5STRING_free(a);
	return r;
}

static int
add_octet_ext(X509 *x, const char *oid, const uint8_t *v, size_t n)
{
	ASN1_OCTET_STRING *a = ASN1_OCTET_STRING_new();
	unsigned char *der = NULL;
	int len, r = -1;

	if (a == NULL || ASN1_OCTET_STRING_set(a, v, (int)n) != 1 ||
	    (len = i2d_ASN1_OCTET_STRING(a, &der)) <= 0)
		goto out;
	r = add_raw_ext(x, oid, der, (size_t)len);
out:
	OPENSSL_free(der);
	ASN1_OCTET_STRING_free(a);
	return r;
}

/* A v3 certificate skeleton: names, serial, validity, public key. */
static X509 *
cert_skeleton(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *pub, long serial,
	      time_t not_before, time_t not_after)
{
	X509 *x = X509_new();

	if (x == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), serial) != 1 ||
	    X509_set_subject_name(x, subject) != 1 || X509_set_issuer_name(x, issuer) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL || X509_set_pubkey(x, pub) != 1) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
sign_cert(X509 *x, EVP_PKEY *key, enum testca_sig sig)
{
	EVP_MD_CTX *mctx = sign_ctx(key, sig);
	int r = -1;

	if (mctx != NULL && X509_sign_ctx(x, mctx) > 0)
		r = 0;
	EVP_MD_CTX_free(mctx);
	return r;
}

/* A CA certificate: ARK (self-signed, issuer == NULL) or ASK/ASVK (issued by the ARK). */
static X509 *
make_ca_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, long serial,
	     time_t not_before, time_t not_after)
{
	X509_NAME *subj = amd_name(cn);
	X509 *x = NULL;
	bool ark = issuer == NULL;

	if (subj == NULL)
		goto fail;
	x = cert_skeleton(subj, ark ? subj : X509_get_subject_name(issuer), key, serial, not_before,
			  not_after);
	if (x == NULL)
		goto fail;
	if (add_conf_ext(x, ark ? x : issuer, NID_basic_constraints,
			 ark ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0") != 0 ||
	    add_conf_ext(x, ark ? x : issuer, NID_key_usage,
			 ark ? "critical,keyCertSign,cRLSign" : "critical,keyCertSign") != 0)
		goto fail;
	if (sign_cert(x, ark ? key : issuer_key, TESTCA_SIG_PSS_SHA384) != 0)
		goto fail;
	X509_NAME_free(subj);
	return x;
fail:
	X509_NAME_free(subj);
	X509_free(x);
	return NULL;
}

void
testca_free(testca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->ark);
	X509_free(ca->ask);
	X509_free(ca->asvk);
	EVP_PKEY_free(ca->ark_key);
	EVP_PKEY_free(ca->ask_key);
	EVP_PKEY_free(ca->asvk_key);
	free(ca);
}

int
testca_new(const char *product, time_t not_before, time_t not_after, testca **out)
{
	testca *ca = NULL;
	char cn[48];
	int r = -1;

	if (product == NULL || out == NULL || (ca = calloc(1, sizeof(*ca))) == NULL)
		goto out;
	(void)snprintf(ca->product, sizeof(ca->product), "%s", product);
	ca->product_id = snp_product_from_name(product);
	if ((ca->ark_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL ||
	    (ca->ask_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL ||
	    (ca->asvk_key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL)
		goto out;
	(void)snprintf(cn, sizeof(cn), "ARK-%s", product);
	if ((ca->ark = make_ca_cert(cn, ca->ark_key, NULL, NULL, TESTCA_ARK_SERIAL, not_before,
				    not_after)) == NULL)
		goto out;
	if (testca_reissue(ca, SNP_ROLE_ASK, TESTCA_ASK_SERIAL, not_before, not_after) != 0 ||
	    testca_reissue(ca, SNP_ROLE_ASVK, TESTCA_ASVK_SERIAL, not_before, not_after) != 0)
		goto out;
	*out = ca;
	ca = NULL;
	r = 0;
out:
	testca_free(ca);
	return r;
}

int
testca_reissue(testca *ca, snp_cert_role role, long serial, time_t not_before, time_t not_after)
{
	char cn[48];
	X509 *x;

	if (ca == NULL || (role != SNP_ROLE_ASK && role != SNP_ROLE_ASVK))
		return -1;
	(void)snprintf(cn, sizeof(cn), role == SNP_ROLE_ASK ? "SEV-%s" : "SEV-VLEK-%s", ca->product);
	x = make_ca_cert(cn, role == SNP_ROLE_ASK ? ca->ask_key : ca->asvk_key, ca->ark,
			 ca->ark_key, serial, not_before, not_after);
	if (x == NULL)
		return -1;
	if (role == SNP_ROLE_ASK) {
		X509_free(ca->ask);
		ca->ask = x;
	} else {
		X509_free(ca->asvk);
		ca->asvk = x;
	}
	return 0;
}

static time_t
asn1_to_time(const ASN1_TIME *a)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return 0;
	return timegm(&tm);
}

void
testca_leaf_defaults(testca_leaf *o, const testca *ca, snp_cert_role role)
{
	static const char *const plain[3] = { "Milan", "Genoa", "Turin" };
	bool turin = ca->product_id == SNP_PRODUCT_TURIN;
	int i;

	memset(o, 0, sizeof(*o));
	o->role = role;
	if (role == SNP_ROLE_VCEK && ca->product_id == SNP_PRODUCT_MILAN)
		o->product_name = "Milan-B0";
	else if (ca->product_id >= SNP_PRODUCT_MILAN && ca->product_id <= SNP_PRODUCT_TURIN)
		o->product_name = plain[ca->product_id - 1];
	else
		o->product_name = ca->product;
	o->struct_version = turin ? 1 : 0;
	for (i = 0; i < TESTCA_SPL_COUNT; i++)
		o->spl[i] = 0;
	o->spl[TESTCA_BL] = 3;
	o->spl[TESTCA_TEE] = 0;
	o->spl[TESTCA_SNP] = 8;
	o->spl[TESTCA_UCODE] = 115;
	if (turin) {
		o->spl[3] = TESTCA_ABSENT;
		o->spl[TESTCA_FMC] = 1;
	} else {
		o->spl[TESTCA_FMC] = TESTCA_ABSENT;
	}
	if (role == SNP_ROLE_VCEK) {
		o->hwid = default_hwid;
		o->hwid_len = turin ? SNP_HWID_LEN_TURIN : SNP_HWID_LEN_LEGACY;
	} else {
		o->csp_id = "CN=test.example";
	}
	o->serial = 0;
	o->issuer = role == SNP_ROLE_VLEK ? ca->asvk : ca->ask;
	o->issuer_key = role == SNP_ROLE_VLEK ? ca->asvk_key : ca->ask_key;
	o->not_before = asn1_to_time(X509_get0_notBefore(o->issuer));
	o->not_after = asn1_to_time(X509_get0_notAfter(o->issuer));
	o->sig = TESTCA_SIG_PSS_SHA384;
}

int
testca_issue_leaf(const testca_leaf *o, uint8_t **der, size_t *der_len, EVP_PKEY **key_out)
{
	EVP_PKEY *key = NULL;
	X509_NAME *subj = NULL;
	X509 *x = NULL;
	char oid[40];
	size_t i;
	int r = -1;

	if (o == NULL || o->issuer == NULL || o->issuer_key == NULL || der == NULL ||
	    der_len == NULL)
		goto out;
	if (o->key != NULL) {
		if (EVP_PKEY_up_ref(o->key) != 1)
			goto out;
		key = o->key;
	} else if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")) == NULL) {
		goto out;
	}
	if ((subj = amd_name(o->role == SNP_ROLE_VLEK ? "SEV-VLEK" : "SEV-VCEK")) == NULL)
		goto out;
	if ((x = cert_skeleton(subj, X509_get_subject_name(o->issuer), key, o->serial,
			       o->not_before, o->not_after)) == NULL)
		goto out;
	if (o->struct_version != TESTCA_ABSENT &&
	    add_int_ext(x, AMD_OID ".1", o->struct_version) != 0)
		goto out;
	if (o->product_name != NULL && add_ia5_ext(x, AMD_OID ".2", o->product_name) != 0)
		goto out;
	for (i = 0; i < TESTCA_SPL_COUNT; i++) {
		if (o->spl[i] == TESTCA_ABSENT)
			continue;
		(void)snprintf(oid, sizeof(oid), AMD_OID ".3.%zu", i + 1);
		if (add_int_ext(x, oid, o->spl[i]) != 0)
			goto out;
	}
	if (o->hwid != NULL) {
		if (o->hwid_der ? add_octet_ext(x, AMD_OID ".4", o->hwid, o->hwid_len)
				: add_raw_ext(x, AMD_OID ".4", o->hwid, o->hwid_len))
			goto out;
	}
	if (o->csp_id != NULL && add_ia5_ext(x, AMD_OID ".5", o->csp_id) != 0)
		goto out;
	for (i = 0; i < o->n_extra && i < TESTCA_MAX_EXTRA; i++) {
		if (add_raw_ext(x, o->extra[i].oid, o->extra[i].value, o->extra[i].len) != 0)
			goto out;
	}
	if (sign_cert(x, o->issuer_key, o->sig) != 0)
		goto out;
	if (testca_der(x, der, der_len) != 0)
		goto out;
	if (key_out != NULL) {
		*key_out = key;
		key = NULL;
	}
	r = 0;
out:
	X509_free(x);
	X509_NAME_free(subj);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

int
testca_issue_leaf_cert(const testca_leaf *o, snp_cert **out, EVP_PKEY **key_out)
{
	uint8_t *der = NULL;
	size_t len = 0;
	EVP_PKEY *key = NULL;
	int r;

	if (testca_issue_leaf(o, &der, &len, &key) != 0)
		return SNP_E_INTERNAL;
	r = snp_cert_parse(der, len, out, NULL);
	if (r == SNP_OK && key_out != NULL) {
		*key_out = key;
		key = NULL;
	}
	EVP_PKEY_free(key);
	free(der);
	return r;
}

int
testca_make_crl(X509 *issuer, EVP_PKEY *key, enum testca_sig sig, const long *serials, size_t n,
		time_t this_update, time_t next_update, uint8_t **der, size_t *der_len)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *tu = ASN1_TIME_set(NULL, this_update);
	ASN1_TIME *nu = next_update != 0 ? ASN1_TIME_set(NULL, next_update) : NULL;
	EVP_MD_CTX *mctx = NULL;
	unsigned char *buf = NULL;
	size_t i;
	int len, r = -1;

	if (crl == NULL || tu == NULL || (next_update != 0 && nu == NULL) || der == NULL ||
	    der_len == NULL)
		goto out;
	if (X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, tu) != 1 || (nu != NULL && X509_CRL_set1_nextUpdate(crl, nu) != 1))
		goto out;
	for (i = 0; i < n; i++) {
		X509_REVOKED *rev = X509_REVOKED_new();
		ASN1_INTEGER *s = ASN1_INTEGER_new();
		int ok = rev != NULL && s != NULL && ASN1_INTEGER_set(s, serials[i]) == 1 &&
			 X509_REVOKED_set_serialNumber(rev, s) == 1 &&
			 X509_REVOKED_set_revocationDate(rev, tu) == 1 && X509_CRL_add0_revoked(crl, rev) == 1;

		ASN1_INTEGER_free(s);
		if (!ok) {
			X509_REVOKED_free(rev);
			goto out;
		}
	}
	if (X509_CRL_sort(crl) != 1 || (mctx = sign_ctx(key, sig)) == NULL ||
	    X509_CRL_sign_ctx(crl, mctx) <= 0)
		goto out;
	if ((len = i2d_X509_CRL(crl, &buf)) <= 0 || (*der = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(*der, buf, (size_t)len);
	*der_len = (size_t)len;
	r = 0;
out:
	OPENSSL_free(buf);
	EVP_MD_CTX_free(mctx);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
testca_der(X509 *x, uint8_t **der, size_t *der_len)
{
	unsigned char *buf = NULL;
	int len;

	if (x == NULL || der == NULL || der_len == NULL || (len = i2d_X509(x, &buf)) <= 0)
		return -1;
	if ((*der = malloc((size_t)len)) == NULL) {
		OPENSSL_free(buf);
		return -1;
	}
	memcpy(*der, buf, (size_t)len);
	*der_len = (size_t)len;
	OPENSSL_free(buf);
	return 0;
}

int
testca_cert(X509 *x, snp_cert **out)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	if (testca_der(x, &der, &len) != 0)
		return SNP_E_INTERNAL;
	r = snp_cert_parse(der, len, out, NULL);
	free(der);
	return r;
}

void
testca_ark_pin(const testca *ca, uint8_t out[32])
{
	unsigned char *spki = NULL;
	unsigned int n = 0;
	int len;

	memset(out, 0, 32);
	if ((len = i2d_PUBKEY(ca->ark_key, &spki)) > 0)
		(void)EVP_Digest(spki, (size_t)len, out, &n, EVP_sha256(), NULL);
	OPENSSL_free(spki);
}

int
testca_install(const testca *ca, snp_trust *t, snp_error *err)
{
	X509 *certs[3];
	uint8_t pin[32];
	snp_cert *c = NULL;
	int i, r;

	testca_ark_pin(ca, pin);
	if ((r = snp_trust_pin(t, ca->product_id, pin)) != SNP_OK)
		return r;
	certs[0] = ca->ark;
	certs[1] = ca->ask;
	certs[2] = ca->asvk;
	for (i = 0; i < 3; i++) {
		if ((r = testca_cert(certs[i], &c)) != SNP_OK)
			return r;
		r = snp_trust_add_cert(t, c, err);
		snp_cert_free(c);
		c = NULL;
		if (r != SNP_OK)
			return r;
	}
	return SNP_OK;
}
