/*
 * common/jwe: ECDH-ES + A256GCM compact JWE on P-256.
 *
 * Against the protocol vectors (made with jwcrypto), against cjose in both
 * directions, and a negative case for every check of the decrypt side.  The
 * negative cases are built by forge() below, an encryptor written out here
 * (its Concat KDF is one SHA-256 round by hand, not OpenSSL's SSKDF), so that
 * a JWE with, say, "zip" in its header carries a valid tag: the check is what
 * refuses it, not the tag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include "common/jwe.h"
#include "testsupport.h"

/* cjose 0.6.2 leaks one byte per cjose_jwe_import of a JWE whose encrypted
 * key is empty (ECDH-ES); only this test imports a JWE with cjose. */
const char *__lsan_default_suppressions(void);
const char *
__lsan_default_suppressions(void)
{
	return "leak:libcjose.so\n";
}

/* ---- helpers: base64url through OpenSSL's base64, not jwe.c's ---- */

static char *
b64u(const uint8_t *in, size_t n)
{
	char *o = malloc(n / 3 * 4 + 8);
	size_t i, k;

	assert_non_null(o);
	(void)EVP_EncodeBlock((unsigned char *)o, in, (int)n);
	for (i = 0, k = 0; o[i] != '\0'; i++) {
		if (o[i] == '=')
			continue;
		o[k++] = o[i] == '+' ? '-' : o[i] == '/' ? '_' : o[i];
	}
	o[k] = '\0';
	return o;
}

static size_t
unb64u(const char *in, uint8_t *out, size_t cap)
{
	size_t n = strlen(in), i, pad = (4 - n % 4) % 4;
	char *t = malloc(n + 4);
	int r;

	assert_non_null(t);
	for (i = 0; i < n; i++)
		t[i] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	for (i = 0; i < pad; i++)
		t[n + i] = '=';
	t[n + pad] = '\0';
	assert_true((n + pad) / 4 * 3 <= cap + 2);
	r = EVP_DecodeBlock(out, (const unsigned char *)t, (int)(n + pad));
	free(t);
	assert_true(r >= 0);
	return (size_t)r - pad;
}

/* A P-256 key pair from a private JWK (d, x, y). */
static EVP_PKEY *
priv_from_jwk(const json_t *jwk)
{
	uint8_t d[48], pt[65];
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM *ps;
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *k = NULL;
	BIGNUM *bn;

	assert_int_equal(unb64u(json_string_value(json_object_get(jwk, "d")), d, sizeof(d)), 32);
	pt[0] = 4;
	assert_int_equal(unb64u(json_string_value(json_object_get(jwk, "x")), pt + 1, 33), 32);
	assert_int_equal(unb64u(json_string_value(json_object_get(jwk, "y")), pt + 33, 33), 32);
	bn = BN_bin2bn(d, 32, NULL);
	assert_non_null(b);
	assert_true(OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
	assert_true(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn));
	assert_true(OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)));
	ps = OSSL_PARAM_BLD_to_param(b);
	assert_int_equal(EVP_PKEY_fromdata_init(c), 1);
	assert_int_equal(EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, ps), 1);
	OSSL_PARAM_free(ps);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(bn);
	EVP_PKEY_CTX_free(c);
	OPENSSL_cleanse(d, sizeof(d));
	return k;
}

static json_t *
binding(void)
{
	size_t n;
	char *t = (char *)ts_read_vector("protocol/binding.json", &n);
	json_t *j = json_loadb(t, n, 0, NULL);

	free(t);
	assert_non_null(j);
	return j;
}

static EVP_PKEY *
newkey(void)
{
	EVP_PKEY *k = NULL;

	assert_int_equal(jwe_p256_keygen(&k), 0);
	return k;
}

/* The uncompressed point's x and y of a key as base64url. */
static void
xy(EVP_PKEY *k, char **x, char **y)
{
	uint8_t p[65];
	size_t n = 0;

	assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, p,
							 sizeof(p), &n), 1);
	assert_int_equal(n, 65);
	*x = b64u(p + 1, 32);
	*y = b64u(p + 33, 32);
}

/* s with every "@EPK@" replaced by epk (malloc'ed). */
static char *
subst(const char *s, const char *epk)
{
	const char *m = strstr(s, "@EPK@");
	size_t n = strlen(s) + strlen(epk) + 1;
	char *o;

	if (m == NULL)
		return strdup(s);
	o = malloc(n);
	assert_non_null(o);
	(void)snprintf(o, n, "%.*s%s%s", (int)(m - s), s, epk, m + 5);
	return o;
}

