/*
 * provd's modules: token verification against every protocol vector, the JWE
 * a release produces (decrypted with cjose and the vectors' transfer key),
 * release policies, the store (encryption at rest, versions, retirement), the
 * master key, and the audit chain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "common/b64url.h"
#include "provision/audit.h"
#include "provision/policy.h"
#include "provision/seal.h"
#include "provision/secret.h"
#include "provision/store.h"
#include "common/jwe.h"
#include "provision/token.h"
#include "provision/util.h"
#include "testsupport.h"

#define ISSUER "https://attestd.example"
#define ZERO_M "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"

static char tmpdir[512];

/* cjose 0.6.2 leaks one byte per cjose_jwe_import of a JWE whose encrypted key
 * is empty (ECDH-ES direct key agreement): the decoded empty part is replaced
 * without being freed (LSan's fast unwinder sees only the library, hence the
 * module-wide pattern).  Only the test decrypts; provd never imports a JWE. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
	return "leak:libcjose.so\n";
}

static void
tpath(char *out, size_t cap, const char *name)
{
	(void)snprintf(out, cap, "%s/%s", tmpdir, name);
}

static prov_jwks *
load_jwks(void)
{
	char p[1024], err[512];
	prov_jwks *k = NULL;

	(void)snprintf(p, sizeof(p), "%s/protocol/as.jwks.json", ts_vectors_dir());
	assert_int_equal(prov_jwks_load(p, &k, err, sizeof(err)), 0);
	return k;
}

static char *
read_token(const char *name)
{
	char rel[256];
	size_t len;
	char *t;

	(void)snprintf(rel, sizeof(rel), "protocol/token.%s.jwt", name);
	t = (char *)ts_read_vector(rel, &len);
	while (len > 0 && (t[len - 1] == '\n' || t[len - 1] == '\r'))
		t[--len] = '\0';
	return t;
}

/* Verify a vector token; returns the result and the reason in why. */
static int
verify_vec(const char *name, time_t now, unsigned skew, const char *iss, prov_token **out,
	   char *why, size_t whylen)
{
	prov_jwks *k = load_jwks();
	char *t = read_token(name);
	prov_token *tok = NULL;
	int r = prov_token_verify(k, iss, skew, now, t, strlen(t), &tok, why, whylen);

	if (out != NULL)
		*out = tok;
	else
		prov_token_free(tok);
	free(t);
	prov_jwks_free(k);
	return r;
}

static json_t *
binding(void)
{
	size_t len;
	uint8_t *b = ts_read_vector("protocol/binding.json", &len);
	json_t *j = json_loadb((const char *)b, len, 0, NULL);

	free(b);
	assert_non_null(j);
	return j;
}

/* ------------------------------------------------------------ tokens */

static void
test_token_valid(void **state)
{
	prov_token *t = NULL;
	char why[256] = "";
	json_t *b = binding();

	(void)state;
	assert_int_equal(verify_vec("valid-until-2099", time(NULL), 60, ISSUER, &t, why,
				    sizeof(why)),
			 0);
	assert_non_null(t);
	assert_string_equal(t->ear_status, "affirming");
	assert_string_equal(t->jti, "4f1c0b3a-demo");
	assert_true(json_equal(t->cnf_jwk, json_object_get(b, "tee_pubkey")));
	{
		/* The release encrypts to cnf_key: it is the very point of cnf.jwk. */
		json_t *back = NULL;

		assert_non_null(t->cnf_key);
		assert_int_equal(jwe_p256_public_jwk(t->cnf_key, &back), 0);
		assert_true(json_equal(json_object_get(back, "x"), json_object_get(t->cnf_jwk, "x")));
		assert_true(json_equal(json_object_get(back, "y"), json_object_get(t->cnf_jwk, "y")));
		json_decref(back);
	}
	prov_token_free(t);
	/* still accepted on the last day of 2099, not after (exp 2100-01-01, skew 60) */
	assert_int_equal(verify_vec("valid-until-2099", 4102444800 + 60, 60, ISSUER, NULL, why,
				    sizeof(why)),
			 0);
	assert_int_not_equal(verify_vec("valid-until-2099", 4102444800 + 61, 60, ISSUER, NULL, why,
					sizeof(why)),
			     0);
	assert_non_null(strstr(why, "expired"));
	/* not before its nbf (2026-11-18) minus the skew */
	assert_int_not_equal(verify_vec("valid-until-2099", 1795000000 - 61, 60, ISSUER, NULL, why,
					sizeof(why)),
			     0);
	assert_non_null(strstr(why, "not valid before"));
	json_decref(b);
}

