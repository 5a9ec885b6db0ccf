/* Unit tests: the trust store and signer chain checks (src/snp/trust.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <nitride/snp.h>

#include "snp/internal.h"
#include "testca.h"
#include "testsupport.h"

#define DAY 86400

static testca *ca;    /* Milan test hierarchy, valid now-1d .. now+10y */
static testca *rogue; /* same names as `ca`, other keys */
static time_t now;

/* ---- helpers ---- */

static snp_cert *
vector_cert(const char *rel)
{
	size_t len = 0;
	uint8_t *buf = ts_read_vector(rel, &len);
	snp_cert *c = NULL;
	snp_error err;

	memset(&err, 0, sizeof(err));
	if (snp_cert_parse(buf, len, &c, &err) != SNP_OK)
		fail_msg("%s: %s", rel, err.detail);
	free(buf);
	return c;
}

static snp_trust *
amd_trust(void)
{
	char dir[4096];
	snp_trust *t = NULL;
	snp_error err;

	memset(&err, 0, sizeof(err));
	(void)snprintf(dir, sizeof(dir), "%s/amd", ts_vectors_dir());
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	if (snp_trust_load_dir(t, dir, &err) != SNP_OK)
		fail_msg("load_dir: %s", err.detail);
	return t;
}

/* A trust store with no AMD pins and the test CA installed. */
static snp_trust *
test_trust(const testca *c)
{
	snp_trust *t = NULL;
	snp_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	snp_trust_clear_pins(t);
	if (testca_install(c, t, &err) != SNP_OK)
		fail_msg("install: %s", err.detail);
	return t;
}

static snp_cert *
leaf(const testca_leaf *o)
{
	snp_cert *c = NULL;

	assert_int_equal(testca_issue_leaf_cert(o, &c, NULL), SNP_OK);
	return c;
}

static snp_cert *
default_leaf(snp_cert_role role)
{
	testca_leaf o;

	testca_leaf_defaults(&o, ca, role);
	return leaf(&o);
}

/* check_signer expecting `status`; returns the detail for further checks. */
static const char *
check_is(snp_trust *t, const snp_cert *signer, snp_product p, time_t at, bool require_crl,
	     int status)
{
	static snp_error err;

	memset(&err, 0, sizeof(err));
	if (snp_trust_check_signer(t, signer, p, at, require_crl, &err) != status)
		fail_msg("expected %s, got %s: %s", snp_status_class(status),
			 snp_status_class(err.status), err.detail);
	if (status != SNP_OK)
		assert_int_equal(err.status, status);
	return err.detail;
}

static int
add_crl(snp_trust *t, const long *serials, size_t n, time_t this_update, time_t next_update)
{
	uint8_t *der = NULL;
	size_t len = 0;
	int r;

	assert_int_equal(testca_make_crl(ca->ark, ca->ark_key, TESTCA_SIG_PSS_SHA384, serials, n,
					 this_update, next_update, &der, &len),
			 0);
	r = snp_trust_add_crl(t, der, len, NULL);
	free(der);
	return r;
}

static time_t
rfc3339(int y, int mo, int d)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	return timegm(&tm);
}

/* ---- real AMD certificates ---- */

static void
test_real_chains(void **state)
{
	static const struct {
		const char *file;
		snp_product product;
	} ok[] = {
		{ "snp/certs/milan-v2-gosevguest.der", SNP_PRODUCT_MILAN },
		{ "snp/certs/milan-v2-trustee.der", SNP_PRODUCT_MILAN },
		{ "snp/certs/milan-v2-virtee.der", SNP_PRODUCT_MILAN },
		{ "snp/certs/milan-v3-oak-oc-release.der", SNP_PRODUCT_MILAN },
		{ "snp/certs/genoa-v3-routex.der", SNP_PRODUCT_GENOA },
		{ "snp/certs/genoa-v5-routex.der", SNP_PRODUCT_GENOA },
		{ "snp/certs/turin-v5-oak.der", SNP_PRODUCT_TURIN },
	};
	snp_trust *t = amd_trust();
	size_t i;
	int round;

	(void)state;
	/* Twice: the second round is served by the cache. */
	for (round = 0; round < 2; round++) {
		for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
			snp_cert *c = vector_cert(ok[i].file);

			check_is(t, c, ok[i].product, time(NULL), false, SNP_OK);
			snp_cert_free(c);
		}
	}
	snp_trust_free(t);
}

