/* Unit tests: snp_cert_parse and the certificate accessors (src/snp/cert.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nitride/snp.h>

#include "testca.h"
#include "testsupport.h"

#define AMD_OID "1.3.6.1.4.1.3704.1"

/* What an independent reader (openssl x509 -text, fields.json) says about each real signer. */
struct real_cert {
	const char *file;
	snp_cert_role role;
	snp_product product;
	const char *product_name;
	int struct_version;
	uint8_t bl, tee, snp, ucode;
	int fmc; /* -1: not Turin */
	size_t hwid_len;
	uint8_t hwid_prefix[4];
};

static const struct real_cert real_certs[] = {
	{ "genoa-v3-routex.der", SNP_ROLE_VCEK, SNP_PRODUCT_GENOA, "Genoa", 0, 9, 0, 23, 72, -1, 64,
	  { 0x9d, 0xc9, 0x99, 0x62 } },
	{ "genoa-v5-routex.der", SNP_ROLE_VCEK, SNP_PRODUCT_GENOA, "Genoa", 0, 10, 0, 27, 88, -1, 64,
	  { 0xe0, 0x23, 0x4b, 0xed } },
	{ "milan-v2-gosevguest.der", SNP_ROLE_VCEK, SNP_PRODUCT_MILAN, "Milan-B0", 0, 2, 0, 5, 68, -1,
	  64, { 0x3a, 0xc3, 0xfe, 0x21 } },
	{ "milan-v2-trustee.der", SNP_ROLE_VCEK, SNP_PRODUCT_MILAN, "Milan-B0", 0, 3, 0, 8, 115, -1, 64,
	  { 0xc3, 0x84, 0x27, 0xa3 } },
	{ "milan-v2-virtee.der", SNP_ROLE_VCEK, SNP_PRODUCT_MILAN, "Milan-B0", 0, 3, 0, 8, 115, -1, 64,
	  { 0xd4, 0x95, 0x54, 0xec } },
	{ "milan-v3-oak-oc-release.der", SNP_ROLE_VCEK, SNP_PRODUCT_MILAN, "Milan-B0", 0, 4, 0, 24,
	  219, -1, 64, { 0xa3, 0xfd, 0xc2, 0xc6 } },
	{ "milan-v3-vlek-trustee.der", SNP_ROLE_VLEK, SNP_PRODUCT_MILAN, "Milan", 0, 4, 0, 24, 217, -1,
	  0, { 0 } },
	{ "turin-v5-oak.der", SNP_ROLE_VCEK, SNP_PRODUCT_TURIN, "Turin", 1, 1, 0, 2, 71, 0, 8,
	  { 0x3b, 0x42, 0x09, 0x2f } },
};

static uint8_t *
read_cert(const char *file, size_t *len)
{
	char rel[256];

	(void)snprintf(rel, sizeof(rel), "snp/certs/%s", file);
	return ts_read_vector(rel, len);
}

/* Parse `buf` expecting failure with `status`; the error must carry it and a detail. */
static void
expect_parse_fail(const uint8_t *buf, size_t len, int status)
{
	snp_cert *c = NULL;
	snp_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_cert_parse(buf, len, &c, &err), status);
	assert_null(c);
	assert_int_equal(err.status, status);
	assert_true(err.detail[0] != '\0');
}