static void
test_token_rejected(void **state)
{
	static const struct {
		const char *name, *why;
	} cases[] = {
		{ "expired", "expired at 2026-11-18T11:11:40Z" },
		{ "other-key", "signature invalid" },
		{ "alg-none", "alg none not accepted" },
		{ "hs256-confusion", "alg HS256 not accepted" },
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		assert_int_equal(verify_vec(cases[i].name, time(NULL), 60, ISSUER, NULL, why,
					    sizeof(why)),
				 -1);
		if (strstr(why, cases[i].why) == NULL)
			fail_msg("token %s: reason \"%s\", expected \"%s\"", cases[i].name, why,
				 cases[i].why);
	}
	/* the expired token is fine within its lifetime (plus skew) */
	assert_int_equal(verify_vec("expired", 1795000300 + 30, 60, ISSUER, NULL, why, sizeof(why)),
			 0);
	/* another issuer */
	assert_int_equal(verify_vec("valid-until-2099", time(NULL), 60, "https://other.example",
				    NULL, why, sizeof(why)),
			 -1);
	assert_non_null(strstr(why, "issuer"));
}

static void
test_token_shapes(void **state)
{
	prov_jwks *k = load_jwks();
	prov_token *t = NULL;
	char why[256];
	static const char *const bad[] = { "", "a.b", "a.b.c.d", "!!!.e30.x",
					   "eyJhbGciOiJFUzI1NiJ9.e30", /* two parts */
					   "eyJhbGciOiJSUzI1NiJ9.e30.AAAA" /* RS256 */ };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(prov_token_verify(k, ISSUER, 60, time(NULL), bad[i], strlen(bad[i]),
						   &t, why, sizeof(why)),
				 -1);
	assert_null(t);
	assert_non_null(strstr(why, "RS256"));
	prov_jwks_free(k);
}

static void
test_token_other_cnf(void **state)
{
	prov_token *t = NULL;
	char why[256];
	json_t *b = binding();

	(void)state;
	assert_int_equal(verify_vec("other-cnf", time(NULL), 60, ISSUER, &t, why, sizeof(why)), 0);
	assert_false(json_equal(t->cnf_jwk, json_object_get(b, "tee_pubkey")));
	prov_token_free(t);
	json_decref(b);
}

/* ------------------------------------------------------------ release JWE */

/* Build the release of an aes256 version for token `name`; decrypt it with
 * the vectors' transfer key; returns the decrypted payload or NULL. */
static json_t *
release_and_decrypt(const char *name)
{
	prov_token *t = NULL;
	char why[256], *payload = NULL, *jwe = NULL, *priv;
	size_t plen = 0, clen = 0;
	store_item it = { .name = "db-encryption-key", .type = "aes256", .version = 3 };
	uint8_t key[32], *pt;
	json_t *b = binding(), *res = NULL;
	cjose_jwk_t *jwk;
	cjose_jwe_t *enc;
	cjose_err ce;
	int i;

	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	it.material = key;
	it.material_len = 32;
	it.attrs = (char *)(uintptr_t)"{\"usages\":[\"encrypt\",\"decrypt\"],\"exportable\":false,"
				      "\"persist\":true,\"access\":null,\"require_attestation\":0}";
	assert_int_equal(verify_vec(name, time(NULL), 60, ISSUER, &t, why, sizeof(why)), 0);
	assert_int_equal(secret_payload(&it, &payload, &plen), 0);
	assert_int_equal(secret_jwe(t->cnf_key, (const uint8_t *)payload, plen, &jwe), 0);
	OPENSSL_secure_clear_free(payload, plen + 1);
	/* compact, five parts, never the key in clear */
	assert_null(strstr(jwe, "AAECAwQF"));
	priv = json_dumps(json_object_get(b, "tee_private_jwk"), JSON_COMPACT);
	jwk = cjose_jwk_import(priv, strlen(priv), &ce);
	assert_non_null(jwk);
	enc = cjose_jwe_import(jwe, strlen(jwe), &ce);
	assert_non_null(enc);
	pt = cjose_jwe_decrypt(enc, jwk, &clen, &ce);
	if (pt != NULL) {
		res = json_loadb((const char *)pt, clen, 0, NULL);
		cjose_get_dealloc()(pt);
	}
	cjose_jwe_release(enc);
	cjose_jwk_release(jwk);
	free(priv);
	free(jwe);
	prov_token_free(t);
	json_decref(b);
	return res;
}

/* The transfer key check: on the curve, coordinates below the field prime,
 * public only. */