static void
test_real_vlek(void **state)
{
	snp_trust *t = amd_trust();
	snp_cert *c = vector_cert("snp/certs/milan-v3-vlek-trustee.der");
	const char *d;

	(void)state;
	check_is(t, c, SNP_PRODUCT_MILAN, rfc3339(2025, 6, 1), false, SNP_OK);
	/* Cached now, but validity is still checked: expired today. */
	d = check_is(t, c, SNP_PRODUCT_MILAN, time(NULL), false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "vlek milan"));
	assert_non_null(strstr(d, "2025-12-10T22:14:21Z"));
	snp_cert_free(c);
	snp_trust_free(t);
}

static void
test_real_negatives(void **state)
{
	snp_trust *t = amd_trust();
	snp_cert *tampered = vector_cert("snp/certs/neg-milan-vcek-tampered.der");
	snp_cert *milan = vector_cert("snp/certs/milan-v2-trustee.der");
	snp_cert *ask = vector_cert("amd/ask_milan.pem");

	(void)state;
	check_is(t, tampered, SNP_PRODUCT_MILAN, time(NULL), false, SNP_E_CHAIN);
	check_is(t, milan, SNP_PRODUCT_GENOA, time(NULL), false, SNP_E_PRODUCT);
	check_is(t, milan, SNP_PRODUCT_UNKNOWN, time(NULL), false, SNP_E_PRODUCT);
	/* An ASK is not a signer. */
	check_is(t, ask, SNP_PRODUCT_MILAN, time(NULL), false, SNP_E_CHAIN);
	/* Before the VCEK was issued. */
	check_is(t, milan, SNP_PRODUCT_MILAN, rfc3339(2022, 1, 1), false, SNP_E_EXPIRED);
	/* Real chains without any CRL fail when one is required. */
	assert_non_null(strstr(check_is(t, milan, SNP_PRODUCT_MILAN, time(NULL), true,
					    SNP_E_REVOKED),
			       "no CRL"));
	assert_int_equal(snp_trust_check_signer(NULL, milan, SNP_PRODUCT_MILAN, 0, false, NULL),
			 SNP_E_ARGUMENT);
	snp_cert_free(ask);
	snp_cert_free(milan);
	snp_cert_free(tampered);
	snp_trust_free(t);
}

static void
test_real_pins(void **state)
{
	snp_trust *t = NULL;
	snp_cert *ark = vector_cert("amd/ark_milan.pem");
	snp_cert *ask = vector_cert("amd/ask_milan.pem");
	snp_cert *asvk_genoa = vector_cert("amd/asvk_genoa.pem");
	snp_cert *vcek = vector_cert("snp/certs/milan-v2-trustee.der");
	snp_error err;

	(void)state;
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	/* ASK before its ARK: rejected. */
	assert_int_equal(snp_trust_add_cert(t, ask, &err), SNP_E_CHAIN);
	assert_int_equal(snp_trust_add_cert(t, ark, NULL), SNP_OK);
	assert_int_equal(snp_trust_add_cert(t, ask, NULL), SNP_OK);
	/* A Genoa ASVK cannot hang under the Milan ARK (and there is no Genoa ARK). */
	assert_int_equal(snp_trust_add_cert(t, asvk_genoa, NULL), SNP_E_CHAIN);
	/* A VCEK is not a trust-store certificate. */
	assert_int_equal(snp_trust_add_cert(t, vcek, NULL), SNP_E_CHAIN);
	check_is(t, vcek, SNP_PRODUCT_MILAN, time(NULL), false, SNP_OK);
	/* Dropping the AMD pins un-anchors the ARK that was added with them. */
	snp_trust_clear_pins(t);
	check_is(t, vcek, SNP_PRODUCT_MILAN, time(NULL), false, SNP_E_CHAIN);
	snp_trust_free(t);

	/* With the pins cleared first, AMD's ARK is refused. */
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	snp_trust_clear_pins(t);
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_add_cert(t, ark, &err), SNP_E_CHAIN);
	assert_non_null(strstr(err.detail, "not pinned"));
	snp_trust_free(t);

	snp_cert_free(vcek);
	snp_cert_free(asvk_genoa);
	snp_cert_free(ask);
	snp_cert_free(ark);
}

