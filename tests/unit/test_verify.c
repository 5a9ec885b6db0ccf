/* Unit tests: snp_verify on real evidence, and one negative test per check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nitride/snp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "common/timefmt.h"
#include "testca.h"
#include "testsupport.h"

struct evidence {
	uint8_t *report_bytes;
	size_t report_len;
	snp_cert *vcek;
	snp_trust *trust;
};

static snp_trust *
load_trust(void)
{
	snp_trust *t = NULL;
	snp_error err = { 0 };
	char dir[4096];

	(void)snprintf(dir, sizeof(dir), "%s/amd", ts_vectors_dir());
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	if (snp_trust_load_dir(t, dir, &err) != SNP_OK)
		fail_msg("load %s: %s", dir, err.detail);
	return t;
}

static void
load_evidence(const char *name, struct evidence *e)
{
	snp_error err = { 0 };
	uint8_t *der;
	size_t len;
	char rel[256];

	(void)snprintf(rel, sizeof(rel), "snp/reports/%s.bin", name);
	e->report_bytes = ts_read_vector(rel, &e->report_len);
	(void)snprintf(rel, sizeof(rel), "snp/certs/%s.der", name);
	der = ts_read_vector(rel, &len);
	if (snp_cert_parse(der, len, &e->vcek, &err) != SNP_OK)
		fail_msg("%s: %s", rel, err.detail);
	free(der);
	e->trust = load_trust();
}

static void
free_evidence(struct evidence *e)
{
	free(e->report_bytes);
	snp_cert_free(e->vcek);
	snp_trust_free(e->trust);
}

/* Parse `bytes` and verify; returns the status (a parse failure's status too). */
static int
verify_bytes(struct evidence *e, const uint8_t *bytes, snp_product product, time_t at,
	     snp_error *err)
{
	snp_verify_opts opts = { .product = product, .at = at };
	snp_report *r = NULL;
	int st;

	if ((st = snp_report_parse(bytes, SNP_REPORT_SIZE, &r, err)) != SNP_OK)
		return st;
	st = snp_verify(e->trust, r, e->vcek, &opts, NULL, err);
	snp_report_free(r);
	return st;
}