static void
put32(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * A compact JWE to `to`: protected header `hdr` (JSON text; "@EPK@" stands for
 * the ephemeral key's JWK), CEK = SHA-256(1 || Z || OtherInfo) with
 * apu/apv as given (NULL: absent), AES-256-GCM of pt, AAD the header's
 * base64url.  A valid JWE whenever hdr says what the KDF did.
 */
static char *
forge(EVP_PKEY *to, const char *hdr, const uint8_t *apu, size_t apul, const uint8_t *apv,
      size_t apvl, const char *pt)
{
	EVP_PKEY *eph = newkey();
	EVP_PKEY_CTX *dc = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
	EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
	uint8_t z[32], cek[32], iv[12], tag[16], kdf[4 + 32 + 4 + 7 + 4 + 512 + 4 + 512 + 4];
	uint8_t *ct = malloc(strlen(pt) + 16);
	char *x, *y, epk[256], *h, *hb, *ivb, *ctb, *tagb, *out;
	size_t zl = sizeof(z), kl = 0;
	unsigned int dl = 0;
	int l = 0, f = 0;

	assert_non_null(ct);
	assert_int_equal(EVP_PKEY_derive_init(dc), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(dc, to), 1);
	assert_int_equal(EVP_PKEY_derive(dc, z, &zl), 1);
	put32(kdf, 1);
	memcpy(kdf + 4, z, 32);
	kl = 36;
	put32(kdf + kl, 7);
	memcpy(kdf + kl + 4, "A256GCM", 7);
	kl += 11;
	put32(kdf + kl, apul);
	if (apul > 0)
		memcpy(kdf + kl + 4, apu, apul);
	kl += 4 + apul;
	put32(kdf + kl, apvl);
	if (apvl > 0)
		memcpy(kdf + kl + 4, apv, apvl);
	kl += 4 + apvl;
	put32(kdf + kl, 256);
	kl += 4;
	assert_int_equal(EVP_Digest(kdf, kl, cek, &dl, EVP_sha256(), NULL), 1);
	xy(eph, &x, &y);
	(void)snprintf(epk, sizeof(epk), "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
		       x, y);
	h = subst(hdr, epk);
	hb = b64u((const uint8_t *)h, strlen(h));
	assert_int_equal(RAND_bytes(iv, sizeof(iv)), 1);
	assert_int_equal(EVP_EncryptInit_ex2(cc, EVP_aes_256_gcm(), cek, iv, NULL), 1);
	assert_int_equal(EVP_EncryptUpdate(cc, NULL, &l, (const uint8_t *)hb, (int)strlen(hb)), 1);
	assert_int_equal(EVP_EncryptUpdate(cc, ct, &l, (const uint8_t *)pt, (int)strlen(pt)), 1);
	assert_int_equal(EVP_EncryptFinal_ex(cc, ct + l, &f), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_GET_TAG, 16, tag), 1);
	ivb = b64u(iv, 12);
	ctb = b64u(ct, strlen(pt));
	tagb = b64u(tag, 16);
	kl = strlen(hb) + strlen(ivb) + strlen(ctb) + strlen(tagb) + 8;
	out = malloc(kl);
	assert_non_null(out);
	(void)snprintf(out, kl, "%s..%s.%s.%s", hb, ivb, ctb, tagb);
	free(x);
	free(y);
	free(h);
	free(hb);
	free(ivb);
	free(ctb);
	free(tagb);
	free(ct);
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_CTX_free(dc);
	EVP_PKEY_free(eph);
	return out;
}

/* The base64url character whose 6-bit value differs from c's in the lowest
 * bit only: in a final character that bit is unused, so both spellings carry
 * the same bytes. */
static char
other_spelling(char c)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(a, c);

	assert_non_null(p);
	return a[(p - a) ^ 1];
}

#define STD_HDR "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"

/* jwe with part idx (0..4) replaced by `part` (malloc'ed). */
static char *
with_part(const char *jwe, int idx, const char *part)
{
	const char *p[6];
	char *o = malloc(strlen(jwe) + strlen(part) + 8), *w;
	int k = 0, i;

	assert_non_null(o);
	p[0] = jwe;
	for (i = 0; jwe[i] != '\0'; i++)
		if (jwe[i] == '.' && k < 4)
			p[++k] = jwe + i + 1;
	assert_int_equal(k, 4);
	p[5] = jwe + strlen(jwe) + 1;
	w = o;
	for (k = 0; k < 5; k++) {
		size_t n = k == idx ? strlen(part) : (size_t)(p[k + 1] - p[k] - 1);

		memcpy(w, k == idx ? part : p[k], n);
		w += n;
		*w++ = k < 4 ? '.' : '\0';
	}
	return o;
}