/* ---- load_dir ---- */

static char tmpdir[4096];

static void
write_file(const char *name, const void *data, size_t len)
{
	char path[4200];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
write_pem(const char *name, X509 *x)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;

	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_X509(bio, x), 1);
	n = BIO_get_mem_data(bio, &data);
	write_file(name, data, (size_t)n);
	BIO_free(bio);
}

static void
remove_files(void)
{
	static const char *const names[] = { "ark_milan.pem", "ask_milan.pem", "asvk_milan.pem",
					     "ark_genoa.pem" };
	char path[4200];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		(void)unlink(path);
	}
}

static void
test_load_dir(void **state)
{
	snp_trust *t = NULL;
	snp_cert *vcek = default_leaf(SNP_ROLE_VCEK);
	uint8_t pin[32];
	snp_error err;

	(void)state;
	remove_files();
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	snp_trust_clear_pins(t);
	testca_ark_pin(ca, pin);
	assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_MILAN, pin), SNP_OK);
	/* An empty directory: nothing loaded, nothing wrong. */
	assert_int_equal(snp_trust_load_dir(t, tmpdir, NULL), SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	/* A missing directory behaves the same (every file is absent). */
	assert_int_equal(snp_trust_load_dir(t, "/nonexistent-nitride-dir", NULL), SNP_OK);

	/* ASK without ARK: an error naming the file. */
	write_pem("ask_milan.pem", ca->ask);
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_load_dir(t, tmpdir, &err), SNP_E_CHAIN);
	assert_non_null(strstr(err.detail, "ask_milan.pem"));

	/* ARK + ASK: the VCEK chains. */
	write_pem("ark_milan.pem", ca->ark);
	assert_int_equal(snp_trust_load_dir(t, tmpdir, NULL), SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_OK);

	/* A garbage ASVK: format error naming the file. */
	write_file("asvk_milan.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n", 33);
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_load_dir(t, tmpdir, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "asvk_milan.pem"));
	/* The wrong certificate under a name: an ASK in the ASVK's file. */
	write_pem("asvk_milan.pem", ca->ask);
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_load_dir(t, tmpdir, &err), SNP_E_CHAIN);
	assert_non_null(strstr(err.detail, "asvk_milan.pem"));
	remove_files();
	/* A Milan ARK in the Genoa file. */
	write_pem("ark_genoa.pem", ca->ark);
	assert_int_equal(snp_trust_load_dir(t, tmpdir, &err), SNP_E_CHAIN);
	remove_files();
	assert_int_equal(snp_trust_load_dir(NULL, tmpdir, NULL), SNP_E_ARGUMENT);
	snp_trust_free(t);
	snp_cert_free(vcek);
}

/* ---- pins and chains with the test CA ---- */