static void
test_real_reports_verify(void **state)
{
	static const struct {
		const char *name;
		snp_product product;
		const char *at;
	} cases[] = {
		{ "milan-v2-gosevguest", SNP_PRODUCT_MILAN, NULL },
		{ "milan-v3-oak-oc-release", SNP_PRODUCT_UNKNOWN, NULL },
		{ "genoa-v3-routex", SNP_PRODUCT_GENOA, NULL },
		{ "genoa-v5-routex", SNP_PRODUCT_UNKNOWN, NULL },
		{ "turin-v5-oak", SNP_PRODUCT_UNKNOWN, NULL },
		{ "milan-v3-vlek-trustee", SNP_PRODUCT_MILAN, "2025-06-01T00:00:00Z" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snp_verify_opts opts = { .product = cases[i].product };
		snp_verify_result res = { 0 };
		snp_error err = { 0 };
		snp_report *r = NULL;
		struct evidence e = { 0 };
		int pass;

		load_evidence(cases[i].name, &e);
		if (cases[i].at != NULL)
			assert_int_equal(rfc3339_parse(cases[i].at, &opts.at), 0);
		assert_int_equal(snp_report_parse(e.report_bytes, e.report_len, &r, &err), SNP_OK);
		/* Twice: the second call takes the cached-signer path. */
		for (pass = 0; pass < 2; pass++) {
			if (snp_verify(e.trust, r, e.vcek, &opts, &res, &err) != SNP_OK)
				fail_msg("%s (pass %d): %s: %s", cases[i].name, pass,
					 snp_status_class(err.status), err.detail);
		}
		assert_int_equal(res.product, snp_cert_product(e.vcek));
		assert_int_equal(res.signing_key, snp_report_signing_key(r));
		assert_int_equal(res.reported_tcb.raw, snp_report_reported_tcb(r));
		assert_int_equal(snp_report_verify_signature(r, e.vcek, &err), SNP_OK);
		snp_report_free(r);
		free_evidence(&e);
	}
}

/* Which classes may a flip of byte `off` produce?  The signature, unless a check
 * that runs earlier (parse, product, signing key) catches the change first. */
static bool
flip_outcome_ok(size_t off, int st)
{
	if (st == SNP_E_SIGNATURE)
		return true;
	if (st == SNP_E_FORMAT)
		return off < 0x004 || (off >= 0x034 && off < 0x038) || (off >= 0x048 && off < 0x050) ||
		       (off >= 0x188 && off < 0x1A0) || off == 0x1EB || off == 0x1EF ||
		       (off >= 0x1F8 && off < 0x2A0);
	if (st == SNP_E_PRODUCT)
		return off == 0x188 || off == 0x189;
	if (st == SNP_E_SIGNING_KEY)
		return off >= 0x048 && off < 0x04C;
	return false;
}

static void
flip_every_signed_byte(const char *name)
{
	struct evidence e = { 0 };
	uint8_t buf[SNP_REPORT_SIZE];
	size_t off, counts[3] = { 0 };

	load_evidence(name, &e);
	assert_int_equal(verify_bytes(&e, e.report_bytes, snp_cert_product(e.vcek), 0, NULL), SNP_OK);
	for (off = 0; off < SNP_REPORT_SIGNED_SIZE; off++) {
		snp_error err = { 0 };
		int st;

		memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
		buf[off] ^= 0x01;
		st = verify_bytes(&e, buf, snp_cert_product(e.vcek), 0, &err);
		if (!flip_outcome_ok(off, st))
			fail_msg("%s: byte 0x%03zx flipped: %s (%s)", name, off, snp_status_class(st),
				 err.detail);
		counts[st == SNP_E_SIGNATURE ? 0 : st == SNP_E_FORMAT ? 1 : 2]++;
	}
	/* Almost every byte is a plain field: the signature must catch it. */
	assert_true(counts[0] > 400);
	free_evidence(&e);
}

static void
test_flip_milan(void **state)
{
	(void)state;
	flip_every_signed_byte("milan-v2-gosevguest");
}

static void
test_flip_genoa(void **state)
{
	(void)state;
	flip_every_signed_byte("genoa-v5-routex");
}

static void
test_flip_turin(void **state)
{
	(void)state;
	flip_every_signed_byte("turin-v5-oak");
}

/* P-384 group order n, little-endian, as it would sit in the report. */
static void
put_order_le(uint8_t *p)
{
	static const uint8_t n_be[48] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2,
		0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
	};

	for (size_t i = 0; i < 48; i++)
		p[i] = n_be[47 - i];
	memset(p + 48, 0, 24);
}

static void
test_signature_values(void **state)
{
	struct evidence e = { 0 };
	uint8_t buf[SNP_REPORT_SIZE];
	snp_error err = { 0 };

	(void)state;
	load_evidence("genoa-v5-routex", &e);
	/* r = n */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	put_order_le(buf + 0x2A0);
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	assert_non_null(strstr(err.detail, "group order"));
	/* s = n */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	put_order_le(buf + 0x2E8);
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	/* r = 0 */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	memset(buf + 0x2A0, 0, 72);
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	assert_non_null(strstr(err.detail, "zero"));
	/* bits above 384 */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	buf[0x2A0 + 60] = 1;
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	/* reserved signature bytes */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	buf[0x49F] = 1;
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	assert_non_null(strstr(err.detail, "reserved"));
	/* swapping r and s */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	memcpy(buf + 0x2A0, e.report_bytes + 0x2E8, 72);
	memcpy(buf + 0x2E8, e.report_bytes + 0x2A0, 72);
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNATURE);
	free_evidence(&e);
}

static void
test_wrong_signer(void **state)
{
	struct evidence e = { 0 }, other = { 0 };
	snp_error err = { 0 };
	snp_report *r = NULL;
	snp_verify_opts opts = { 0 };

	(void)state;
	load_evidence("milan-v2-gosevguest", &e);
	load_evidence("milan-v2-virtee", &other);
	assert_int_equal(snp_report_parse(e.report_bytes, e.report_len, &r, &err), SNP_OK);
	/* A genuine VCEK of another chip: the chain is fine, the signature is not. */
	assert_int_equal(snp_verify(e.trust, r, other.vcek, &opts, NULL, &err), SNP_E_SIGNATURE);
	snp_report_free(r);
	free_evidence(&other);
	free_evidence(&e);
}