static void
test_real_signers(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(real_certs) / sizeof(real_certs[0]); i++) {
		const struct real_cert *rc = &real_certs[i];
		snp_cert *c = NULL;
		snp_error err;
		snp_tcb tcb;
		const uint8_t *hwid;
		size_t len = 0, hlen = 99;
		uint8_t *buf = read_cert(rc->file, &len);
		uint64_t raw;

		memset(&err, 0, sizeof(err));
		if (snp_cert_parse(buf, len, &c, &err) != SNP_OK)
			fail_msg("%s: %s", rc->file, err.detail);
		assert_int_equal(snp_cert_get_role(c), rc->role);
		assert_int_equal(snp_cert_product(c), rc->product);
		assert_string_equal(snp_cert_product_name(c), rc->product_name);
		assert_int_equal(snp_cert_struct_version(c), rc->struct_version);
		assert_int_equal(snp_cert_tcb(c, &tcb), SNP_OK);
		assert_int_equal(tcb.bootloader, rc->bl);
		assert_int_equal(tcb.tee, rc->tee);
		assert_int_equal(tcb.snp, rc->snp);
		assert_int_equal(tcb.microcode, rc->ucode);
		if (rc->fmc >= 0) {
			assert_true(tcb.has_fmc);
			assert_int_equal(tcb.fmc, rc->fmc);
			raw = (uint64_t)rc->fmc | (uint64_t)rc->bl << 8 | (uint64_t)rc->tee << 16 |
			      (uint64_t)rc->snp << 24 | (uint64_t)rc->ucode << 56;
		} else {
			assert_false(tcb.has_fmc);
			raw = (uint64_t)rc->bl | (uint64_t)rc->tee << 8 | (uint64_t)rc->snp << 48 |
			      (uint64_t)rc->ucode << 56;
		}
		assert_true(tcb.raw == raw);
		hwid = snp_cert_hwid(c, &hlen);
		assert_int_equal(hlen, rc->hwid_len);
		if (rc->hwid_len == 0) {
			assert_null(hwid);
		} else {
			assert_non_null(hwid);
			assert_memory_equal(hwid, rc->hwid_prefix, 4);
		}
		snp_cert_free(c);
		free(buf);
	}
}

static void
test_metadata(void **state)
{
	snp_cert *c = NULL;
	size_t len = 0, dlen = 0;
	uint8_t *buf = read_cert("milan-v2-trustee.der", &len);
	uint8_t fp[32], want[32], spki[32], *pk = NULL;
	unsigned int n = 0;
	const unsigned char *p = buf;
	X509 *x = NULL;
	struct tm tm;
	int pklen;

	(void)state;
	assert_int_equal(snp_cert_parse(buf, len, &c, NULL), SNP_OK);
	/* Fingerprint = SHA-256 of the file; DER accessor returns the same bytes. */
	snp_cert_fingerprint(c, fp);
	assert_int_equal(EVP_Digest(buf, len, want, &n, EVP_sha256(), NULL), 1);
	assert_memory_equal(fp, want, 32);
	assert_memory_equal(snp_cert_der(c, &dlen), buf, len);
	assert_int_equal(dlen, len);
	/* SPKI pin computed independently through i2d_PUBKEY. */
	assert_non_null(x = d2i_X509(NULL, &p, (long)len));
	assert_true((pklen = i2d_PUBKEY(X509_get0_pubkey(x), &pk)) > 0);
	assert_int_equal(EVP_Digest(pk, (size_t)pklen, want, &n, EVP_sha256(), NULL), 1);
	snp_cert_spki_sha256(c, spki);
	assert_memory_equal(spki, want, 32);
	/* notBefore=Jan 24 17:58:26 2023 GMT, notAfter=Jan 24 17:58:26 2030 GMT */
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = 123;
	tm.tm_mon = 0;
	tm.tm_mday = 24;
	tm.tm_hour = 17;
	tm.tm_min = 58;
	tm.tm_sec = 26;
	assert_true(snp_cert_not_before(c) == timegm(&tm));
	tm.tm_year = 130;
	assert_true(snp_cert_not_after(c) == timegm(&tm));
	OPENSSL_free(pk);
	X509_free(x);
	snp_cert_free(c);
	free(buf);
}