static void
test_pins(void **state)
{
	snp_trust *t = NULL;
	snp_cert *ark = NULL, *rogue_ark = NULL, *rogue_ask = NULL;
	uint8_t pin[32];
	int i;

	(void)state;
	assert_int_equal(testca_cert(ca->ark, &ark), SNP_OK);
	assert_int_equal(testca_cert(rogue->ark, &rogue_ark), SNP_OK);
	assert_int_equal(testca_cert(rogue->ask, &rogue_ask), SNP_OK);
	assert_int_equal(snp_trust_new(&t), SNP_OK);
	/* Not pinned (only AMD's keys are). */
	assert_int_equal(snp_trust_add_cert(t, ark, NULL), SNP_E_CHAIN);
	testca_ark_pin(ca, pin);
	assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_MILAN, pin), SNP_OK);
	/* A pin for another product does not help. */
	assert_int_equal(snp_trust_add_cert(t, rogue_ark, NULL), SNP_E_CHAIN);
	assert_int_equal(snp_trust_add_cert(t, ark, NULL), SNP_OK);
	/* The rogue ASK carries the right names but the rogue ARK's signature. */
	assert_int_equal(snp_trust_add_cert(t, rogue_ask, NULL), SNP_E_CHAIN);
	/* Pins are bounded per product; repeats are free; bad arguments refused. */
	assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_MILAN, pin), SNP_OK);
	/* Six more distinct pins fill Milan's eight slots (one built in, the test
	 * CA's, six here).  A fixed pattern, not a variation of the CA's pin, so
	 * that no value can collide with it by chance. */
	memset(pin, 0x5a, sizeof(pin));
	for (i = 0; i < 6; i++) {
		pin[0] = (uint8_t)i;
		assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_MILAN, pin), SNP_OK);
	}
	pin[0] = 0xff;
	assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_MILAN, pin), SNP_E_ARGUMENT);
	assert_int_equal(snp_trust_pin(t, SNP_PRODUCT_UNKNOWN, pin), SNP_E_ARGUMENT);
	assert_int_equal(snp_trust_pin(t, (snp_product)9, pin), SNP_E_ARGUMENT);
	snp_trust_free(t);
	snp_cert_free(rogue_ask);
	snp_cert_free(rogue_ark);
	snp_cert_free(ark);
}

static void
test_testca_chain(void **state)
{
	snp_trust *t = test_trust(ca);
	snp_cert *vcek = default_leaf(SNP_ROLE_VCEK);
	snp_cert *vlek = default_leaf(SNP_ROLE_VLEK);

	(void)state;
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	check_is(t, vlek, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	/* at = 0 means now. */
	check_is(t, vcek, SNP_PRODUCT_MILAN, 0, false, SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_GENOA, now, false, SNP_E_PRODUCT);
	snp_cert_free(vlek);
	snp_cert_free(vcek);
	snp_trust_free(t);
}

static void
test_wrong_intermediate(void **state)
{
	snp_trust *t = test_trust(ca);
	testca_leaf o;
	snp_cert *c;
	const char *d;

	(void)state;
	/* A VCEK issued by the ASVK (name and key): the ASK is required. */
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.issuer = ca->asvk;
	o.issuer_key = ca->asvk_key;
	c = leaf(&o);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	assert_non_null(strstr(d, "vcek milan"));
	snp_cert_free(c);
	/* A VLEK issued by the ASK: the ASVK is required. */
	testca_leaf_defaults(&o, ca, SNP_ROLE_VLEK);
	o.issuer = ca->ask;
	o.issuer_key = ca->ask_key;
	c = leaf(&o);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	snp_cert_free(c);
	/* The ASK's name but the ASVK's key. */
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.issuer_key = ca->asvk_key;
	c = leaf(&o);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	assert_non_null(strstr(d, "does not verify"));
	snp_cert_free(c);
	/* Issued by the rogue hierarchy's ASK (same names). */
	testca_leaf_defaults(&o, rogue, SNP_ROLE_VCEK);
	c = leaf(&o);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	snp_cert_free(c);
	/* Signed by the ARK directly. */
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.issuer = ca->ark;
	o.issuer_key = ca->ark_key;
	c = leaf(&o);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	snp_cert_free(c);
	snp_trust_free(t);
}

/* Decision (docs/snp-certs.md): any signature algorithm other than RSASSA-PSS
 * SHA-384/MGF1-SHA-384/salt 48 is SNP_E_CHAIN, even if the signature is valid. */
static void
test_signature_algorithm(void **state)
{
	snp_trust *t = test_trust(ca);
	testca_leaf o;
	snp_cert *c;
	const char *d;

	(void)state;
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.sig = TESTCA_SIG_PKCS1_SHA256;
	c = leaf(&o);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	assert_non_null(strstr(d, "RSASSA-PSS"));
	snp_cert_free(c);
	o.sig = TESTCA_SIG_PSS_SHA384_SALT32;
	c = leaf(&o);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_CHAIN);
	snp_cert_free(c);
	snp_trust_free(t);
}