static void
test_signing_key_mismatch(void **state)
{
	struct evidence e = { 0 }, vlek = { 0 };
	snp_verify_opts opts = { 0 };
	uint8_t buf[SNP_REPORT_SIZE];
	snp_error err = { 0 };
	snp_report *r = NULL;

	(void)state;
	load_evidence("genoa-v5-routex", &e);
	load_evidence("milan-v3-vlek-trustee", &vlek);
	/* The report says VLEK, the certificate is a VCEK. */
	memcpy(buf, e.report_bytes, SNP_REPORT_SIZE);
	buf[0x048] = 1 << 2;
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNING_KEY);
	assert_non_null(strstr(err.detail, "VLEK"));
	/* The report says none. */
	buf[0x048] = 7 << 2;
	assert_int_equal(verify_bytes(&e, buf, 0, 0, &err), SNP_E_SIGNING_KEY);
	/* A VCEK report presented with a VLEK. */
	assert_int_equal(snp_report_parse(e.report_bytes, e.report_len, &r, &err), SNP_OK);
	opts.product = SNP_PRODUCT_UNKNOWN;
	assert_int_equal(snp_verify(e.trust, r, vlek.vcek, &opts, NULL, &err), SNP_E_PRODUCT);
	opts.product = SNP_PRODUCT_GENOA;
	assert_int_equal(snp_verify(e.trust, r, vlek.vcek, &opts, NULL, &err), SNP_E_PRODUCT);
	snp_report_free(r);
	free_evidence(&vlek);
	free_evidence(&e);
}

static void
test_product_mismatch(void **state)
{
	struct evidence e = { 0 };
	snp_error err = { 0 };

	(void)state;
	load_evidence("genoa-v5-routex", &e);
	assert_int_equal(verify_bytes(&e, e.report_bytes, SNP_PRODUCT_TURIN, 0, &err), SNP_E_PRODUCT);
	assert_non_null(strstr(err.detail, "genoa"));
	assert_non_null(strstr(err.detail, "turin"));
	free_evidence(&e);
	/* v2 report, Milan VCEK, asked as Genoa: the certificate disagrees. */
	load_evidence("milan-v2-gosevguest", &e);
	assert_int_equal(verify_bytes(&e, e.report_bytes, SNP_PRODUCT_GENOA, 0, &err), SNP_E_PRODUCT);
	free_evidence(&e);
}

static void
test_expired_vlek(void **state)
{
	struct evidence e = { 0 };
	snp_error err = { 0 };
	time_t at;

	(void)state;
	load_evidence("milan-v3-vlek-trustee", &e);
	assert_int_equal(verify_bytes(&e, e.report_bytes, 0, 0, &err), SNP_E_EXPIRED);
	assert_int_equal(rfc3339_parse("2024-12-01T00:00:00Z", &at), 0); /* before notBefore */
	assert_int_equal(verify_bytes(&e, e.report_bytes, 0, at, &err), SNP_E_EXPIRED);
	assert_int_equal(rfc3339_parse("2025-06-01T00:00:00Z", &at), 0);
	assert_int_equal(verify_bytes(&e, e.report_bytes, 0, at, &err), SNP_OK);
	free_evidence(&e);
}

static void
test_unpinned_root(void **state)
{
	struct evidence e = { 0 };
	snp_error err = { 0 };

	(void)state;
	load_evidence("genoa-v5-routex", &e);
	/* A trust store with no ARK/ASK: nothing can chain. */
	snp_trust_free(e.trust);
	assert_int_equal(snp_trust_new(&e.trust), SNP_OK);
	assert_int_equal(verify_bytes(&e, e.report_bytes, 0, 0, &err), SNP_E_CHAIN);
	/* Without pins, even AMD's genuine ARK is refused. */
	snp_trust_free(e.trust);
	assert_int_equal(snp_trust_new(&e.trust), SNP_OK);
	snp_trust_clear_pins(e.trust);
	{
		char dir[4096];

		(void)snprintf(dir, sizeof(dir), "%s/amd", ts_vectors_dir());
		assert_int_not_equal(snp_trust_load_dir(e.trust, dir, &err), SNP_OK);
	}
	assert_int_equal(verify_bytes(&e, e.report_bytes, 0, 0, &err), SNP_E_CHAIN);
	free_evidence(&e);
}