static void
test_amd_roots(void **state)
{
	static const struct {
		const char *file;
		snp_cert_role role;
		snp_product product;
	} roots[] = {
		{ "amd/ark_milan.pem", SNP_ROLE_ARK, SNP_PRODUCT_MILAN },
		{ "amd/ark_genoa.pem", SNP_ROLE_ARK, SNP_PRODUCT_GENOA },
		{ "amd/ark_turin.pem", SNP_ROLE_ARK, SNP_PRODUCT_TURIN },
		{ "amd/ask_milan.pem", SNP_ROLE_ASK, SNP_PRODUCT_MILAN },
		{ "amd/ask_genoa.pem", SNP_ROLE_ASK, SNP_PRODUCT_GENOA },
		{ "amd/ask_turin.pem", SNP_ROLE_ASK, SNP_PRODUCT_TURIN },
		{ "amd/asvk_milan.pem", SNP_ROLE_ASVK, SNP_PRODUCT_MILAN },
		{ "amd/asvk_genoa.pem", SNP_ROLE_ASVK, SNP_PRODUCT_GENOA },
		{ "amd/asvk_turin.pem", SNP_ROLE_ASVK, SNP_PRODUCT_TURIN },
	};
	size_t i, hlen = 99;

	(void)state;
	for (i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
		size_t len = 0;
		uint8_t *buf = ts_read_vector(roots[i].file, &len);
		snp_cert *c = NULL;
		snp_tcb tcb;

		assert_int_equal(snp_cert_parse(buf, len, &c, NULL), SNP_OK);
		assert_int_equal(snp_cert_get_role(c), roots[i].role);
		assert_int_equal(snp_cert_product(c), roots[i].product);
		assert_null(snp_cert_product_name(c));
		assert_int_equal(snp_cert_struct_version(c), -1);
		assert_int_equal(snp_cert_tcb(c, &tcb), SNP_E_NOT_FOUND);
		assert_null(snp_cert_hwid(c, &hlen));
		assert_int_equal(hlen, 0);
		snp_cert_free(c);
		free(buf);
	}
}

static void
test_role_names(void **state)
{
	(void)state;
	assert_string_equal(snp_cert_role_name(SNP_ROLE_ARK), "ark");
	assert_string_equal(snp_cert_role_name(SNP_ROLE_ASK), "ask");
	assert_string_equal(snp_cert_role_name(SNP_ROLE_ASVK), "asvk");
	assert_string_equal(snp_cert_role_name(SNP_ROLE_VCEK), "vcek");
	assert_string_equal(snp_cert_role_name(SNP_ROLE_VLEK), "vlek");
	assert_string_equal(snp_cert_role_name(SNP_ROLE_UNKNOWN), "unknown");
	assert_string_equal(snp_cert_role_name((snp_cert_role)77), "unknown");
	/* NULL objects are tolerated by every accessor. */
	assert_int_equal(snp_cert_get_role(NULL), SNP_ROLE_UNKNOWN);
	assert_int_equal(snp_cert_struct_version(NULL), -1);
	snp_cert_free(NULL);
}

/* DER → PEM with OpenSSL; caller frees. */
static char *
to_pem(const uint8_t *der, size_t len, size_t *pem_len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL, *out;
	long n;

	assert_non_null(x);
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0);
	out = malloc((size_t)n + 1);
	assert_non_null(out);
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*pem_len = (size_t)n;
	BIO_free(bio);
	X509_free(x);
	return out;
}

static void
test_pem_and_der(void **state)
{
	size_t len = 0, plen = 0;
	uint8_t *der = read_cert("turin-v5-oak.der", &len);
	char *pem = to_pem(der, len, &plen);
	snp_cert *a = NULL, *b = NULL;
	uint8_t fa[32], fb[32];
	snp_tcb ta, tb;
	char *buf;
	size_t blen;

	(void)state;
	assert_int_equal(snp_cert_parse(der, len, &a, NULL), SNP_OK);
	assert_int_equal(snp_cert_parse((const uint8_t *)pem, plen, &b, NULL), SNP_OK);
	snp_cert_fingerprint(a, fa);
	snp_cert_fingerprint(b, fb);
	assert_memory_equal(fa, fb, 32);
	assert_int_equal(snp_cert_get_role(b), SNP_ROLE_VCEK);
	assert_int_equal(snp_cert_tcb(a, &ta), SNP_OK);
	assert_int_equal(snp_cert_tcb(b, &tb), SNP_OK);
	assert_true(ta.raw == tb.raw);
	snp_cert_free(b);
	b = NULL;

	buf = malloc(2 * plen + 64);
	assert_non_null(buf);
	/* Leading and trailing whitespace are fine. */
	blen = (size_t)snprintf(buf, 2 * plen + 64, " \n\t%s\n\n ", pem);
	assert_int_equal(snp_cert_parse((const uint8_t *)buf, blen, &b, NULL), SNP_OK);
	snp_cert_free(b);
	b = NULL;
	/* Two certificates: rejected. */
	blen = (size_t)snprintf(buf, 2 * plen + 64, "%s%s", pem, pem);
	expect_parse_fail((const uint8_t *)buf, blen, SNP_E_FORMAT);
	/* Trailing text: rejected. */
	blen = (size_t)snprintf(buf, 2 * plen + 64, "%sjunk\n", pem);
	expect_parse_fail((const uint8_t *)buf, blen, SNP_E_FORMAT);
	/* Another PEM type with the same body: rejected. */
	blen = (size_t)snprintf(buf, 2 * plen + 64, "%s", pem);
	memcpy(strstr(buf, "CERTIFICATE"), "PUBLICKEYAB", 11);
	memcpy(strstr(buf, "END CERTIFICATE") + 4, "PUBLICKEYAB", 11);
	expect_parse_fail((const uint8_t *)buf, blen, SNP_E_FORMAT);
	/* Corrupt base64: rejected. */
	blen = (size_t)snprintf(buf, 2 * plen + 64, "%s", pem);
	buf[40] = '*';
	expect_parse_fail((const uint8_t *)buf, blen, SNP_E_FORMAT);

	free(buf);
	snp_cert_free(a);
	free(pem);
	free(der);
}