static void
test_validity(void **state)
{
	snp_trust *t = test_trust(ca);
	testca_leaf o;
	snp_cert *c;
	const char *d;

	(void)state;
	/* Expired leaf. */
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.not_before = now - 10 * DAY;
	o.not_after = now - DAY;
	c = leaf(&o);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "vcek milan expired"));
	/* …but valid at an instant inside its window (and the ASK's and ARK's). */
	check_is(t, c, SNP_PRODUCT_MILAN, now - DAY, false, SNP_OK);
	snp_cert_free(c);
	/* Not yet valid. */
	o.not_before = now + DAY;
	o.not_after = now + 10 * DAY;
	c = leaf(&o);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "not yet valid"));
	snp_cert_free(c);
	/* Exactly at notAfter is still valid. */
	o.not_before = now - DAY;
	o.not_after = now;
	c = leaf(&o);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	check_is(t, c, SNP_PRODUCT_MILAN, now + 1, false, SNP_E_EXPIRED);
	snp_cert_free(c);
	/* The ARK's own validity (now-1d .. now+10y) bounds everything. */
	c = default_leaf(SNP_ROLE_VCEK);
	d = check_is(t, c, SNP_PRODUCT_MILAN, now - 2 * DAY, false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "not yet valid"));
	snp_cert_free(c);
	snp_trust_free(t);
}

static void
test_expired_ask(void **state)
{
	snp_trust *t;
	snp_cert *c = default_leaf(SNP_ROLE_VCEK);
	const char *d;

	(void)state;
	assert_int_equal(testca_reissue(ca, SNP_ROLE_ASK, 0x2001, now - 10 * DAY, now - DAY), 0);
	t = test_trust(ca); /* add time does not check validity */
	d = check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "ask milan"));
	snp_trust_free(t);
	assert_int_equal(testca_reissue(ca, SNP_ROLE_ASK, TESTCA_ASK_SERIAL, now - DAY,
					now + 3650 * DAY),
			 0);
	/* Same key, new ASK certificate: the leaf chains again. */
	t = test_trust(ca);
	check_is(t, c, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	snp_trust_free(t);
	snp_cert_free(c);
}

/* ---- CRLs ---- */

static void
test_crl_revokes_ask(void **state)
{
	static const long ask_serial[] = { 7, TESTCA_ASK_SERIAL };
	static const long asvk_serial[] = { TESTCA_ASVK_SERIAL };
	static const long others[] = { 5, 6 };
	snp_trust *t = test_trust(ca);
	snp_cert *vcek = default_leaf(SNP_ROLE_VCEK);
	snp_cert *vlek = default_leaf(SNP_ROLE_VLEK);
	const char *d;

	(void)state;
	/* A CRL that lists other serials: fine, and satisfies require_crl. */
	assert_int_equal(add_crl(t, others, 2, now - DAY, now + DAY), SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, true, SNP_OK);
	/* A newer CRL listing the ASK: the VCEK is revoked, the VLEK (ASVK) is not. */
	assert_int_equal(add_crl(t, ask_serial, 2, now - DAY / 2, now + DAY), SNP_OK);
	d = check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_REVOKED);
	assert_non_null(strstr(d, "ask milan"));
	check_is(t, vlek, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	/* An older CRL does not replace the newer one. */
	assert_int_equal(add_crl(t, others, 2, now - 2 * DAY, now + DAY), SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_REVOKED);
	/* The ASVK listed: the VLEK is revoked. */
	assert_int_equal(add_crl(t, asvk_serial, 1, now - DAY / 4, 0), SNP_OK);
	check_is(t, vlek, SNP_PRODUCT_MILAN, now, false, SNP_E_REVOKED);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	snp_cert_free(vlek);
	snp_cert_free(vcek);
	snp_trust_free(t);
}