static void
test_arguments(void **state)
{
	struct evidence e = { 0 };
	snp_error err = { 0 };
	snp_report *r = NULL;

	(void)state;
	load_evidence("genoa-v5-routex", &e);
	assert_int_equal(snp_report_parse(e.report_bytes, e.report_len, &r, &err), SNP_OK);
	assert_int_equal(snp_verify(NULL, r, e.vcek, NULL, NULL, &err), SNP_E_ARGUMENT);
	assert_int_equal(snp_verify(e.trust, NULL, e.vcek, NULL, NULL, &err), SNP_E_ARGUMENT);
	assert_int_equal(snp_verify(e.trust, r, NULL, NULL, NULL, &err), SNP_E_ARGUMENT);
	/* NULL opts means "now, product from the evidence". */
	assert_int_equal(snp_verify(e.trust, r, e.vcek, NULL, NULL, NULL), SNP_OK);
	snp_report_free(r);
	free_evidence(&e);
}


/* ---- Evidence made by the tests' own AMD-like hierarchy (tests/unit/testca.h) ---- */

struct sim {
	testca *ca;
	snp_trust *trust;
	snp_cert *leaf;
	EVP_PKEY *key; /* the leaf's private key: signs reports */
};

static void
sim_new(struct sim *s, const char *product, snp_cert_role role)
{
	testca_leaf o;
	snp_error err = { 0 };
	time_t now = time(NULL);

	memset(s, 0, sizeof(*s));
	assert_int_equal(testca_new(product, now - 86400, now + 86400 * 365, &s->ca), 0);
	assert_int_equal(snp_trust_new(&s->trust), SNP_OK);
	if (testca_install(s->ca, s->trust, &err) != SNP_OK)
		fail_msg("install test CA: %s", err.detail);
	testca_leaf_defaults(&o, s->ca, role);
	assert_int_equal(testca_issue_leaf_cert(&o, &s->leaf, &s->key), SNP_OK);
}

static void
sim_free(struct sim *s)
{
	snp_cert_free(s->leaf);
	EVP_PKEY_free(s->key);
	snp_trust_free(s->trust);
	testca_free(s->ca);
}

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A version-3 report for `product` claiming `tcb` and `chip`, signed by `key` as the
 * firmware signs: ECDSA P-384/SHA-384 over 0x000-0x29F, r and s little-endian. */