static void
test_check_p256_public(void **state)
{
	/* x = 5 is the smallest x on P-256 (y from the curve equation); x + p,
	 * which still fits in 32 bytes, is its alias. */
	static const char *const x5 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAU";
	static const char *const x5p = "_____wAAAAEAAAAAAAAAAAAAAAEAAAAAAAAAAAAAAAQ";
	json_t *b = binding(), *k = json_deep_copy(json_object_get(b, "tee_pubkey"));
	char why[256] = "";

	(void)state;
	assert_int_equal(prov_check_p256_public(k, why, sizeof(why)), 0);
	json_object_set_new(k, "d", json_string("AAAA"));
	assert_int_equal(prov_check_p256_public(k, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "public"));
	json_object_del(k, "d");
	json_object_set_new(k, "x", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
	assert_int_equal(prov_check_p256_public(k, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not on P-256"));
	{
		/* (5, y) passes; (5 + p, y) is the same point mod p and is refused. */
		EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
		EC_POINT *pt = EC_POINT_new(g);
		BIGNUM *x = BN_new(), *y = BN_new();
		unsigned char by[32];
		char ty[44];

		assert_int_equal(BN_set_word(x, 5), 1);
		assert_int_equal(EC_POINT_set_compressed_coordinates(g, pt, x, 0, NULL), 1);
		assert_int_equal(EC_POINT_get_affine_coordinates(g, pt, x, y, NULL), 1);
		assert_int_equal(BN_bn2binpad(y, by, 32), 32);
		b64url_encode(by, 32, ty);
		json_object_set_new(k, "x", json_string(x5));
		json_object_set_new(k, "y", json_string(ty));
		assert_int_equal(prov_check_p256_public(k, why, sizeof(why)), 0);
		json_object_set_new(k, "x", json_string(x5p));
		assert_int_equal(prov_check_p256_public(k, why, sizeof(why)), -1);
		BN_free(x);
		BN_free(y);
		EC_POINT_free(pt);
		EC_GROUP_free(g);
	}
	json_decref(k);
	json_decref(b);
}

static void
test_release_jwe(void **state)
{
	json_t *p = release_and_decrypt("valid-until-2099");
	size_t len;
	uint8_t *plain = ts_read_vector("protocol/secret.plain.json", &len);
	json_t *want = json_loadb((const char *)plain, len, 0, NULL);

	(void)state;
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "name")), "db-encryption-key");
	assert_int_equal(json_integer_value(json_object_get(p, "version")), 3);
	/* the key material and attributes as the vector's secret.plain.json carries them */
	assert_string_equal(json_string_value(json_object_get(p, "key")),
			    json_string_value(json_object_get(want, "key")));
	assert_true(json_equal(json_object_get(p, "usages"), json_object_get(want, "usages")));
	assert_true(json_equal(json_object_get(p, "exportable"), json_object_get(want, "exportable")));
	assert_true(json_equal(json_object_get(p, "persist"), json_object_get(want, "persist")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(p, "jwk"), "k")),
			    json_string_value(json_object_get(want, "key")));
	json_decref(p);
	json_decref(want);
	free(plain);
	/* a release for the other-cnf token is encrypted to ITS key: the transfer key
	 * of binding.json cannot read it */
	assert_null(release_and_decrypt("other-cnf"));
}

static void
test_payload_ec(void **state)
{
	uint8_t *mat = NULL;
	size_t len = 0, plen = 0;
	char why[256], *payload = NULL;
	store_item it = { .name = "sig", .type = "p256", .version = 1 };
	json_t *p, *jwk;

	(void)state;
	assert_int_equal(secret_material("p256", NULL, 0, &mat, &len, why, sizeof(why)), 0);
	it.material = mat;
	it.material_len = len;
	it.attrs = (char *)(uintptr_t)"{\"usages\":[\"sign\"]}";
	assert_int_equal(secret_payload(&it, &payload, &plen), 0);
	p = json_loads(payload, 0, NULL);
	jwk = json_object_get(p, "jwk");
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "EC");
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "P-256");
	assert_int_equal(strlen(json_string_value(json_object_get(jwk, "d"))), 43);
	assert_int_equal(strlen(json_string_value(json_object_get(jwk, "x"))), 43);
	{
		/* Released again: the same payload (its JWK from secret.c's cache). */
		char *again = NULL;
		size_t alen = 0;
		uint8_t *mat2 = NULL;
		size_t len2 = 0;
		json_t *p2;

		assert_int_equal(secret_payload(&it, &again, &alen), 0);
		assert_int_equal(alen, plen);
		assert_memory_equal(again, payload, plen);
		OPENSSL_secure_clear_free(again, alen + 1);
		/* Another key under the same name and version (deleted and created
		 * again): its own JWK, never the cached one. */
		assert_int_equal(secret_material("p256", NULL, 0, &mat2, &len2, why, sizeof(why)), 0);
		it.material = mat2;
		it.material_len = len2;
		assert_int_equal(secret_payload(&it, &again, &alen), 0);
		p2 = json_loads(again, 0, NULL);
		assert_non_null(p2);
		assert_string_not_equal(
			json_string_value(json_object_get(json_object_get(p2, "jwk"), "d")),
			json_string_value(json_object_get(jwk, "d")));
		json_decref(p2);
		OPENSSL_secure_clear_free(again, alen + 1);
		OPENSSL_secure_clear_free(mat2, len2);
		it.material = mat;
		it.material_len = len;
		/* After clearing, the JWK is built again, and is the same. */
		secret_cache_clear();
		assert_int_equal(secret_payload(&it, &again, &alen), 0);
		assert_int_equal(alen, plen);
		assert_memory_equal(again, payload, plen);
		OPENSSL_secure_clear_free(again, alen + 1);
	}
	json_decref(p);
	OPENSSL_secure_clear_free(payload, plen + 1);
	OPENSSL_secure_clear_free(mat, len);
	/* wrong types and sizes */
	assert_int_equal(secret_material("aes256", (const uint8_t *)"short", 5, &mat, &len, why,
					 sizeof(why)),
			 -1);
	assert_int_equal(secret_material("p384", (const uint8_t *)"junk", 4, &mat, &len, why,
					 sizeof(why)),
			 -1);
	assert_int_equal(secret_material("des", NULL, 0, &mat, &len, why, sizeof(why)), -1);
}