/* Part idx of jwe (malloc'ed). */
static char *
part_of(const char *jwe, int idx)
{
	const char *s = jwe, *e;
	char *o;
	int k;

	for (k = 0; k < idx; k++) {
		s = strchr(s, '.');
		assert_non_null(s);
		s++;
	}
	e = strchr(s, '.');
	if (e == NULL)
		e = s + strlen(s);
	o = strndup(s, (size_t)(e - s));
	assert_non_null(o);
	return o;
}

static int
dec(EVP_PKEY *k, const char *jwe)
{
	uint8_t *pt = NULL;
	size_t n = 0;
	int r = jwe_decrypt_ecdhes(k, jwe, strlen(jwe), &pt, &n);

	if (r == 0) {
		assert_non_null(pt);
		OPENSSL_secure_clear_free(pt, n);
	} else {
		assert_null(pt);
	}
	return r;
}

/* Decrypt what forge makes of header `hdr` (no apu/apv), free it, the result. */
static int
dec_hdr(EVP_PKEY *k, const char *hdr)
{
	char *j = forge(k, hdr, NULL, 0, NULL, 0, "{\"secret\":1}");
	int r = dec(k, j);

	free(j);
	return r;
}

/* ---- tests ---- */

static void
test_vectors(void **state)
{
	json_t *b = binding(), *want, *got;
	EVP_PKEY *k = priv_from_jwk(json_object_get(b, "tee_private_jwk"));
	size_t n, pn, tn, ptl = 0;
	char *jwe = (char *)ts_read_vector("protocol/secret.jwe", &n);
	char *plain = (char *)ts_read_vector("protocol/secret.plain.json", &pn);
	char *bad = (char *)ts_read_vector("protocol/secret.tampered-tag.jwe", &tn);
	uint8_t *pt = NULL;

	(void)state;
	while (n > 0 && (jwe[n - 1] == '\n' || jwe[n - 1] == '\r'))
		n--;
	while (tn > 0 && (bad[tn - 1] == '\n' || bad[tn - 1] == '\r'))
		tn--;
	assert_int_equal(jwe_decrypt_ecdhes(k, jwe, n, &pt, &ptl), 0);
	want = json_loadb(plain, pn, 0, NULL);
	got = json_loadb((const char *)pt, ptl, 0, NULL);
	assert_non_null(want);
	assert_non_null(got);
	assert_true(json_equal(want, got));
	OPENSSL_secure_clear_free(pt, ptl);
	pt = NULL;
	/* the tampered copy differs in its tag only, and is refused for it */
	assert_int_equal(tn, n);
	assert_memory_equal(bad, jwe, n - 22);
	assert_memory_not_equal(bad + n - 22, jwe + n - 22, 22);
	assert_int_equal(jwe_decrypt_ecdhes(k, bad, tn, &pt, &ptl), -EBADMSG);
	assert_null(pt);
	/* a trailing newline is not part of a compact JWE */
	{
		char *nl = malloc(n + 2);

		assert_non_null(nl);
		memcpy(nl, jwe, n);
		memcpy(nl + n, "\n", 2);
		assert_int_equal(jwe_decrypt_ecdhes(k, nl, n + 1, &pt, &ptl), -EINVAL);
		free(nl);
	}
	json_decref(want);
	json_decref(got);
	json_decref(b);
	EVP_PKEY_free(k);
	free(jwe);
	free(plain);
	free(bad);
}