static void
test_crl_revokes_leaf(void **state)
{
	static const long listed[] = { 77, 0 };
	snp_trust *t = test_trust(ca);
	testca_leaf o;
	snp_cert *c77, *c78, *c0;

	(void)state;
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	o.serial = 77;
	c77 = leaf(&o);
	o.serial = 78;
	c78 = leaf(&o);
	o.serial = 0;
	c0 = leaf(&o);
	/* Warm the cache first: revocation must still be checked on a hit. */
	check_is(t, c77, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	assert_int_equal(add_crl(t, listed, 2, now - DAY, now + DAY), SNP_OK);
	check_is(t, c77, SNP_PRODUCT_MILAN, now, false, SNP_E_REVOKED);
	check_is(t, c78, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	/* Serial 0 (every real VCEK) cannot be revoked by serial: documented rule. */
	check_is(t, c0, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	snp_cert_free(c0);
	snp_cert_free(c78);
	snp_cert_free(c77);
	snp_trust_free(t);
}

static void
test_crl_time(void **state)
{
	snp_trust *t = test_trust(ca);
	snp_cert *vcek = default_leaf(SNP_ROLE_VCEK);
	const char *d;

	(void)state;
	assert_int_equal(add_crl(t, NULL, 0, now - 10 * DAY, now - DAY), SNP_OK);
	d = check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_EXPIRED);
	assert_non_null(strstr(d, "stale"));
	/* Still current exactly at nextUpdate. */
	check_is(t, vcek, SNP_PRODUCT_MILAN, now - DAY, false, SNP_OK);
	snp_trust_free(t);
	/* A CRL from the future. */
	t = test_trust(ca);
	assert_int_equal(add_crl(t, NULL, 0, now + DAY, now + 2 * DAY), SNP_OK);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_EXPIRED);
	snp_trust_free(t);
	/* No CRL and require_crl. */
	t = test_trust(ca);
	d = check_is(t, vcek, SNP_PRODUCT_MILAN, now, true, SNP_E_REVOKED);
	assert_non_null(strstr(d, "no CRL"));
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_OK);
	snp_trust_free(t);
	snp_cert_free(vcek);
}

static void
test_crl_acceptance(void **state)
{
	static const long s[] = { TESTCA_ASK_SERIAL };
	snp_trust *t = test_trust(ca);
	snp_cert *vcek = default_leaf(SNP_ROLE_VCEK);
	uint8_t *der = NULL, *pem = NULL;
	size_t len = 0;
	snp_error err;
	BIO *bio;
	X509_CRL *x;
	const unsigned char *p;
	char *data = NULL;
	long n;

	(void)state;
	/* Signed by the ASK (and named after it): not an ARK. */
	assert_int_equal(testca_make_crl(ca->ask, ca->ask_key, TESTCA_SIG_PSS_SHA384, s, 1,
					 now - DAY, now + DAY, &der, &len),
			 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_trust_add_crl(t, der, len, &err), SNP_E_CHAIN);
	assert_true(err.detail[0] != '\0');
	free(der);
	/* The ARK's name, the rogue ARK's key. */
	assert_int_equal(testca_make_crl(ca->ark, rogue->ark_key, TESTCA_SIG_PSS_SHA384, s, 1,
					 now - DAY, now + DAY, &der, &len),
			 0);
	assert_int_equal(snp_trust_add_crl(t, der, len, NULL), SNP_E_CHAIN);
	free(der);
	/* The ARK's key, PKCS#1 v1.5. */
	assert_int_equal(testca_make_crl(ca->ark, ca->ark_key, TESTCA_SIG_PKCS1_SHA256, s, 1,
					 now - DAY, now + DAY, &der, &len),
			 0);
	assert_int_equal(snp_trust_add_crl(t, der, len, NULL), SNP_E_CHAIN);
	free(der);
	/* None of these took effect. */
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_OK);

	/* Malformed input. */
	assert_int_equal(testca_make_crl(ca->ark, ca->ark_key, TESTCA_SIG_PSS_SHA384, s, 1,
					 now - DAY, now + DAY, &der, &len),
			 0);
	assert_int_equal(snp_trust_add_crl(t, der, len - 1, NULL), SNP_E_FORMAT);
	assert_int_equal(snp_trust_add_crl(t, der, 0, NULL), SNP_E_FORMAT);
	assert_int_equal(snp_trust_add_crl(t, der, 2u * 1024 * 1024, NULL), SNP_E_FORMAT);
	assert_int_equal(snp_trust_add_crl(NULL, der, len, NULL), SNP_E_ARGUMENT);
	pem = malloc(len + 1);
	assert_non_null(pem);
	memcpy(pem, der, len);
	pem[len] = 0;
	assert_int_equal(snp_trust_add_crl(t, pem, len + 1, NULL), SNP_E_FORMAT);
	free(pem);

	/* PEM form: accepted, and it revokes the ASK. */
	p = der;
	assert_non_null(x = d2i_X509_CRL(NULL, &p, (long)len));
	assert_non_null(bio = BIO_new(BIO_s_mem()));
	assert_int_equal(PEM_write_bio_X509_CRL(bio, x), 1);
	n = BIO_get_mem_data(bio, &data);
	memset(&err, 0, sizeof(err));
	if (snp_trust_add_crl(t, (const uint8_t *)data, (size_t)n, &err) != SNP_OK)
		fail_msg("PEM CRL: %s", err.detail);
	check_is(t, vcek, SNP_PRODUCT_MILAN, now, false, SNP_E_REVOKED);
	BIO_free(bio);
	X509_CRL_free(x);
	free(der);
	snp_cert_free(vcek);
	snp_trust_free(t);
}

