/*
 * Secret material, attributes, payload and JWE (contract in secret.h).
 */
#include "provision/secret.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/jwe.h"
#include "provision/util.h"

/* jansson's iterators take a non-const object; they do not modify it. */
static json_t *
unconst(const json_t *j)
{
	union {
		const json_t *c;
		json_t *m;
	} u = { .c = j };

	return u.m;
}

static const struct {
	const char *name;
	int bits;         /* RSA modulus / EC field size */
	const char *curve; /* EC only */
} types[] = {
	{ "aes256", 256, NULL },  { "p256", 256, "P-256" },  { "p384", 384, "P-384" },
	{ "rsa2048", 2048, NULL }, { "rsa3072", 3072, NULL }, { "rsa4096", 4096, NULL },
	{ "opaque", 0, NULL },
};

static int
type_index(const char *t)
{
	size_t i;

	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (t != NULL && strcmp(types[i].name, t) == 0)
			return (int)i;
	return -1;
}

bool
secret_type_known(const char *type)
{
	return type_index(type) >= 0;
}

static bool
is_ec(const char *t)
{
	return t[0] == 'p';
}

static bool
is_rsa(const char *t)
{
	return strncmp(t, "rsa", 3) == 0;
}

/* PKCS#8 DER of pkey into the secure heap. */
static int
to_pkcs8(EVP_PKEY *pkey, uint8_t **mat, size_t *len)
{
	PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
	unsigned char *der = NULL;
	int n;
	uint8_t *buf;

	if (p8 == NULL)
		return -1;
	n = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
	PKCS8_PRIV_KEY_INFO_free(p8);
	if (n <= 0)
		return -1;
	if ((buf = OPENSSL_secure_malloc((size_t)n)) == NULL) {
		OPENSSL_clear_free(der, (size_t)n);
		return -1;
	}
	memcpy(buf, der, (size_t)n);
	OPENSSL_clear_free(der, (size_t)n);
	*mat = buf;
	*len = (size_t)n;
	return 0;
}

/* Does pkey match the type (curve or modulus size)? */
static bool
key_matches(EVP_PKEY *pkey, int ti)
{
	char grp[32];
	size_t gl = 0;

	if (is_rsa(types[ti].name))
		return EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) == types[ti].bits;
	return EVP_PKEY_is_a(pkey, "EC") &&
	       EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp),
					      &gl) == 1 &&
	       strcmp(grp, types[ti].bits == 256 ? "prime256v1" : "secp384r1") == 0;
}

int
secret_material(const char *type, const uint8_t *in, size_t inlen, uint8_t **mat, size_t *len,
		char *why, size_t whylen)
{
	int ti = type_index(type);
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	const unsigned char *p;
	uint8_t *buf = NULL;
	size_t n;
	int r = -1;

	if (ti < 0) {
		(void)snprintf(why, whylen, "unknown type (aes256, p256, p384, rsa2048, rsa3072, "
					    "rsa4096, opaque)");
		return -1;
	}
	if (strcmp(type, "aes256") == 0 || strcmp(type, "opaque") == 0) {
		n = in ? inlen : 32;
		if (strcmp(type, "aes256") == 0 && n != 32) {
			(void)snprintf(why, whylen, "an aes256 value is exactly 32 bytes, not %zu", n);
			goto out;
		}
		if (n == 0 || n > SECRET_OPAQUE_MAX) {
			(void)snprintf(why, whylen, "an opaque value is 1..%u bytes", SECRET_OPAQUE_MAX);
			goto out;
		}
		if ((buf = OPENSSL_secure_malloc(n)) == NULL)
			goto out;
		if (in != NULL)
			memcpy(buf, in, n);
		else if (RAND_priv_bytes(buf, (int)n) != 1)
			goto out;
		*mat = buf;
		*len = n;
		buf = NULL;
		r = 0;
		goto out;
	}
	if (in == NULL) {
		pkey = is_rsa(type) ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)types[ti].bits)
				    : EVP_PKEY_Q_keygen(NULL, NULL, "EC",
							types[ti].bits == 256 ? "P-256" : "P-384");
	} else if (inlen > 11 && memcmp(in, "-----BEGIN ", 11) == 0) {
		if ((bio = BIO_new_mem_buf(in, (int)inlen)) != NULL)
			pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	} else {
		p = in;
		pkey = d2i_AutoPrivateKey(NULL, &p, (long)inlen);
		if (pkey != NULL && p != in + inlen) {
			EVP_PKEY_free(pkey);
			pkey = NULL;
		}
	}
	if (pkey == NULL) {
		(void)snprintf(why, whylen, "%s", in ? "value is not a PEM or DER private key"
						     : "key generation failed");
		goto out;
	}
	if (!key_matches(pkey, ti)) {
		(void)snprintf(why, whylen, "the private key is not of type %s", type);
		goto out;
	}
	if (to_pkcs8(pkey, mat, len) != 0) {
		(void)snprintf(why, whylen, "cannot encode the key");
		goto out;
	}
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, n);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return r;
}