static void
test_roundtrip(void **state)
{
	EVP_PKEY *k = newkey(), *pub = NULL;
	json_t *jwk = NULL, *h;
	const char *msg = "{\"name\":\"k\",\"key\":\"c2VjcmV0\"}";
	char *a = NULL, *b = NULL, *hp;
	size_t al = 0, bl = 0, ptl = 0;
	uint8_t *pt = NULL, raw[512];

	(void)state;
	assert_int_equal(jwe_p256_public_jwk(k, &jwk), 0);
	assert_int_equal(json_object_size(jwk), 4);
	assert_null(json_object_get(jwk, "d"));
	assert_int_equal(jwe_p256_from_jwk(jwk, &pub), 0);
	assert_int_equal(EVP_PKEY_eq(k, pub), 1);
	assert_int_equal(jwe_encrypt_ecdhes(pub, "application/json", (const uint8_t *)msg, strlen(msg),
					    &a, &al), 0);
	assert_int_equal(strlen(a), al);
	assert_int_equal(jwe_encrypt_ecdhes(pub, NULL, (const uint8_t *)msg, strlen(msg), &b, &bl), 0);
	assert_string_not_equal(a, b); /* fresh ephemeral key and IV each time */
	assert_int_equal(jwe_decrypt_ecdhes(k, a, al, &pt, &ptl), 0);
	assert_int_equal(ptl, strlen(msg));
	assert_memory_equal(pt, msg, ptl);
	/* the plaintext comes back in the secure heap (initialised in main) */
	assert_true(CRYPTO_secure_allocated(pt));
	OPENSSL_secure_clear_free(pt, ptl);
	assert_int_equal(dec(k, b), 0);
	/* the header: exactly alg, enc, cty, epk */
	hp = part_of(a, 0);
	h = json_loadb((const char *)raw, unb64u(hp, raw, sizeof(raw)), 0, NULL);
	assert_non_null(h);
	assert_int_equal(json_object_size(h), 4);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "ECDH-ES");
	assert_string_equal(json_string_value(json_object_get(h, "enc")), "A256GCM");
	assert_string_equal(json_string_value(json_object_get(h, "cty")), "application/json");
	assert_int_equal(json_object_size(json_object_get(h, "epk")), 4);
	free(hp);
	hp = part_of(a, 1);
	assert_string_equal(hp, "");
	free(hp);
	json_decref(h);
	/* another recipient cannot open it */
	EVP_PKEY_free(pub);
	pub = newkey();
	assert_int_equal(dec(pub, a), -EBADMSG);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(k);
	json_decref(jwk);
	free(a);
	free(b);
}

static void
test_sizes(void **state)
{
	EVP_PKEY *k = newkey();
	uint8_t *big = calloc(1, JWE_PLAINTEXT_MAX + 1), *pt = NULL;
	char *j = NULL, *o, *hp;
	size_t jl = 0, ptl = 7;

	(void)state;
	assert_non_null(big);
	/* empty plaintext */
	assert_int_equal(jwe_encrypt_ecdhes(k, NULL, NULL, 0, &j, &jl), 0);
	assert_int_equal(jwe_decrypt_ecdhes(k, j, jl, &pt, &ptl), 0);
	assert_int_equal(ptl, 0);
	OPENSSL_secure_clear_free(pt, 1);
	free(j);
	/* the cap, and one byte over */
	memset(big, 'z', JWE_PLAINTEXT_MAX + 1);
	assert_int_equal(jwe_encrypt_ecdhes(k, NULL, big, JWE_PLAINTEXT_MAX, &j, &jl), 0);
	assert_true(jl <= JWE_COMPACT_MAX);
	assert_int_equal(jwe_decrypt_ecdhes(k, j, jl, &pt, &ptl), 0);
	assert_int_equal(ptl, JWE_PLAINTEXT_MAX);
	assert_memory_equal(pt, big, ptl);
	OPENSSL_secure_clear_free(pt, ptl);
	/* one more ciphertext character than the cap allows */
	hp = part_of(j, 3);
	jl = strlen(hp);
	hp = realloc(hp, jl + 5);
	assert_non_null(hp);
	memcpy(hp + jl, "AAAA", 5);
	o = with_part(j, 3, hp);
	assert_int_equal(dec(k, o), -EMSGSIZE);
	free(o);
	free(hp);
	free(j);
	j = NULL;
	assert_int_equal(jwe_encrypt_ecdhes(k, NULL, big, JWE_PLAINTEXT_MAX + 1, &j, &jl), -EMSGSIZE);
	assert_null(j);
	/* the whole text beyond its cap, whatever it is */
	o = malloc(JWE_COMPACT_MAX + 2);
	assert_non_null(o);
	memset(o, 'A', JWE_COMPACT_MAX + 1);
	o[JWE_COMPACT_MAX + 1] = '\0';
	assert_int_equal(dec(k, o), -EMSGSIZE);
	free(o);
	/* a header beyond its cap (valid JSON with a long "kid") */
	o = malloc(JWE_HEADER_B64_MAX + 64);
	assert_non_null(o);
	(void)snprintf(o, JWE_HEADER_B64_MAX + 64, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"kid\":\"%0*d\",\"epk\":@EPK@}",
		       (int)(JWE_HEADER_B64_MAX / 4 * 3 - 200), 0);
	assert_int_equal(dec_hdr(k, o), 0); /* just under: accepted */
	(void)snprintf(o, JWE_HEADER_B64_MAX + 64, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"kid\":\"%0*d\",\"epk\":@EPK@}",
		       (int)(JWE_HEADER_B64_MAX / 4 * 3), 0);
	assert_int_equal(dec_hdr(k, o), -EMSGSIZE);
	free(o);
	free(big);
	EVP_PKEY_free(k);
}