/* ------------------------------------------------------------ policy */

static json_t *
claims_with(const char *measurement, const char *product, int snp_svn)
{
	return json_pack("{s:{s:{s:s, s:{s:s, s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i}}}}}",
			 "submods", "cpu0", "ear.status", "affirming",
			 "ear.veraison.annotated-evidence", "measurement", measurement, "product",
			 product, "host_data", "11111111111111111111111111111111111111111111111111111111"
					       "11111111",
			 "signing_key", "vcek", "reported_tcb", "bootloader", 3, "tee", 0, "snp",
			 snp_svn, "microcode", 115);
}

static bool
eval_text(const char *policy, const json_t *claims, json_t **failed)
{
	json_t *p = json_loads(policy, 0, NULL);
	char err[256];
	bool ok;

	assert_non_null(p);
	assert_int_equal(release_policy_check(p, err, sizeof(err)), 0);
	ok = release_policy_eval(p, claims, failed);
	json_decref(p);
	return ok;
}

static const char *
first_failed(const json_t *failed)
{
	return json_string_value(json_object_get(json_array_get(failed, 0), "condition"));
}

static void
test_policy_eval(void **state)
{
	json_t *c = claims_with(ZERO_M, "genoa", 21), *f = NULL;

	(void)state;
	assert_true(eval_text("{\"measurement\":[\"" ZERO_M "\"]}", c, &f));
	assert_int_equal(json_array_size(f), 0);
	json_decref(f);
	assert_false(eval_text("{\"measurement\":[\"" ZERO_M "\"], \"product\":[\"milan\"]}", c, &f));
	assert_string_equal(first_failed(f), "product");
	assert_int_equal(json_array_size(f), 1);
	json_decref(f);
	assert_true(eval_text("{\"min_tcb\":{\"snp\":21,\"microcode\":115}}", c, &f));
	json_decref(f);
	assert_false(eval_text("{\"min_tcb\":{\"snp\":22}}", c, &f));
	assert_string_equal(first_failed(f), "min_tcb.snp");
	assert_string_equal(json_string_value(json_object_get(json_array_get(f, 0), "actual")), "21");
	json_decref(f);
	assert_true(eval_text("{\"any\":[{\"product\":[\"milan\"]},{\"product\":[\"genoa\"]}]}", c,
			      &f));
	json_decref(f);
	assert_false(eval_text("{\"any\":[{\"product\":[\"milan\"]},{\"signing_key\":[\"vlek\"]}]}",
			       c, &f));
	assert_int_equal(json_array_size(f), 2);
	assert_string_equal(first_failed(f), "any[0].product");
	json_decref(f);
	assert_false(eval_text("{\"all\":[{\"signing_key\":[\"vcek\"]},{\"host_data\":[\""
			       "0000000000000000000000000000000000000000000000000000000000000000\"]}]}",
			       c, &f));
	assert_string_equal(first_failed(f), "all[1].host_data");
	json_decref(f);
	assert_true(eval_text("{\"all\":[{\"signing_key\":[\"vcek\"]},{\"ear_status\":[\"affirming\"]}]}",
			      c, &f));
	json_decref(f);
	/* contraindicated is never released, whatever the policy */
	(void)json_object_set_new(json_object_get(json_object_get(c, "submods"), "cpu0"),
				  "ear.status", json_string("contraindicated"));
	assert_false(eval_text("{\"measurement\":[\"" ZERO_M "\"]}", c, &f));
	assert_string_equal(first_failed(f), "ear_status");
	json_decref(f);
	/* no policy: nothing */
	assert_false(release_policy_eval(NULL, c, &f));
	json_decref(f);
	json_decref(c);
}