static void
sim_report(uint8_t out[SNP_REPORT_SIZE], snp_product product, uint64_t tcb,
	   const uint8_t chip[SNP_CHIP_ID_LEN], unsigned signing_key, EVP_PKEY *key)
{
	static const uint8_t cpuid[][2] = { { 0, 0 }, { 0x19, 0x01 }, { 0x19, 0x11 }, { 0x1A, 0x02 } };
	unsigned char der[128];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const BIGNUM *r, *sv;
	ECDSA_SIG *sig;
	uint8_t be[48];

	memset(out, 0, SNP_REPORT_SIZE);
	put_le(out + 0x000, 3, 4);
	put_le(out + 0x008, 0x30000, 8);
	put_le(out + 0x034, 1, 4);
	put_le(out + 0x038, tcb, 8);
	put_le(out + 0x048, signing_key << 2, 4);
	memset(out + 0x050, 0x5a, SNP_REPORT_DATA_LEN);
	memset(out + 0x090, 0xab, SNP_MEASUREMENT_LEN);
	put_le(out + 0x180, tcb, 8);
	out[0x188] = cpuid[product][0];
	out[0x189] = cpuid[product][1];
	memcpy(out + 0x1A0, chip, SNP_CHIP_ID_LEN);
	put_le(out + 0x1E0, tcb, 8);
	put_le(out + 0x1F0, tcb, 8);
	assert_non_null(md);
	assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA384", NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(md, der, &der_len, out, SNP_REPORT_SIGNED_SIZE), 1);
	EVP_MD_CTX_free(md);
	assert_non_null(sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len));
	ECDSA_SIG_get0(sig, &r, &sv);
	assert_int_equal(BN_bn2binpad(r, be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2A0 + i] = be[47 - i];
	assert_int_equal(BN_bn2binpad(sv, be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2E8 + i] = be[47 - i];
	ECDSA_SIG_free(sig);
}

static int
sim_verify(struct sim *s, const uint8_t bytes[SNP_REPORT_SIZE], snp_verify_opts *opts,
	   snp_error *err)
{
	snp_report *r = NULL;
	int st;

	if ((st = snp_report_parse(bytes, SNP_REPORT_SIZE, &r, err)) != SNP_OK)
		return st;
	st = snp_verify(s->trust, r, s->leaf, opts, NULL, err);
	snp_report_free(r);
	return st;
}

/* testca's default leaf TCB: bl 3, tee 0, snp 8, ucode 115 (Turin: fmc 1). */
static uint64_t
default_tcb(snp_product p)
{
	snp_tcb t = { .bootloader = 3, .tee = 0, .snp = 8, .microcode = 115,
		      .fmc = p == SNP_PRODUCT_TURIN ? 1 : 0 };

	return snp_tcb_encode(&t, p);
}

static void
test_sim_binding_checks(void **state)
{
	static const struct {
		const char *name;
		snp_product p;
	} products[] = { { "Milan", SNP_PRODUCT_MILAN }, { "Genoa", SNP_PRODUCT_GENOA },
			 { "Turin", SNP_PRODUCT_TURIN } };
	uint8_t chip[SNP_CHIP_ID_LEN], buf[SNP_REPORT_SIZE];
	snp_verify_opts opts = { 0 };
	snp_error err = { 0 };
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snp_product p = products[i].p;
		size_t hw = p == SNP_PRODUCT_TURIN ? 8 : 64;
		uint64_t tcb = default_tcb(p);
		struct sim s;

		sim_new(&s, products[i].name, SNP_ROLE_VCEK);
		memset(chip, 0, sizeof(chip));
		memcpy(chip, testca_default_hwid(), hw);

		/* The honest report verifies: the negative cases below are meaningful. */
		sim_report(buf, p, tcb, chip, SNP_SIGNING_KEY_VCEK, s.key);
		if (sim_verify(&s, buf, &opts, &err) != SNP_OK)
			fail_msg("%s honest report: %s", products[i].name, err.detail);

		/* REPORTED_TCB.snp one higher than the VCEK's snpSPL, validly signed. */
		sim_report(buf, p, tcb + (p == SNP_PRODUCT_TURIN ? 1ull << 24 : 1ull << 48), chip,
			   SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_TCB);
		assert_non_null(strstr(err.detail, "snp"));
		/* Microcode differs. */
		sim_report(buf, p, tcb ^ (1ull << 56), chip, SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_TCB);
		/* A reserved TCB byte set. */
		sim_report(buf, p, tcb | (1ull << 40), chip, SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_TCB);
		if (p == SNP_PRODUCT_TURIN) {
			/* Turin's FMC SPL is bound too. */
			sim_report(buf, p, tcb ^ 1, chip, SNP_SIGNING_KEY_VCEK, s.key);
			assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_TCB);
			assert_non_null(strstr(err.detail, "fmc"));
		}

		/* Another chip. */
		chip[0] ^= 0xff;
		sim_report(buf, p, tcb, chip, SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_CHIP_ID);
		chip[0] ^= 0xff;
		/* Masked CHIP_ID cannot match a VCEK. */
		memset(buf, 0, sizeof(buf));
		sim_report(buf, p, tcb, (const uint8_t[SNP_CHIP_ID_LEN]){ 0 }, SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_CHIP_ID);
		assert_non_null(strstr(err.detail, "masked"));
		/* Bytes beyond the hwID: the last byte of a legacy chip id, byte 8 on Turin. */
		chip[hw == 8 ? 8 : 63] ^= 0x01;
		sim_report(buf, p, tcb, chip, SNP_SIGNING_KEY_VCEK, s.key);
		assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_CHIP_ID);
		sim_free(&s);
	}
}