static void
test_interop_cjose(void **state)
{
	EVP_PKEY *k = newkey(), *pub = NULL;
	json_t *jwk = NULL;
	cjose_err ce;
	cjose_jwk_t *cj, *cpriv;
	cjose_header_t *h;
	cjose_jwe_t *e;
	char *text, *ser, *mine = NULL, *d;
	const char *msg = "interop";
	uint8_t *pt = NULL, *cpt, db[32];
	size_t ptl = 0, ml = 0, cl = 0;

	(void)state;
	/* cjose encrypts to our key; we decrypt */
	assert_int_equal(jwe_p256_public_jwk(k, &jwk), 0);
	text = json_dumps(jwk, JSON_COMPACT);
	cj = cjose_jwk_import(text, strlen(text), &ce);
	assert_non_null(cj);
	h = cjose_header_new(&ce);
	assert_true(cjose_header_set(h, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ECDH_ES, &ce));
	assert_true(cjose_header_set(h, CJOSE_HDR_ENC, CJOSE_HDR_ENC_A256GCM, &ce));
	e = cjose_jwe_encrypt(cj, h, (const uint8_t *)msg, strlen(msg), &ce);
	assert_non_null(e);
	ser = cjose_jwe_export(e, &ce);
	assert_int_equal(jwe_decrypt_ecdhes(k, ser, strlen(ser), &pt, &ptl), 0);
	assert_int_equal(ptl, strlen(msg));
	assert_memory_equal(pt, msg, ptl);
	OPENSSL_secure_clear_free(pt, ptl);
	cjose_get_dealloc()(ser);
	cjose_jwe_release(e);
	cjose_header_release(h);
	cjose_jwk_release(cj);
	free(text);
	/* we encrypt; cjose decrypts with the private JWK */
	assert_int_equal(jwe_p256_from_jwk(jwk, &pub), 0);
	assert_int_equal(jwe_encrypt_ecdhes(pub, "application/json", (const uint8_t *)msg, strlen(msg),
					    &mine, &ml), 0);
	{
		BIGNUM *bn = NULL;

		assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &bn), 1);
		assert_int_equal(BN_bn2binpad(bn, db, 32), 32);
		BN_clear_free(bn);
	}
	d = b64u(db, 32);
	assert_int_equal(json_object_set_new(jwk, "d", json_string(d)), 0);
	text = json_dumps(jwk, JSON_COMPACT);
	cpriv = cjose_jwk_import(text, strlen(text), &ce);
	assert_non_null(cpriv);
	e = cjose_jwe_import(mine, ml, &ce);
	assert_non_null(e);
	cpt = cjose_jwe_decrypt(e, cpriv, &cl, &ce);
	assert_non_null(cpt);
	assert_int_equal(cl, strlen(msg));
	assert_memory_equal(cpt, msg, cl);
	cjose_get_dealloc()(cpt);
	cjose_jwe_release(e);
	cjose_jwk_release(cpriv);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	free(d);
	free(mine);
	json_decref(jwk);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(k);
}