/* ---- concurrency ---- */

struct worker {
	snp_trust *t;
	const snp_cert *c;
	int failures;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 50; i++) {
		if (snp_trust_check_signer(w->t, w->c, SNP_PRODUCT_MILAN, now, false, NULL) != SNP_OK)
			w->failures++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	snp_trust *t = test_trust(ca);
	snp_cert *leaves[4];
	struct worker w[4];
	pthread_t th[4];
	int i;

	(void)state;
	for (i = 0; i < 4; i++) {
		testca_leaf o;

		testca_leaf_defaults(&o, ca, i % 2 ? SNP_ROLE_VLEK : SNP_ROLE_VCEK);
		o.serial = 100 + i;
		leaves[i] = leaf(&o);
		w[i] = (struct worker){ t, leaves[i], 0 };
		assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
		snp_cert_free(leaves[i]);
	}
	snp_trust_free(t);
}

static int
group_setup(void **state)
{
	const char *base = getenv("NITRIDE_TEST_TMP");

	(void)state;
	now = time(NULL);
	(void)snprintf(tmpdir, sizeof(tmpdir), "%s/nitride-trust-XXXXXX",
		       base != NULL && *base != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	if (testca_new("Milan", now - DAY, now + 3650 * DAY, &ca) != 0 ||
	    testca_new("Milan", now - DAY, now + 3650 * DAY, &rogue) != 0)
		return -1;
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	remove_files();
	(void)rmdir(tmpdir);
	testca_free(ca);
	testca_free(rogue);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_chains),
		cmocka_unit_test(test_real_vlek),
		cmocka_unit_test(test_real_negatives),
		cmocka_unit_test(test_real_pins),
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_pins),
		cmocka_unit_test(test_testca_chain),
		cmocka_unit_test(test_wrong_intermediate),
		cmocka_unit_test(test_signature_algorithm),
		cmocka_unit_test(test_validity),
		cmocka_unit_test(test_expired_ask),
		cmocka_unit_test(test_crl_revokes_ask),
		cmocka_unit_test(test_crl_revokes_leaf),
		cmocka_unit_test(test_crl_time),
		cmocka_unit_test(test_crl_acceptance),
		cmocka_unit_test(test_threads),
	};

	ts_require_vectors();
	return cmocka_run_group_tests_name("trust", tests, group_setup, group_teardown);
}