static void
test_policy_check(void **state)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
		{ "{}", "expected a non-empty object" },
		{ "{\"measurement\":[\"12\"]}", "measurement[0]: expected 96 hex" },
		{ "{\"product\":[\"epyc\"]}", "product[0]: unknown value" },
		{ "{\"colour\":[\"red\"]}", "colour: unknown condition" },
		{ "{\"all\":[{\"min_tcb\":{\"snp\":-1}}]}", "all[0].min_tcb.snp" },
		{ "{\"any\":[]}", "any: expected a non-empty array" },
		{ "{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":[{\"all\":"
		  "[{\"product\":[\"genoa\"]}]}]}]}]}]}]}]}]}]}",
		  "nested deeper" },
	};
	char err[256];
	size_t i;
	json_t *p;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = json_loads(bad[i].text, 0, NULL);
		assert_non_null(p);
		err[0] = '\0';
		assert_int_equal(release_policy_check(p, err, sizeof(err)), -1);
		if (strstr(err, bad[i].err) == NULL)
			fail_msg("policy %s: error \"%s\", expected \"%s\"", bad[i].text, err,
				 bad[i].err);
		json_decref(p);
	}
}

/* ------------------------------------------------------------ master key, store */

static seal_key *
open_key(const char *name, bool create)
{
	char p[1024], err[512];
	seal_key *k = NULL;

	tpath(p, sizeof(p), name);
	assert_int_equal(seal_key_open(p, create, &k, err, sizeof(err)), 0);
	return k;
}