static void
test_forge_and_partyinfo(void **state)
{
	EVP_PKEY *k = newkey();
	const uint8_t apu[] = "Alice", apv[] = "Bob";
	uint8_t long_apu[JWE_PARTYINFO_MAX + 1];
	char *j, hdr[1024], *lb;

	(void)state;
	/* the forger makes what jwe.c accepts */
	assert_int_equal(dec_hdr(k, STD_HDR), 0);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"kid\":\"x\",\"cty\":\"a\","
				    "\"epk\":@EPK@}"), 0);
	/* apu/apv in the header enter the KDF (RFC 7518 §4.6.2) */
	j = forge(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apu\":\"QWxpY2U\",\"apv\":\"Qm9i\","
		     "\"epk\":@EPK@}", apu, 5, apv, 3, "{}");
	assert_int_equal(dec(k, j), 0);
	free(j);
	/* … so a header naming them over a key agreed without them fails */
	j = forge(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apu\":\"QWxpY2U\",\"epk\":@EPK@}", NULL,
		  0, NULL, 0, "{}");
	assert_int_equal(dec(k, j), -EBADMSG);
	free(j);
	j = forge(k, STD_HDR, NULL, 0, apv, 3, "{}");
	assert_int_equal(dec(k, j), -EBADMSG);
	free(j);
	/* the longest apu accepted, one byte more, and malformed ones */
	memset(long_apu, 'u', sizeof(long_apu));
	lb = b64u(long_apu, JWE_PARTYINFO_MAX);
	(void)snprintf(hdr, sizeof(hdr), "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apu\":\"%s\",\"epk\":@EPK@}", lb);
	j = forge(k, hdr, long_apu, JWE_PARTYINFO_MAX, NULL, 0, "{}");
	assert_int_equal(dec(k, j), 0);
	free(j);
	free(lb);
	lb = b64u(long_apu, JWE_PARTYINFO_MAX + 1);
	(void)snprintf(hdr, sizeof(hdr), "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apu\":\"%s\",\"epk\":@EPK@}", lb);
	assert_int_equal(dec_hdr(k, hdr), -EMSGSIZE);
	free(lb);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apu\":5,\"epk\":@EPK@}"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apv\":\"QW=\",\"epk\":@EPK@}"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"apv\":\"Q\",\"epk\":@EPK@}"), -EINVAL);
	EVP_PKEY_free(k);
}

static void
test_header_rejects(void **state)
{
	EVP_PKEY *k = newkey();

	(void)state;
	/* alg */
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES+A256KW\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"RSA-OAEP\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ecdh-es\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"none\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":1,\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -EINVAL);
	/* enc */
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A128GCM\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256CBC-HS512\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"epk\":@EPK@}"), -EINVAL);
	/* zip and crit, whatever their value */
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"zip\":\"DEF\",\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"zip\":null,\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"crit\":[\"exp\"],\"exp\":1,\"epk\":@EPK@}"), -ENOTSUP);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"crit\":[],\"epk\":@EPK@}"), -ENOTSUP);
	/* JSON: duplicates, not an object, not JSON, trailing bytes */
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":@EPK@}"), -EINVAL);
	assert_int_equal(dec_hdr(k, "[\"ECDH-ES\",\"A256GCM\",@EPK@]"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":@EPK@"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":@EPK@}x"), -EINVAL);
	EVP_PKEY_free(k);
}