static void
test_bad_input(void **state)
{
	size_t len = 0;
	uint8_t *der = read_cert("milan-v2-virtee.der", &len);
	uint8_t *big;
	snp_cert *c = NULL;

	(void)state;
	/* Truncated anywhere. */
	expect_parse_fail(der, len - 1, SNP_E_FORMAT);
	expect_parse_fail(der, len / 2, SNP_E_FORMAT);
	expect_parse_fail(der, 4, SNP_E_FORMAT);
	/* Empty. */
	expect_parse_fail(der, 0, SNP_E_FORMAT);
	/* Trailing garbage after a complete DER certificate. */
	big = calloc(1, SNP_CERT_MAX_SIZE + 1);
	assert_non_null(big);
	memcpy(big, der, len);
	expect_parse_fail(big, len + 1, SNP_E_FORMAT);
	/* Oversized, even though it starts with a valid certificate. */
	expect_parse_fail(big, SNP_CERT_MAX_SIZE + 1, SNP_E_FORMAT);
	/* A byte flipped in the outer length. */
	memcpy(big, der, len);
	big[3] ^= 0x01;
	expect_parse_fail(big, len, SNP_E_FORMAT);
	/* Misuse. */
	assert_int_equal(snp_cert_parse(NULL, 10, &c, NULL), SNP_E_ARGUMENT);
	assert_int_equal(snp_cert_parse(der, len, NULL, NULL), SNP_E_ARGUMENT);
	free(big);
	free(der);
}

/* ---- Leaves built with the test CA ---- */

static testca *milan_ca, *turin_ca;

static int
group_setup(void **state)
{
	time_t now = time(NULL);

	(void)state;
	if (testca_new("Milan", now - 86400, now + 86400 * 3650, &milan_ca) != 0 ||
	    testca_new("Turin", now - 86400, now + 86400 * 3650, &turin_ca) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	testca_free(milan_ca);
	testca_free(turin_ca);
	return 0;
}

static int
issue(const testca_leaf *o, snp_cert **out)
{
	return testca_issue_leaf_cert(o, out, NULL);
}

static void
test_testca_leaf_parses(void **state)
{
	testca_leaf o;
	snp_cert *c = NULL;
	snp_tcb tcb;
	size_t hlen = 0;
	const uint8_t *hwid;

	(void)state;
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.spl[TESTCA_UCODE] = 0xdb; /* DER INTEGER 02 02 00 db */
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_get_role(c), SNP_ROLE_VCEK);
	assert_int_equal(snp_cert_product(c), SNP_PRODUCT_MILAN);
	assert_int_equal(snp_cert_tcb(c, &tcb), SNP_OK);
	assert_int_equal(tcb.microcode, 0xdb);
	assert_int_equal(tcb.bootloader, 3);
	hwid = snp_cert_hwid(c, &hlen);
	assert_int_equal(hlen, 64);
	assert_memory_equal(hwid, testca_default_hwid(), 64);
	snp_cert_free(c);

	/* VLEK: csp_id, no hwID. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VLEK);
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_get_role(c), SNP_ROLE_VLEK);
	assert_null(snp_cert_hwid(c, &hlen));
	snp_cert_free(c);

	/* No SPLs at all: the TCB is not found (but parsing succeeds). */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.spl[TESTCA_SNP] = TESTCA_ABSENT;
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_tcb(c, &tcb), SNP_E_NOT_FOUND);
	snp_cert_free(c);

	/* Turin without fmcSPL: its TCB is incomplete. */
	testca_leaf_defaults(&o, turin_ca, SNP_ROLE_VCEK);
	o.spl[TESTCA_FMC] = TESTCA_ABSENT;
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_tcb(c, &tcb), SNP_E_NOT_FOUND);
	snp_cert_free(c);

	/* No productName: product from nothing (a VCEK's CN names none). */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.product_name = NULL;
	o.hwid = NULL;
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_product(c), SNP_PRODUCT_UNKNOWN);
	assert_null(snp_cert_product_name(c));
	snp_cert_free(c);
}