static void
test_sim_vlek(void **state)
{
	static const uint8_t zero_chip[SNP_CHIP_ID_LEN] = { 0 };
	uint8_t buf[SNP_REPORT_SIZE];
	snp_verify_opts opts = { 0 };
	snp_error err = { 0 };
	testca_leaf o;
	snp_cert *bad = NULL;
	struct sim s;

	(void)state;
	sim_new(&s, "Genoa", SNP_ROLE_VLEK);
	sim_report(buf, SNP_PRODUCT_GENOA, default_tcb(SNP_PRODUCT_GENOA), zero_chip,
		   SNP_SIGNING_KEY_VLEK, s.key);
	if (sim_verify(&s, buf, &opts, &err) != SNP_OK)
		fail_msg("VLEK report: %s", err.detail);
	/* The same report claiming a VCEK signed it. */
	sim_report(buf, SNP_PRODUCT_GENOA, default_tcb(SNP_PRODUCT_GENOA), zero_chip,
		   SNP_SIGNING_KEY_VCEK, s.key);
	assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_SIGNING_KEY);
	/* A VLEK issued by the ASK instead of the ASVK does not chain. */
	testca_leaf_defaults(&o, s.ca, SNP_ROLE_VLEK);
	o.issuer = s.ca->ask;
	o.issuer_key = s.ca->ask_key;
	o.key = s.key;
	assert_int_equal(testca_issue_leaf_cert(&o, &bad, NULL), SNP_OK);
	sim_report(buf, SNP_PRODUCT_GENOA, default_tcb(SNP_PRODUCT_GENOA), zero_chip,
		   SNP_SIGNING_KEY_VLEK, s.key);
	{
		snp_report *r = NULL;

		assert_int_equal(snp_report_parse(buf, sizeof(buf), &r, &err), SNP_OK);
		assert_int_equal(snp_verify(s.trust, r, bad, &opts, NULL, &err), SNP_E_CHAIN);
		snp_report_free(r);
	}
	snp_cert_free(bad);
	sim_free(&s);
}

static void
test_sim_revocation_and_pins(void **state)
{
	uint8_t chip[SNP_CHIP_ID_LEN] = { 0 }, buf[SNP_REPORT_SIZE];
	snp_verify_opts opts = { 0 };
	snp_error err = { 0 };
	uint8_t *crl = NULL;
	size_t crl_len = 0;
	long serial = TESTCA_ASK_SERIAL;
	time_t now = time(NULL);
	snp_trust *amd = NULL;
	snp_report *r = NULL;
	struct sim s;

	(void)state;
	sim_new(&s, "Milan", SNP_ROLE_VCEK);
	memcpy(chip, testca_default_hwid(), 64);
	sim_report(buf, SNP_PRODUCT_MILAN, default_tcb(SNP_PRODUCT_MILAN), chip,
		   SNP_SIGNING_KEY_VCEK, s.key);
	/* A CRL is required but absent. */
	opts.require_crl = true;
	assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_REVOKED);
	/* An ARK-signed CRL that lists nothing satisfies the requirement ... */
	assert_int_equal(testca_make_crl(s.ca->ark, s.ca->ark_key, TESTCA_SIG_PSS_SHA384, NULL, 0,
					 now - 60, now + 3600, &crl, &crl_len), 0);
	assert_int_equal(snp_trust_add_crl(s.trust, crl, crl_len, &err), SNP_OK);
	free(crl);
	assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_OK);
	/* ... and a newer one that revokes the ASK rejects the evidence, cached or not. */
	assert_int_equal(testca_make_crl(s.ca->ark, s.ca->ark_key, TESTCA_SIG_PSS_SHA384, &serial, 1,
					 now - 30, now + 3600, &crl, &crl_len), 0);
	assert_int_equal(snp_trust_add_crl(s.trust, crl, crl_len, &err), SNP_OK);
	free(crl);
	assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_REVOKED);
	opts.require_crl = false;
	assert_int_equal(sim_verify(&s, buf, &opts, &err), SNP_E_REVOKED);

	/* Evidence from this hierarchy against AMD's pinned roots: chain. */
	amd = load_trust();
	assert_int_equal(snp_report_parse(buf, sizeof(buf), &r, &err), SNP_OK);
	assert_int_equal(snp_verify(amd, r, s.leaf, &opts, NULL, &err), SNP_E_CHAIN);
	snp_report_free(r);
	snp_trust_free(amd);
	sim_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_reports_verify),
		cmocka_unit_test(test_flip_milan),
		cmocka_unit_test(test_flip_genoa),
		cmocka_unit_test(test_flip_turin),
		cmocka_unit_test(test_signature_values),
		cmocka_unit_test(test_wrong_signer),
		cmocka_unit_test(test_signing_key_mismatch),
		cmocka_unit_test(test_product_mismatch),
		cmocka_unit_test(test_expired_vlek),
		cmocka_unit_test(test_unpinned_root),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_sim_binding_checks),
		cmocka_unit_test(test_sim_vlek),
		cmocka_unit_test(test_sim_revocation_and_pins),
	};

	ts_require_vectors();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