static void
test_seal_key(void **state)
{
	char p[1024], err[512];
	seal_key *k = NULL;
	struct stat st;
	uint8_t *ct = NULL, *pt = NULL;
	size_t ctlen = 0, ptlen = 0;

	(void)state;
	k = open_key("mk1", true);
	tpath(p, sizeof(p), "mk1");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	assert_int_equal(seal_encrypt(k, (const uint8_t *)"aad", 3, (const uint8_t *)"hello", 5, &ct,
				      &ctlen),
			 0);
	seal_key_free(k);
	k = open_key("mk1", false); /* the same key again */
	assert_int_equal(seal_decrypt(k, (const uint8_t *)"aad", 3, ct, ctlen, &pt, &ptlen), 0);
	assert_memory_equal(pt, "hello", 5);
	OPENSSL_secure_clear_free(pt, ptlen);
	pt = NULL;
	assert_int_equal(seal_decrypt(k, (const uint8_t *)"aaX", 3, ct, ctlen, &pt, &ptlen), -1);
	ct[15] ^= 1;
	assert_int_equal(seal_decrypt(k, (const uint8_t *)"aad", 3, ct, ctlen, &pt, &ptlen), -1);
	free(ct);
	seal_key_free(k);
	k = NULL;
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(seal_key_open(p, false, &k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must be 0600"));
	tpath(p, sizeof(p), "absent.key");
	assert_int_equal(seal_key_open(p, false, &k, err, sizeof(err)), -1);
}

static bool
file_contains(const char *path, const uint8_t *needle, size_t n)
{
	size_t len = 0, i;
	uint8_t *b;
	bool found = false;

	if (access(path, F_OK) != 0)
		return false;
	b = ts_read_file(path, &len);
	for (i = 0; i + n <= len && !found; i++)
		found = memcmp(b + i, needle, n) == 0;
	free(b);
	return found;
}

static void
test_store(void **state)
{
	char db[1024], wal[1100], err[512], *pol = NULL;
	seal_key *k = open_key("mk-store", true), *other = open_key("mk-other", true);
	store *s = NULL, *s2 = NULL;
	store_item *it = NULL;
	unsigned v = 0;
	json_t *j = NULL;
	static const uint8_t secret[] = "correct horse battery staple 0123456789";
	const size_t slen = sizeof(secret) - 1;

	(void)state;
	tpath(db, sizeof(db), "store.db");
	(void)snprintf(wal, sizeof(wal), "%s-wal", db);
	assert_int_equal(store_sqlite_open(db, k, &s, err, sizeof(err)), 0);
	assert_int_equal(store_put(s, "luks", "opaque", "{}", secret, slen, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_put(s, "luks", "opaque", "{}", (const uint8_t *)"second", 6, &v), 0);
	assert_int_equal(v, 2);
	assert_int_equal(store_put(s, "luks", "aes256", "{}", secret, 32, &v), STORE_CONFLICT);
	/* latest, then by number */
	assert_int_equal(store_get(s, "luks", 0, &it), STORE_OK);
	assert_int_equal(it->version, 2);
	assert_memory_equal(it->material, "second", 6);
	store_item_free(it);
	assert_int_equal(store_get(s, "luks", 1, &it), STORE_OK);
	assert_int_equal(it->material_len, slen);
	assert_memory_equal(it->material, secret, slen);
	store_item_free(it);
	it = NULL;
	/* retire */
	assert_int_equal(store_retire(s, "luks", 2), STORE_OK);
	assert_int_equal(store_get(s, "luks", 2, &it), STORE_RETIRED);
	assert_int_equal(store_get(s, "luks", 0, &it), STORE_OK);
	assert_int_equal(it->version, 1);
	store_item_free(it);
	it = NULL;
	assert_int_equal(store_get(s, "luks", 9, &it), STORE_NOT_FOUND);
	assert_int_equal(store_get(s, "nope", 0, &it), STORE_NOT_FOUND);
	assert_int_equal(store_retire(s, "luks", 9), STORE_NOT_FOUND);
	/* policy */
	assert_int_equal(store_get_policy(s, "luks", &pol), STORE_OK);
	assert_null(pol);
	assert_int_equal(store_set_policy(s, "luks", "{\"product\":[\"genoa\"]}"), STORE_OK);
	assert_int_equal(store_get_policy(s, "luks", &pol), STORE_OK);
	assert_string_equal(pol, "{\"product\":[\"genoa\"]}");
	free(pol);
	assert_int_equal(store_set_policy(s, "nope", "{}"), STORE_NOT_FOUND);
	/* listing never shows material */
	assert_int_equal(store_list(s, &j), STORE_OK);
	assert_int_equal(json_array_size(j), 1);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 0), "latest")), 1);
	json_decref(j);
	assert_int_equal(store_versions(s, "luks", &j), STORE_OK);
	assert_int_equal(json_array_size(json_object_get(j, "versions")), 2);
	json_decref(j);
	/* at rest: neither the database nor its WAL holds the plaintext */
	assert_false(file_contains(db, secret, slen));
	assert_false(file_contains(wal, secret, slen));
	assert_false(file_contains(db, (const uint8_t *)"correct horse", 13));
	/* another master key cannot read it */
	assert_int_equal(store_sqlite_open(db, other, &s2, err, sizeof(err)), 0);
	assert_int_equal(store_get(s2, "luks", 1, &it), STORE_CORRUPT);
	store_close(s2);
	/* The statements are kept between calls: each call must end its read.
	 * After s read a row, a second connection adds a version; s must see it
	 * (a statement left un-reset would hold s on its old WAL snapshot). */
	assert_int_equal(store_sqlite_open(db, k, &s2, err, sizeof(err)), 0);
	assert_int_equal(store_get(s, "luks", 1, &it), STORE_OK);
	store_item_free(it);
	it = NULL;
	assert_int_equal(store_get_policy(s, "luks", &pol), STORE_OK);
	free(pol);
	pol = NULL;
	assert_int_equal(store_put(s2, "luks", "opaque", "{}", (const uint8_t *)"third", 5, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(store_get(s, "luks", 0, &it), STORE_OK);
	assert_int_equal(it->version, 3);
	store_item_free(it);
	it = NULL;
	assert_int_equal(store_retire(s2, "luks", 3), STORE_OK);
	store_close(s2);
	/* delete, re-create: numbers are never reused */
	assert_int_equal(store_delete(s, "luks"), STORE_OK);
	assert_int_equal(store_get(s, "luks", 1, &it), STORE_NOT_FOUND);
	assert_int_equal(store_delete(s, "luks"), STORE_NOT_FOUND);
	assert_int_equal(store_put(s, "luks", "aes256", "{}", secret, 32, &v), 0);
	assert_int_equal(v, 4);
	store_close(s);
	seal_key_free(k);
	seal_key_free(other);
}

/* ------------------------------------------------------------ audit */

static void
write_lines(const char *path, char **lines, size_t n)
{
	FILE *f = fopen(path, "w");
	size_t i;

	assert_non_null(f);
	for (i = 0; i < n; i++)
		(void)fputs(lines[i], f);
	assert_int_equal(fclose(f), 0);
}

static int
verify_file(const char *path, char *why, size_t whylen)
{
	size_t len = 0, n = 0;
	uint8_t *b = ts_read_file(path, &len);
	char head[AUDIT_HASH_HEX];
	int r = audit_chain_verify((const char *)b, len, &n, head, why, whylen);

	free(b);
	return r;
}

/* A stand-in for fdatasync that blocks until the test opens the gate, and
 * counts the flushes that began and ended. */
struct gated_sync {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool open, fail_next;
	int entered, returned;
};

static int
gated_sync_fn(int fd, void *arg)
{
	struct gated_sync *g = arg;
	int r = 0;

	(void)fd;
	(void)pthread_mutex_lock(&g->lock);
	g->entered++;
	(void)pthread_cond_broadcast(&g->cond);
	while (!g->open)
		(void)pthread_cond_wait(&g->cond, &g->lock);
	if (g->fail_next) {
		g->fail_next = false;
		r = -1;
	}
	g->returned++;
	(void)pthread_mutex_unlock(&g->lock);
	return r;
}

struct waiter {
	audit_log *a;
	uint64_t ticket;
	struct gated_sync *g;
	int r, returned_before; /* flushes that had ended when audit_wait returned */
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->r = audit_wait(w->a, w->ticket);
	(void)pthread_mutex_lock(&w->g->lock);
	w->returned_before = w->g->returned;
	(void)pthread_mutex_unlock(&w->g->lock);
	return NULL;
}

static uint64_t
write_rec(audit_log *a, int n)
{
	json_t *rec = json_pack("{s:s, s:i}", "event", "release", "n", n);
	uint64_t t = 0;

	assert_int_equal(audit_write(a, rec, &t), 0);
	json_decref(rec);
	return t;
}

/* Group commit: a record counts as durable only after a flush that began
 * after it was written has ended; records written during a flush share the
 * next one; a failed flush fails its records and every later one. */
static void
test_audit_group_commit(void **state)
{
	char p[1024], err[512], why[256];
	struct gated_sync g = { .open = false };
	struct waiter w;
	audit_log *a = NULL;
	pthread_t th;
	uint64_t t1, t2, t3, t4;
	json_t *rec;

	(void)state;
	(void)pthread_mutex_init(&g.lock, NULL);
	(void)pthread_cond_init(&g.cond, NULL);
	tpath(p, sizeof(p), "audit-gc.log");
	(void)unlink(p);
	assert_int_equal(audit_open(p, &a, err, sizeof(err)), 0);
	audit_set_sync(a, gated_sync_fn, &g);

	t1 = write_rec(a, 1);
	assert_int_equal(t1, 1);
	w = (struct waiter){ .a = a, .ticket = t1, .g = &g, .r = -2 };
	assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
	/* The first flush has begun (and is held): write two more meanwhile. */
	(void)pthread_mutex_lock(&g.lock);
	while (g.entered < 1)
		(void)pthread_cond_wait(&g.cond, &g.lock);
	(void)pthread_mutex_unlock(&g.lock);
	t2 = write_rec(a, 2);
	t3 = write_rec(a, 3);
	(void)pthread_mutex_lock(&g.lock);
	g.open = true;
	(void)pthread_cond_broadcast(&g.cond);
	(void)pthread_mutex_unlock(&g.lock);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(w.r, 0);
	assert_true(w.returned_before >= 1); /* never before the flush ended */
	assert_int_equal(audit_wait(a, t3), 0);
	assert_int_equal(audit_wait(a, t2), 0);
	(void)pthread_mutex_lock(&g.lock);
	assert_int_equal(g.entered, 2); /* records 2 and 3: one flush */
	assert_int_equal(g.returned, 2);
	g.fail_next = true;
	(void)pthread_mutex_unlock(&g.lock);

	/* A failed flush: its record is not durable, and nothing after it is. */
	t4 = write_rec(a, 4);
	assert_int_equal(audit_wait(a, t4), -1);
	rec = json_pack("{s:s}", "event", "admin");
	assert_int_equal(audit_append(a, rec), -1);
	json_decref(rec);
	assert_int_equal(audit_wait(a, t3), 0); /* flushed before the failure */
	audit_close(a);
	/* Four records, the chain intact; the refused one is not in the file. */
	assert_int_equal(verify_file(p, why, sizeof(why)), 0);
	{
		size_t len = 0, lines = 0, i;
		uint8_t *b = ts_read_file(p, &len);

		for (i = 0; i < len; i++)
			lines += b[i] == '\n';
		free(b);
		assert_int_equal(lines, 4);
	}
	(void)pthread_cond_destroy(&g.cond);
	(void)pthread_mutex_destroy(&g.lock);
}

static void
test_audit_chain(void **state)
{
	char p[1024], q[1024], err[512], why[256], head[AUDIT_HASH_HEX], *lines[8], *t;
	audit_log *a = NULL;
	json_t *rec;
	size_t n = 0, len = 0, i, cnt = 0;
	uint8_t *buf;

	(void)state;
	tpath(p, sizeof(p), "audit.log");
	tpath(q, sizeof(q), "audit.bad");
	assert_int_equal(audit_open(p, &a, err, sizeof(err)), 0);
	for (i = 0; i < 5; i++) {
		rec = json_pack("{s:s, s:i}", "event", "release", "n", (int)i);
		assert_int_equal(audit_append(a, rec), 0);
		json_decref(rec);
	}
	audit_head(a, &n, head);
	assert_int_equal(n, 5);
	audit_close(a);
	/* reopen continues the chain */
	assert_int_equal(audit_open(p, &a, err, sizeof(err)), 0);
	rec = json_pack("{s:s}", "event", "admin");
	assert_int_equal(audit_append(a, rec), 0);
	json_decref(rec);
	audit_close(a);
	assert_int_equal(verify_file(p, why, sizeof(why)), 0);
	buf = ts_read_file(p, &len);
	for (t = (char *)buf; cnt < 8 && *t != '\0'; cnt++) {
		char *nl = strchr(t, '\n');

		assert_non_null(nl);
		lines[cnt] = strndup(t, (size_t)(nl - t + 1));
		t = nl + 1;
	}
	assert_int_equal(cnt, 6);
	assert_non_null(strstr(lines[0], "\"seq\":1,\"prev\":\"0000"));
	/* edited */
	{
		char *orig = lines[2], *e = strdup(orig), *d = strstr(e, "\"n\":2");

		assert_non_null(d);
		d[4] = '7';
		lines[2] = e;
		write_lines(q, lines, cnt);
		assert_int_equal(verify_file(q, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "line 4"));
		lines[2] = orig;
		free(e);
	}
	/* removed */
	{
		char *l2[8];

		memcpy(l2, lines, sizeof(l2));
		memmove(&l2[1], &l2[2], sizeof(char *) * (cnt - 2));
		write_lines(q, l2, cnt - 1);
		assert_int_equal(verify_file(q, why, sizeof(why)), -1);
	}
	/* reordered */
	{
		char *tmp = lines[3];

		lines[3] = lines[4];
		lines[4] = tmp;
		write_lines(q, lines, cnt);
		assert_int_equal(verify_file(q, why, sizeof(why)), -1);
		lines[4] = lines[3];
		lines[3] = tmp;
	}
	/* intact again */
	write_lines(q, lines, cnt);
	assert_int_equal(verify_file(q, why, sizeof(why)), 0);
	/* a broken log refuses to open */
	{
		char *tmp = lines[1];

		lines[1] = lines[2];
		lines[2] = tmp;
		write_lines(q, lines, cnt);
		assert_int_equal(audit_open(q, &a, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "chain broken"));
	}
	for (i = 0; i < cnt; i++)
		free(lines[i]);
	free(buf);
}

static void
test_b64(void **state)
{
	uint8_t *out = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(prov_b64url_decode("AAECAw", 6, 16, &out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\x00\x01\x02\x03", 4);
	free(out);
	assert_int_equal(prov_b64url_decode("AAEC+w", 6, 16, &out, &n), -1);  /* not url-safe */
	assert_int_equal(prov_b64url_decode("AAECAw==", 8, 16, &out, &n), -1); /* padded */
	assert_int_equal(prov_b64url_decode("AAECAw", 6, 3, &out, &n), -1);    /* over the cap */
	assert_int_equal(prov_b64_decode("AAEC", 4, 16, &out, &n), 0);
	free(out);
	assert_int_equal(prov_b64_decode("AA=C", 4, 16, &out, &n), -1);
}

static void
test_thumbprint(void **state)
{
	json_t *b = binding();
	char tp[44];

	(void)state;
	assert_int_equal(prov_jwk_thumbprint(json_object_get(b, "tee_pubkey"), tp), 0);
	/* RFC 7638 thumbprint as jwcrypto computes it */
	assert_string_equal(tp, "iDFQkZ8AOO8MuYWTDpUcIrKvMV0LwVqPDmR-lTAmwXY");
	json_decref(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_valid),   cmocka_unit_test(test_token_rejected),
		cmocka_unit_test(test_token_shapes),  cmocka_unit_test(test_token_other_cnf),
		cmocka_unit_test(test_check_p256_public), cmocka_unit_test(test_release_jwe),   cmocka_unit_test(test_payload_ec),
		cmocka_unit_test(test_policy_eval),   cmocka_unit_test(test_policy_check),
		cmocka_unit_test(test_seal_key),      cmocka_unit_test(test_store),
		cmocka_unit_test(test_audit_chain),   cmocka_unit_test(test_audit_group_commit),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_thumbprint),
	};
	const char *base = getenv("NITRIDE_TEST_TMP");
	int r;

	ts_require_vectors();
	prov_alloc_init();
	(void)snprintf(tmpdir, sizeof(tmpdir), "%s/provd-unit-XXXXXX",
		       base && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		perror(tmpdir);
		return 1;
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char cmd[700];

		(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			(void)fprintf(stderr, "could not remove %s\n", tmpdir);
	}
	return r;
}