static void
test_hwid_encodings(void **state)
{
	testca_leaf o;
	snp_cert *c = NULL;
	size_t hlen = 0;
	const uint8_t *hwid;

	(void)state;
	/* DER-wrapped 64 bytes (AMD's announced encoding). */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.hwid_der = true;
	assert_int_equal(issue(&o, &c), SNP_OK);
	hwid = snp_cert_hwid(c, &hlen);
	assert_int_equal(hlen, 64);
	assert_memory_equal(hwid, testca_default_hwid(), 64);
	snp_cert_free(c);
	/* DER-wrapped 8 bytes on Turin. */
	testca_leaf_defaults(&o, turin_ca, SNP_ROLE_VCEK);
	o.hwid_der = true;
	assert_int_equal(issue(&o, &c), SNP_OK);
	hwid = snp_cert_hwid(c, &hlen);
	assert_int_equal(hlen, 8);
	assert_memory_equal(hwid, testca_default_hwid(), 8);
	snp_cert_free(c);
	c = NULL;
	/* Raw 8 bytes on Turin. */
	testca_leaf_defaults(&o, turin_ca, SNP_ROLE_VCEK);
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_non_null(snp_cert_hwid(c, &hlen));
	assert_int_equal(hlen, 8);
	snp_cert_free(c);
	c = NULL;

	/* Bad lengths, raw and wrapped. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.hwid_len = 32;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	o.hwid_der = true;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	o.hwid_len = 63;
	o.hwid_der = false;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* 8 bytes on Milan, 64 on Turin: wrong for the product. */
	o.hwid_len = 8;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	testca_leaf_defaults(&o, turin_ca, SNP_ROLE_VCEK);
	o.hwid_len = 64;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* hwID and csp_id together. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.csp_id = "CN=x";
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	assert_null(c);
}