static const char *const usage_names[] = { "sign", "verify", "encrypt", "decrypt", "wrap",
					   "unwrap", "mac", "derive", NULL };

int
secret_attrs(const char *type, const json_t *in, json_t **out, char *why, size_t whylen)
{
	json_t *o = NULL, *u, *e;
	const char *k;
	json_t *v;
	size_t i, j;
	int r = -1;

	if (in != NULL && !json_is_object(in)) {
		(void)snprintf(why, whylen, "attributes must be an object");
		return -1;
	}
	if (in != NULL)
		json_object_foreach(unconst(in), k, v)
			if (strcmp(k, "usages") && strcmp(k, "exportable") && strcmp(k, "persist") &&
			    strcmp(k, "access") && strcmp(k, "require_attestation")) {
				(void)snprintf(why, whylen, "attribute \"%.64s\": unknown", k);
				return -1;
			}
	u = json_object_get(in, "usages");
	if (u == NULL) {
		u = strcmp(type, "aes256") == 0 ? json_pack("[s,s]", "encrypt", "decrypt")
		    : strcmp(type, "opaque") == 0 ? json_array()
		    : is_ec(type) ? json_pack("[s,s]", "sign", "verify")
				  : json_pack("[s,s]", "sign", "verify");
	} else {
		if (!json_is_array(u) || json_array_size(u) > 8) {
			(void)snprintf(why, whylen, "attribute \"usages\": an array of usage names");
			return -1;
		}
		json_array_foreach(u, i, e) {
			for (j = 0; usage_names[j] != NULL; j++)
				if (json_is_string(e) && strcmp(json_string_value(e), usage_names[j]) == 0)
					break;
			if (usage_names[j] == NULL) {
				(void)snprintf(why, whylen,
					       "attribute \"usages\"[%zu]: not one of sign, verify, "
					       "encrypt, decrypt, wrap, unwrap, mac, derive",
					       i);
				return -1;
			}
		}
		u = json_deep_copy(u);
	}
	if ((o = json_object()) == NULL || u == NULL ||
	    json_object_set_new(o, "usages", u) != 0)
		goto out;
	v = json_object_get(in, "exportable");
	if (v != NULL && !json_is_boolean(v)) {
		(void)snprintf(why, whylen, "attribute \"exportable\": true or false");
		goto out;
	}
	if (json_is_true(v) && strcmp(type, "opaque") != 0) {
		(void)snprintf(why, whylen, "attribute \"exportable\": only opaque secrets can be "
					    "exportable");
		goto out;
	}
	(void)json_object_set_new(o, "exportable", json_boolean(json_is_true(v)));
	v = json_object_get(in, "persist");
	if (v != NULL && !json_is_boolean(v)) {
		(void)snprintf(why, whylen, "attribute \"persist\": true or false");
		goto out;
	}
	(void)json_object_set_new(o, "persist", json_boolean(v == NULL || json_is_true(v)));
	v = json_object_get(in, "access");
	if (v != NULL && !json_is_object(v) && !json_is_null(v)) {
		(void)snprintf(why, whylen, "attribute \"access\": an object (vhsmd access policy) "
					    "or null");
		goto out;
	}
	(void)json_object_set_new(o, "access", v ? json_deep_copy(v) : json_null());
	v = json_object_get(in, "require_attestation");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 0 ||
			  json_integer_value(v) > 0xffffffffLL)) {
		(void)snprintf(why, whylen, "attribute \"require_attestation\": seconds, 0..2^32-1 "
					    "(0: none)");
		goto out;
	}
	(void)json_object_set_new(o, "require_attestation",
				  json_integer(v ? json_integer_value(v) : 0));
	*out = o;
	o = NULL;
	r = 0;
out:
	json_decref(o);
	return r;
}

/* base64url of a big number padded to `size` bytes. */
static json_t *
bn_b64(EVP_PKEY *pkey, const char *param, size_t size)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	char *s;
	json_t *j = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1)
		return NULL;
	if (size == 0)
		size = (size_t)BN_num_bytes(bn);
	if (size > sizeof(buf) || (n = BN_bn2binpad(bn, buf, (int)size)) < 0)
		goto out;
	if ((s = prov_b64url_encode(buf, (size_t)n)) != NULL) {
		j = json_string(s);
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	BN_clear_free(bn);
	return j;
}