static void
test_epk_rejects(void **state)
{
	EVP_PKEY *k = newkey(), *other = newkey();
	char *x, *y, hdr[512], bad[64];
	uint8_t yb[33];

	(void)state;
	xy(other, &x, &y);
#define EPK_HDR(...) (snprintf(hdr, sizeof(hdr), "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":" __VA_ARGS__), hdr)
	/* a well-formed epk of another key decrypts to garbage: the tag says so */
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", x, y)), -EBADMSG);
	/* absent, not an object */
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\"}"), -EINVAL);
	assert_int_equal(dec_hdr(k, "{\"alg\":\"ECDH-ES\",\"enc\":\"A256GCM\",\"epk\":\"key\"}"), -EINVAL);
	/* kty, crv */
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"RSA\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", x, y)), -ENOTSUP);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"}}", x, y)), -ENOTSUP);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"%s\"}}", x)), -ENOTSUP);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", x, y)), -EINVAL);
	/* a private key is never sent */
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"d\":\"%s\"}}", x, y, x)), -EINVAL);
	/* coordinates: missing, not strings, 31 and 33 bytes, padded, bad characters */
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\"}}", x)), -EINVAL);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":7,\"y\":\"%s\"}}", y)), -EINVAL);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.42s\",\"y\":\"%s\"}}", x, y)), -EINVAL);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%sAA\",\"y\":\"%s\"}}", x, y)), -EINVAL);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s=\",\"y\":\"%s\"}}", x, y)), -EINVAL);
	(void)snprintf(bad, sizeof(bad), "%s", x);
	bad[5] = '+';
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", bad, y)), -EINVAL);
	/* 43 characters carry 258 bits: the two unused ones must be zero */
	(void)snprintf(bad, sizeof(bad), "%s", x);
	bad[42] = other_spelling(bad[42]);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", bad, y)), -EINVAL);
	/* a point off the curve: y + 1, and (0, 0) */
	assert_int_equal(unb64u(y, yb, sizeof(yb)), 32);
	yb[31] ^= 1;
	free(y);
	y = b64u(yb, 32);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}", x, y)), -EINVAL);
	assert_int_equal(dec_hdr(k, EPK_HDR("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}",
					    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
					    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")), -EINVAL);
#undef EPK_HDR
	free(x);
	free(y);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
}

static void
test_structure_rejects(void **state)
{
	EVP_PKEY *k = newkey(), *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	char *j = forge(k, STD_HDR, NULL, 0, NULL, 0, "{\"secret\":1}"), *o, *p, *q;
	uint8_t *pt = NULL;
	size_t ptl = 0;

	(void)state;
	assert_int_equal(dec(k, j), 0);
	/* parts: four, six, an encrypted key, an empty header */
	p = strrchr(j, '.');
	*p = '\0';
	assert_int_equal(dec(k, j), -EINVAL);
	*p = '.';
	o = malloc(strlen(j) + 3);
	assert_non_null(o);
	(void)snprintf(o, strlen(j) + 3, "%s.", j);
	assert_int_equal(dec(k, o), -EINVAL);
	(void)snprintf(o, strlen(j) + 3, "%s.x", j);
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	o = with_part(j, 1, "AAAA");
	assert_int_equal(dec(k, o), -ENOTSUP);
	free(o);
	o = with_part(j, 0, "");
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	/* IV of 11 and 13 bytes, tag of 15 and 17 */
	o = with_part(j, 2, "AAAAAAAAAAAAAAA");
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	o = with_part(j, 2, "AAAAAAAAAAAAAAAAAA");
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	o = with_part(j, 4, "AAAAAAAAAAAAAAAAAAAA");
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	o = with_part(j, 4, "AAAAAAAAAAAAAAAAAAAAAAA");
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	/* base64url: padding, the standard alphabet, a length no bytes have,
	 * non-zero unused bits (the tag's last character carries four) */
	p = part_of(j, 3);
	q = malloc(strlen(p) + 3);
	assert_non_null(q);
	(void)snprintf(q, strlen(p) + 3, "%s=", p);
	o = with_part(j, 3, q);
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	(void)snprintf(q, strlen(p) + 3, "%sA", p);
	if (strlen(q) % 4 == 1) {
		o = with_part(j, 3, q);
		assert_int_equal(dec(k, o), -EINVAL);
		free(o);
	}
	(void)snprintf(q, strlen(p) + 3, "%s", p);
	q[0] = q[0] == '+' ? '/' : '+';
	o = with_part(j, 3, q);
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	free(q);
	free(p);
	p = part_of(j, 4);
	assert_int_equal(strlen(p), 22);
	p[21] = other_spelling(p[21]);
	o = with_part(j, 4, p);
	{
		uint8_t t1[17], t2[17];
		char *orig = part_of(j, 4);

		/* both spellings decode to the same 16 bytes under a lenient decoder */
		assert_int_equal(unb64u(orig, t1, sizeof(t1)), 16);
		assert_int_equal(unb64u(p, t2, sizeof(t2)), 16);
		assert_memory_equal(t1, t2, 16);
		assert_int_equal(dec(k, o), -EINVAL);
		free(orig);
	}
	free(o);
	free(p);
	p = part_of(j, 0);
	p[3] = '*';
	o = with_part(j, 0, p);
	assert_int_equal(dec(k, o), -EINVAL);
	free(o);
	free(p);
	/* no text, and a key that is not P-256 */
	assert_int_equal(jwe_decrypt_ecdhes(k, NULL, 0, &pt, &ptl), -EINVAL);
	assert_int_equal(jwe_decrypt_ecdhes(k, "", 0, &pt, &ptl), -EINVAL);
	assert_int_equal(dec(p384, j), -EINVAL);
	assert_int_equal(dec(NULL, j), -EINVAL);
	free(j);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(k);
}

/* Change character i of a base64url span to another that keeps it canonical. */
static void
flip(char *s, size_t i)
{
	s[i] = s[i] == 'A' ? 'B' : 'A';
}

static void
test_tamper(void **state)
{
	EVP_PKEY *k = newkey(), *other = newkey();
	char *j = forge(k, STD_HDR, NULL, 0, NULL, 0, "{\"secret\":\"0123456789abcdef\"}"), *o, *p;
	uint8_t raw[512];
	size_t n;
	int i;

	(void)state;
	assert_int_equal(dec(k, j), 0);
	for (i = 2; i <= 4; i++) { /* IV, ciphertext, tag */
		p = part_of(j, i);
		flip(p, 0);
		o = with_part(j, i, p);
		assert_int_equal(dec(k, o), -EBADMSG);
		free(o);
		free(p);
	}
	/* the header is the AAD: the same header with one more member, or the
	 * same members in another order, fails the tag */
	p = part_of(j, 0);
	n = unb64u(p, raw, sizeof(raw) - 16);
	free(p);
	assert_int_equal(raw[n - 1], '}');
	memcpy(raw + n - 1, ",\"k\":1}", 8);
	p = b64u(raw, n + 6);
	o = with_part(j, 0, p);
	assert_int_equal(dec(k, o), -EBADMSG);
	free(o);
	free(p);
	/* another recipient */
	assert_int_equal(dec(other, j), -EBADMSG);
	free(j);
	EVP_PKEY_free(other);
	EVP_PKEY_free(k);
}

static void
test_keys(void **state)
{
	EVP_PKEY *k = newkey(), *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), *pub = NULL;
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	json_t *j = NULL, *bad;
	char *out = NULL, cty[80];
	size_t ol = 0;
	int r;

	(void)state;
	assert_int_equal(jwe_p256_public_jwk(k, &j), 0);
	/* from_jwk: only EC P-256 with 32-byte coordinates */
	assert_int_equal(jwe_p256_from_jwk(NULL, &pub), -EINVAL);
	bad = json_deep_copy(j);
	json_object_set_new(bad, "kty", json_string("RSA"));
	assert_int_equal(jwe_p256_from_jwk(bad, &pub), -ENOTSUP);
	json_object_set_new(bad, "kty", json_string("EC"));
	json_object_set_new(bad, "crv", json_string("P-384"));
	assert_int_equal(jwe_p256_from_jwk(bad, &pub), -ENOTSUP);
	json_object_set_new(bad, "crv", json_string("P-256"));
	json_object_set_new(bad, "y", json_string("AAAA"));
	assert_int_equal(jwe_p256_from_jwk(bad, &pub), -EINVAL);
	json_object_del(bad, "y");
	assert_int_equal(jwe_p256_from_jwk(bad, &pub), -EINVAL);
	assert_null(pub);
	json_decref(bad);
	/* public_jwk, encrypt, decrypt: P-256 keys only */
	bad = NULL;
	assert_int_equal(jwe_p256_public_jwk(p384, &bad), -EINVAL);
	assert_int_equal(jwe_p256_public_jwk(rsa, &bad), -EINVAL);
	assert_null(bad);
	assert_int_equal(jwe_encrypt_ecdhes(p384, NULL, (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_int_equal(jwe_encrypt_ecdhes(rsa, NULL, (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_int_equal(jwe_encrypt_ecdhes(NULL, NULL, (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_int_equal(jwe_encrypt_ecdhes(k, NULL, NULL, 1, &out, &ol), -EINVAL);
	/* cty: a media type's characters, 1..64 of them */
	assert_int_equal(jwe_encrypt_ecdhes(k, "a\"b", (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_int_equal(jwe_encrypt_ecdhes(k, "a\\b", (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_int_equal(jwe_encrypt_ecdhes(k, "", (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	memset(cty, 'a', sizeof(cty));
	cty[65] = '\0';
	assert_int_equal(jwe_encrypt_ecdhes(k, cty, (const uint8_t *)"x", 1, &out, &ol), -EINVAL);
	assert_null(out);
	cty[64] = '\0';
	r = jwe_encrypt_ecdhes(k, cty, (const uint8_t *)"x", 1, &out, &ol);
	assert_int_equal(r, 0);
	assert_int_equal(dec(k, out), 0);
	free(out);
	json_decref(j);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(k);
}

static void
test_strerror(void **state)
{
	const int codes[] = { 0, -EINVAL, -ENOTSUP, -EMSGSIZE, -EBADMSG, -ENOMEM, -EIO };
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		for (j = 0; j < i; j++)
			assert_string_not_equal(jwe_strerror(codes[i]), jwe_strerror(codes[j]));
	assert_string_equal(jwe_strerror(-E2BIG), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_interop_cjose),
		cmocka_unit_test(test_forge_and_partyinfo),
		cmocka_unit_test(test_header_rejects),
		cmocka_unit_test(test_epk_rejects),
		cmocka_unit_test(test_structure_rejects),
		cmocka_unit_test(test_tamper),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_strerror),
	};

	ts_require_vectors();
	/* room for the largest plaintext (test_sizes) */
	if (CRYPTO_secure_malloc_init(1u << 20, 16) == 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