static void
test_malformed_extensions(void **state)
{
	static const uint8_t ia5[] = { 0x16, 0x01, 'x' };
	static const uint8_t int_trailing[] = { 0x02, 0x01, 0x05, 0x00 };
	static const uint8_t int_padded[] = { 0x02, 0x02, 0x00, 0x05 }; /* not minimal DER */
	static const uint8_t int_neg[] = { 0x02, 0x01, 0xff };
	static const uint8_t int3[] = { 0x02, 0x01, 0x03 };
	static const uint8_t nonprint[] = { 0x16, 0x02, 'M', 0x01 };
	testca_leaf o;
	snp_cert *c = NULL;
	snp_error err;

	(void)state;
	/* SPL INTEGER 300: out of 0..255; the detail names the OID and the value. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.spl[TESTCA_BL] = 300;
	{
		uint8_t *der = NULL;
		size_t len = 0;

		assert_int_equal(testca_issue_leaf(&o, &der, &len, NULL), 0);
		memset(&err, 0, sizeof(err));
		assert_int_equal(snp_cert_parse(der, len, &c, &err), SNP_E_FORMAT);
		assert_non_null(strstr(err.detail, AMD_OID ".3.1"));
		assert_non_null(strstr(err.detail, "300"));
		free(der);
	}
	/* SPL not an INTEGER. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.spl[TESTCA_TEE] = TESTCA_ABSENT;
	o.extra[0] = (testca_ext){ AMD_OID ".3.2", ia5, sizeof(ia5) };
	o.n_extra = 1;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* INTEGER followed by a stray byte. */
	o.extra[0] = (testca_ext){ AMD_OID ".3.2", int_trailing, sizeof(int_trailing) };
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* Non-minimal INTEGER encoding. */
	o.extra[0] = (testca_ext){ AMD_OID ".3.2", int_padded, sizeof(int_padded) };
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* Negative SPL. */
	o.extra[0] = (testca_ext){ AMD_OID ".3.2", int_neg, sizeof(int_neg) };
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* Duplicated extension (blSPL twice). */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.extra[0] = (testca_ext){ AMD_OID ".3.1", int3, sizeof(int3) };
	o.n_extra = 1;
	memset(&err, 0, sizeof(err));
	{
		uint8_t *der = NULL;
		size_t len = 0;

		assert_int_equal(testca_issue_leaf(&o, &der, &len, NULL), 0);
		assert_int_equal(snp_cert_parse(der, len, &c, &err), SNP_E_FORMAT);
		assert_non_null(strstr(err.detail, "more than once"));
		free(der);
	}
	/* structVersion not an INTEGER. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.struct_version = TESTCA_ABSENT;
	o.extra[0] = (testca_ext){ AMD_OID ".1", ia5, sizeof(ia5) };
	o.n_extra = 1;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* productName not an IA5String, and with a control character. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.product_name = NULL;
	o.extra[0] = (testca_ext){ AMD_OID ".2", int3, sizeof(int3) };
	o.n_extra = 1;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	o.extra[0] = (testca_ext){ AMD_OID ".2", nonprint, sizeof(nonprint) };
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* csp_id not an IA5String. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VLEK);
	o.csp_id = NULL;
	o.extra[0] = (testca_ext){ AMD_OID ".5", int3, sizeof(int3) };
	o.n_extra = 1;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	/* A productName that names no known product is not an error; the product stays
	 * unknown (a VCEK's CN names none), so the trust check will refuse it. */
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.product_name = "Siena";
	o.hwid = NULL;
	assert_int_equal(issue(&o, &c), SNP_OK);
	assert_int_equal(snp_cert_product(c), SNP_PRODUCT_UNKNOWN);
	assert_string_equal(snp_cert_product_name(c), "Siena");
	snp_cert_free(c);
}

static void
test_leaf_key_type(void **state)
{
	testca_leaf o;
	snp_cert *c = NULL;
	EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	(void)state;
	assert_non_null(p256);
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VCEK);
	o.key = p256;
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	testca_leaf_defaults(&o, milan_ca, SNP_ROLE_VLEK);
	o.key = milan_ca->ask_key; /* RSA */
	assert_int_equal(issue(&o, &c), SNP_E_FORMAT);
	assert_null(c);
	EVP_PKEY_free(p256);
}

static void
test_unknown_role(void **state)
{
	testca *ca = NULL;
	snp_cert *c = NULL;
	time_t now = time(NULL);

	(void)state;
	/* ARK-Siena: an unknown product is not a parse error, just an unknown role. */
	assert_int_equal(testca_new("Siena", now, now + 3600, &ca), 0);
	assert_int_equal(testca_cert(ca->ark, &c), SNP_OK);
	assert_int_equal(snp_cert_get_role(c), SNP_ROLE_UNKNOWN);
	assert_int_equal(snp_cert_product(c), SNP_PRODUCT_UNKNOWN);
	snp_cert_free(c);
	assert_int_equal(testca_cert(ca->asvk, &c), SNP_OK);
	assert_int_equal(snp_cert_get_role(c), SNP_ROLE_UNKNOWN);
	snp_cert_free(c);
	testca_free(ca);
}

int
main(void)
{
	const struct CMUnitTest vector_tests[] = {
		cmocka_unit_test(test_real_signers),
		cmocka_unit_test(test_metadata),
		cmocka_unit_test(test_amd_roots),
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_pem_and_der),
		cmocka_unit_test(test_bad_input),
	};
	const struct CMUnitTest testca_tests[] = {
		cmocka_unit_test(test_testca_leaf_parses),
		cmocka_unit_test(test_hwid_encodings),
		cmocka_unit_test(test_malformed_extensions),
		cmocka_unit_test(test_leaf_key_type),
		cmocka_unit_test(test_unknown_role),
	};
	int fails;

	ts_require_vectors();
	fails = cmocka_run_group_tests_name("cert (vectors)", vector_tests, NULL, NULL);
	fails += cmocka_run_group_tests_name("cert (test CA)", testca_tests, group_setup,
					     group_teardown);
	return fails;
}