/* The private JWK of a PKCS#8 key. */
/*
 * The stored PKCS#8 as an EVP_PKEY.  The type is known: naming it spares
 * OpenSSL 3.0 trying every decoder (~4x the cost).  And building a decoder
 * context costs ~60-80 us, decoding with one ~15 us, so one is kept per type
 * and shared by the workers under a mutex (it holds no key material between
 * calls).  What it cannot decode goes to d2i_PrivateKey_ex.
 */
static EVP_PKEY *
decode_pkcs8(bool ec, const uint8_t *der, size_t len)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static OSSL_DECODER_CTX *dc[2];
	static EVP_PKEY *slot[2]; /* where dc[i] stores what it decoded */
	const unsigned char *p = der;
	size_t left = len, i = ec ? 0 : 1;
	EVP_PKEY *pk = NULL;

	(void)pthread_mutex_lock(&lock);
	if (dc[i] == NULL)
		dc[i] = OSSL_DECODER_CTX_new_for_pkey(&slot[i], "DER", "PrivateKeyInfo",
						      ec ? "EC" : "RSA", EVP_PKEY_KEYPAIR, NULL, NULL);
	slot[i] = NULL;
	if (dc[i] != NULL && OSSL_DECODER_from_data(dc[i], &p, &left) == 1)
		pk = slot[i];
	else
		EVP_PKEY_free(slot[i]);
	slot[i] = NULL;
	(void)pthread_mutex_unlock(&lock);
	if (pk == NULL) {
		p = der;
		pk = d2i_PrivateKey_ex(ec ? EVP_PKEY_EC : EVP_PKEY_RSA, NULL, &p, (long)len, NULL, NULL);
	}
	return pk;
}

/*
 * Private JWKs already built, by SHA-256 of the type and PKCS#8 they come
 * from.  Turning a PKCS#8 into a JWK costs OpenSSL 3.0 a decode (a new EC
 * group, ASN.1, key management: ≈ 0.1 ms) on every release; a key released
 * again is served from here.  The entries are derived from material this
 * process decrypts on each release anyway and holds with the master key, so
 * keeping them adds no exposure that memory access to provd does not
 * already give; they live in the secure heap (never in a core dump), are
 * wiped when evicted and by secret_cache_clear(), and are bounded.  Keyed by
 * content, not by name and version, so a secret deleted and created again
 * under the same name can never get the old key.
 */
#define JWK_CACHE_MAX 128u

static struct {
	pthread_mutex_t lock;
	struct jwk_entry {
		uint8_t id[32];
		char *text; /* secure heap, NUL-terminated */
		size_t len;
		unsigned long used;
	} e[JWK_CACHE_MAX];
	unsigned long tick;
} jwk_cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
jwk_entry_wipe(struct jwk_entry *e)
{
	if (e->text != NULL)
		OPENSSL_secure_clear_free(e->text, e->len + 1);
	memset(e, 0, sizeof(*e));
}

void
secret_cache_clear(void)
{
	size_t i;

	(void)pthread_mutex_lock(&jwk_cache.lock);
	for (i = 0; i < JWK_CACHE_MAX; i++)
		jwk_entry_wipe(&jwk_cache.e[i]);
	(void)pthread_mutex_unlock(&jwk_cache.lock);
}

static int
jwk_cache_id(const store_item *it, uint8_t id[32])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = c != NULL && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(c, it->type, strlen(it->type) + 1) == 1 &&
		 EVP_DigestUpdate(c, it->material, it->material_len) == 1 &&
		 EVP_DigestFinal_ex(c, id, &n) == 1 && n == 32;

	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* The cached JWK for id, parsed (NULL if none). */
static json_t *
jwk_cache_get(const uint8_t id[32])
{
	json_t *j = NULL;
	size_t i;

	(void)pthread_mutex_lock(&jwk_cache.lock);
	for (i = 0; i < JWK_CACHE_MAX; i++) {
		struct jwk_entry *e = &jwk_cache.e[i];

		if (e->text != NULL && CRYPTO_memcmp(e->id, id, 32) == 0) {
			e->used = ++jwk_cache.tick;
			j = json_loadb(e->text, e->len, 0, NULL);
			break;
		}
	}
	(void)pthread_mutex_unlock(&jwk_cache.lock);
	return j;
}

/* Keep jwk under id, in place of the least recently used entry if full. */
static void
jwk_cache_put(const uint8_t id[32], const json_t *jwk)
{
	size_t n = json_dumpb(jwk, NULL, 0, JSON_COMPACT), i, victim = 0;
	char *text;

	if (n == 0 || (text = OPENSSL_secure_malloc(n + 1)) == NULL)
		return;
	if (json_dumpb(jwk, text, n, JSON_COMPACT) != n) {
		OPENSSL_secure_clear_free(text, n + 1);
		return;
	}
	text[n] = '\0';
	(void)pthread_mutex_lock(&jwk_cache.lock);
	for (i = 0; i < JWK_CACHE_MAX; i++) {
		if (jwk_cache.e[i].text == NULL) {
			victim = i;
			break;
		}
		if (jwk_cache.e[i].used < jwk_cache.e[victim].used)
			victim = i;
	}
	jwk_entry_wipe(&jwk_cache.e[victim]);
	memcpy(jwk_cache.e[victim].id, id, 32);
	jwk_cache.e[victim].text = text;
	jwk_cache.e[victim].len = n;
	jwk_cache.e[victim].used = ++jwk_cache.tick;
	(void)pthread_mutex_unlock(&jwk_cache.lock);
}

static json_t *
key_jwk(const store_item *it, int ti)
{
	EVP_PKEY *pkey;
	json_t *j = NULL;
	size_t fs = (size_t)(types[ti].bits + 7) / 8;
	uint8_t id[32];
	bool have_id = jwk_cache_id(it, id) == 0;

	if (have_id && (j = jwk_cache_get(id)) != NULL)
		return j;
	if ((pkey = decode_pkcs8(is_ec(it->type), it->material, it->material_len)) == NULL)
		return NULL;
	if (is_ec(it->type))
		j = json_pack("{s:s, s:s, s:o*, s:o*, s:o*}", "kty", "EC", "crv", types[ti].curve, "x",
			      bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_X, fs), "y",
			      bn_b64(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, fs), "d",
			      bn_b64(pkey, OSSL_PKEY_PARAM_PRIV_KEY, fs));
	else
		j = json_pack("{s:s, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*}", "kty", "RSA",
			      "n", bn_b64(pkey, OSSL_PKEY_PARAM_RSA_N, 0), "e",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_E, 0), "d",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_D, 0), "p",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, 0), "q",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, 0), "dp",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT1, 0), "dq",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_EXPONENT2, 0), "qi",
			      bn_b64(pkey, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0));
	EVP_PKEY_free(pkey);
	if (j != NULL && json_object_size(j) != (is_ec(it->type) ? 5u : 9u)) {
		json_decref(j);
		j = NULL;
	}
	if (j != NULL && have_id)
		jwk_cache_put(id, j);
	return j;
}

int
secret_payload(const store_item *it, char **text, size_t *len)
{
	int ti = type_index(it->type);
	json_t *o = NULL, *attrs = NULL, *jwk = NULL;
	char *k = NULL, *buf = NULL;
	size_t n = 0;
	int r = -1;

	if (ti < 0 || (attrs = json_loads(it->attrs, 0, NULL)) == NULL ||
	    (k = prov_b64url_encode(it->material, it->material_len)) == NULL)
		goto out;
	o = json_pack("{s:s, s:I, s:s, s:s}", "name", it->name, "version", (json_int_t)it->version,
		      "type", it->type, "key", k);
	if (o == NULL || json_object_update(o, attrs) != 0)
		goto out;
	if (strcmp(it->type, "aes256") == 0)
		jwk = json_pack("{s:s, s:s}", "kty", "oct", "k", k);
	else if (strcmp(it->type, "opaque") == 0) {
		char *b = prov_b64_encode(it->material, it->material_len);

		if (b == NULL || json_object_set_new(o, "value", json_string(b)) != 0) {
			if (b != NULL)
				OPENSSL_cleanse(b, strlen(b));
			free(b);
			goto out;
		}
		OPENSSL_cleanse(b, strlen(b));
		free(b);
	} else if ((jwk = key_jwk(it, ti)) == NULL)
		goto out;
	if (jwk != NULL && json_object_set_new(o, "jwk", jwk) != 0) {
		jwk = NULL;
		goto out;
	}
	jwk = NULL;
	n = json_dumpb(o, NULL, 0, JSON_COMPACT);
	if (n == 0 || (buf = OPENSSL_secure_malloc(n + 1)) == NULL ||
	    json_dumpb(o, buf, n, JSON_COMPACT) != n)
		goto out;
	buf[n] = '\0';
	*text = buf;
	*len = n;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, n + 1);
	if (k != NULL) {
		OPENSSL_cleanse(k, strlen(k));
		free(k);
	}
	json_decref(jwk);
	json_decref(attrs);
	json_decref(o);
	return r;
}

int
secret_jwe(EVP_PKEY *to, const uint8_t *pt, size_t len, char **jwe)
{
	size_t tl = 0;

	/* src/common/jwe.c, not cjose: half the cost per release (docs/jwe.md). */
	if (jwe_encrypt_ecdhes(to, "application/json", pt, len, jwe, &tl) != 0)
		return -1;
	return 0;
}
