/*
 * Unit tests: every key type and operation of src/vhsm/keys.c, each checked
 * against OpenSSL's own computation with the same key (never against itself
 * alone), plus tampering and misuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "vhsm/keys.h"

static const uint8_t msg[] = "the vHSM signs this message";

/* The key as OpenSSL sees it: from the exported private DER. */
static EVP_PKEY *
ossl_key(uint32_t type, const struct vk_material *m)
{
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	EVP_PKEY *pk;

	assert_int_equal(vk_export(type, m, &der, &len), 0);
	p = der;
	pk = d2i_AutoPrivateKey(NULL, &p, (long)len);
	assert_non_null(pk);
	OPENSSL_secure_clear_free(der, len);
	return pk;
}

static EVP_PKEY *
ossl_pub(const struct vk_material *m)
{
	uint8_t *der = NULL;
	size_t len = 0;
	const unsigned char *p;
	EVP_PKEY *pk;

	assert_int_equal(vk_public_der(m, &der, &len), 0);
	p = der;
	pk = d2i_PUBKEY(NULL, &p, (long)len);
	assert_non_null(pk);
	OPENSSL_free(der);
	return pk;
}

static const EVP_MD *
md_for(uint32_t hash, uint32_t type)
{
	switch (hash) {
	case VHSM_HASH_SHA256: return EVP_sha256();
	case VHSM_HASH_SHA384: return EVP_sha384();
	case VHSM_HASH_SHA512: return EVP_sha512();
	default: return type == VHSM_KEY_EC_P384 ? EVP_sha384() : EVP_sha256();
	}
}

/* OpenSSL verifies a DER/PSS/PKCS1/Ed25519 signature made by vk_sign. */
static int
ossl_verify(EVP_PKEY *pub, uint32_t type, uint32_t alg, uint32_t hash, const uint8_t *sig,
	    size_t sl)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int ok;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestVerifyInit(ctx, &pctx,
					      type == VHSM_KEY_ED25519 ? NULL : md_for(hash, type),
					      NULL, pub), 1);
	if (alg == VHSM_ALG_RSA_PSS || (alg == 0 && type >= VHSM_KEY_RSA2048)) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		/* salt = digest length: RSA_PSS_SALTLEN_DIGEST on the verifier too */
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	} else if (alg == VHSM_ALG_RSA_PKCS1) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
	}
	ok = EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* OpenSSL signs; returns a malloc'ed signature. */
static uint8_t *
ossl_sign(EVP_PKEY *priv, uint32_t type, uint32_t alg, uint32_t hash, size_t *sl)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *sig;

	assert_int_equal(EVP_DigestSignInit(ctx, &pctx,
					    type == VHSM_KEY_ED25519 ? NULL : md_for(hash, type),
					    NULL, priv), 1);
	if (alg == VHSM_ALG_RSA_PSS || (alg == 0 && type >= VHSM_KEY_RSA2048)) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
	} else if (alg == VHSM_ALG_RSA_PKCS1) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
	}
	assert_int_equal(EVP_DigestSign(ctx, NULL, sl, msg, sizeof(msg)), 1);
	sig = malloc(*sl);
	assert_non_null(sig);
	assert_int_equal(EVP_DigestSign(ctx, sig, sl, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);
	return sig;
}

/* Sign/verify both ways for one (type, alg, hash). */
static void
check_sig(uint32_t type, const struct vk_material *m, uint32_t alg, uint32_t hash)
{
	EVP_PKEY *pub = ossl_pub(m), *priv = ossl_key(type, m);
	uint8_t *sig = NULL, *osig;
	size_t sl = 0, osl = 0;

	assert_int_equal(vk_sign(type, m, alg, hash, msg, sizeof(msg), &sig, &sl), 0);
	if (alg == VHSM_ALG_ECDSA_RAW) {
		/* r || s → DER, then OpenSSL verifies. */
		size_t half = type == VHSM_KEY_EC_P384 ? 48 : 32;
		ECDSA_SIG *es = ECDSA_SIG_new();
		unsigned char *der = NULL;
		int dl;

		assert_int_equal(sl, 2 * half);
		assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)half, NULL),
						BN_bin2bn(sig + half, (int)half, NULL)), 1);
		dl = i2d_ECDSA_SIG(es, &der);
		assert_true(dl > 0);
		assert_true(ossl_verify(pub, type, alg, hash, der, (size_t)dl));
		OPENSSL_free(der);
		ECDSA_SIG_free(es);
	} else {
		assert_true(ossl_verify(pub, type, alg, hash, sig, sl));
		/* OpenSSL's signature verifies in the vHSM. */
		osig = ossl_sign(priv, type, alg, hash, &osl);
		assert_int_equal(vk_verify(type, m, alg, hash, msg, sizeof(msg), osig, osl), 0);
		osig[osl / 2] ^= 1;
		assert_int_equal(vk_verify(type, m, alg, hash, msg, sizeof(msg), osig, osl),
				 VHSM_E_BAD_SIGNATURE);
		free(osig);
	}
	/* Its own signature verifies; one flipped bit does not. */
	assert_int_equal(vk_verify(type, m, alg, hash, msg, sizeof(msg), sig, sl), 0);
	sig[sl - 1] ^= 0x80;
	assert_int_equal(vk_verify(type, m, alg, hash, msg, sizeof(msg), sig, sl),
			 VHSM_E_BAD_SIGNATURE);
	OPENSSL_free(sig);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(priv);
}

static void
test_ec_sign(void **state)
{
	uint32_t types[] = { VHSM_KEY_EC_P256, VHSM_KEY_EC_P384 };
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct vk_material m = { 0 };

		assert_int_equal(vk_generate(types[i], &m), 0);
		check_sig(types[i], &m, VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT);
		check_sig(types[i], &m, VHSM_ALG_ECDSA_DER, VHSM_HASH_SHA256);
		check_sig(types[i], &m, VHSM_ALG_ECDSA_DER, VHSM_HASH_SHA512);
		check_sig(types[i], &m, VHSM_ALG_ECDSA_RAW, VHSM_HASH_DEFAULT);
		/* RSA padding on an EC key is refused. */
		{
			uint8_t *s = NULL;
			size_t sl;

			assert_int_equal(vk_sign(types[i], &m, VHSM_ALG_RSA_PSS, 0, msg, sizeof(msg), &s, &sl),
					 VHSM_E_UNSUPPORTED);
			assert_null(s);
		}
		vk_material_clear(&m);
	}
}

static void
test_ed25519_sign(void **state)
{
	struct vk_material m = { 0 };
	uint8_t *s = NULL;
	size_t sl;

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_ED25519, &m), 0);
	check_sig(VHSM_KEY_ED25519, &m, VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT);
	check_sig(VHSM_KEY_ED25519, &m, VHSM_ALG_ED25519, VHSM_HASH_DEFAULT);
	assert_int_equal(vk_sign(VHSM_KEY_ED25519, &m, VHSM_ALG_ED25519, VHSM_HASH_SHA256, msg,
				 sizeof(msg), &s, &sl), VHSM_E_UNSUPPORTED);
	vk_material_clear(&m);
}

static void
test_rsa_sign_and_oaep(void **state)
{
	uint32_t types[] = { VHSM_KEY_RSA2048, VHSM_KEY_RSA3072, VHSM_KEY_RSA4096 };
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		struct vk_material m = { 0 };
		EVP_PKEY *pub, *priv;
		EVP_PKEY_CTX *pctx;
		uint8_t *ct = NULL, *pt = NULL, oct[512], opt[512];
		size_t ctl = 0, ptl = 0, octl = sizeof(oct), optl = sizeof(opt);

		assert_int_equal(vk_generate(types[i], &m), 0);
		pub = ossl_pub(&m);
		assert_int_equal(EVP_PKEY_get_bits(pub),
				 types[i] == VHSM_KEY_RSA2048 ? 2048 : types[i] == VHSM_KEY_RSA3072 ? 3072 : 4096);
		check_sig(types[i], &m, VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT);
		check_sig(types[i], &m, VHSM_ALG_RSA_PSS, VHSM_HASH_SHA384);
		check_sig(types[i], &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_SHA256);
		/* OAEP: OpenSSL encrypts, the vHSM decrypts, and back. */
		pctx = EVP_PKEY_CTX_new(pub, NULL);
		assert_int_equal(EVP_PKEY_encrypt_init(pctx), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
		assert_int_equal(EVP_PKEY_encrypt(pctx, oct, &octl, msg, sizeof(msg)), 1);
		EVP_PKEY_CTX_free(pctx);
		assert_int_equal(vk_decrypt(types[i], &m, 0, NULL, 0, oct, octl, &pt, &ptl), 0);
		assert_int_equal(ptl, sizeof(msg));
		assert_memory_equal(pt, msg, sizeof(msg));
		OPENSSL_clear_free(pt, ptl);
		oct[3] ^= 1;
		pt = NULL;
		assert_int_equal(vk_decrypt(types[i], &m, 0, NULL, 0, oct, octl, &pt, &ptl), VHSM_E_DECRYPT);
		assert_null(pt);
		assert_int_equal(vk_encrypt(types[i], &m, 1, VHSM_HASH_SHA384, NULL, 0, msg, sizeof(msg),
					    &ct, &ctl), 0);
		priv = ossl_key(types[i], &m);
		pctx = EVP_PKEY_CTX_new(priv, NULL);
		assert_int_equal(EVP_PKEY_decrypt_init(pctx), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha384()), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()), 1);
		assert_int_equal(EVP_PKEY_decrypt(pctx, opt, &optl, ct, ctl), 1);
		assert_int_equal(optl, sizeof(msg));
		assert_memory_equal(opt, msg, sizeof(msg));
		EVP_PKEY_CTX_free(pctx);
		OPENSSL_free(ct);
		EVP_PKEY_free(pub);
		EVP_PKEY_free(priv);
		vk_material_clear(&m);
	}
}

/* SHA-x(msg) into d; its length. */
static size_t
digest_of(uint32_t hash, uint8_t d[EVP_MAX_MD_SIZE])
{
	unsigned n = 0;

	assert_int_equal(EVP_Digest(msg, sizeof(msg), d, &n, md_for(hash, 0), NULL), 1);
	return n;
}

/* VHSM_HASH_PREHASHED: ECDSA over a caller's digest, checked by OpenSSL
 * against the same digest (EVP_PKEY_verify) and the message (DigestVerify). */
static void
test_prehashed_ecdsa(void **state)
{
	static const uint32_t types[] = { VHSM_KEY_EC_P256, VHSM_KEY_EC_P384 };
	static const uint32_t hashes[] = { VHSM_HASH_SHA256, VHSM_HASH_SHA384, VHSM_HASH_SHA512 };
	static const size_t bad[] = { 0, 1, 20, 31, 33, 47, 65, 128 };
	uint8_t d[EVP_MAX_MD_SIZE], big[128] = { 0 };
	size_t i, j, dl, sl, osl;
	uint8_t *sig, *osig;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct vk_material m = { 0 };
		EVP_PKEY *pub, *priv;
		EVP_PKEY_CTX *pc;

		assert_int_equal(vk_generate(types[i], &m), 0);
		pub = ossl_pub(&m);
		priv = ossl_key(types[i], &m);
		for (j = 0; j < 3; j++) {
			dl = digest_of(hashes[j], d);
			/* Flag alone (any 32/48/64-byte digest), DER. */
			sig = NULL;
			assert_int_equal(vk_sign(types[i], &m, VHSM_ALG_DEFAULT, VHSM_HASH_PREHASHED, d,
						 dl, &sig, &sl), 0);
			pc = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
			assert_int_equal(EVP_PKEY_verify_init(pc), 1);
			assert_int_equal(EVP_PKEY_verify(pc, sig, sl, d, dl), 1);
			EVP_PKEY_CTX_free(pc);
			assert_true(ossl_verify(pub, types[i], VHSM_ALG_ECDSA_DER, hashes[j], sig, sl));
			/* The ordinary (hashing) verify accepts it too, and the prehashed one. */
			assert_int_equal(vk_verify(types[i], &m, 0, hashes[j], msg, sizeof(msg), sig, sl), 0);
			assert_int_equal(vk_verify(types[i], &m, 0, VHSM_HASH_PREHASHED, d, dl, sig, sl), 0);
			d[0] ^= 1;
			assert_int_equal(vk_verify(types[i], &m, 0, VHSM_HASH_PREHASHED, d, dl, sig, sl),
					 VHSM_E_BAD_SIGNATURE);
			d[0] ^= 1;
			OPENSSL_free(sig);
			/* Flag | digest, raw r||s. */
			sig = NULL;
			assert_int_equal(vk_sign(types[i], &m, VHSM_ALG_ECDSA_RAW,
						 VHSM_HASH_PREHASHED | hashes[j], d, dl, &sig, &sl), 0);
			assert_int_equal(sl, types[i] == VHSM_KEY_EC_P384 ? 96u : 64u);
			assert_int_equal(vk_verify(types[i], &m, VHSM_ALG_ECDSA_RAW, hashes[j], msg,
						   sizeof(msg), sig, sl), 0);
			OPENSSL_free(sig);
			/* OpenSSL's signature over the digest verifies prehashed in the vHSM. */
			pc = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
			assert_int_equal(EVP_PKEY_sign_init(pc), 1);
			assert_int_equal(EVP_PKEY_sign(pc, NULL, &osl, d, dl), 1);
			osig = malloc(osl);
			assert_non_null(osig);
			assert_int_equal(EVP_PKEY_sign(pc, osig, &osl, d, dl), 1);
			EVP_PKEY_CTX_free(pc);
			assert_int_equal(vk_verify(types[i], &m, VHSM_ALG_ECDSA_DER,
						   VHSM_HASH_PREHASHED | hashes[j], d, dl, osig, osl), 0);
			free(osig);
		}
		/* Other lengths are refused, before any signing. */
		for (j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			sig = NULL;
			assert_int_equal(vk_sign(types[i], &m, 0, VHSM_HASH_PREHASHED, big, bad[j], &sig, &sl),
					 VHSM_E_ARGUMENT);
			assert_null(sig);
		}
		/* A named digest fixes the length. */
		sig = NULL;
		assert_int_equal(vk_sign(types[i], &m, 0, VHSM_HASH_PREHASHED | VHSM_HASH_SHA384, big, 32,
					 &sig, &sl), VHSM_E_ARGUMENT);
		assert_int_equal(vk_sign(types[i], &m, 0, VHSM_HASH_PREHASHED | 7u, big, 32, &sig, &sl),
				 VHSM_E_UNSUPPORTED);
		assert_int_equal(vk_sign(types[i], &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED, big, 32,
					 &sig, &sl), VHSM_E_UNSUPPORTED);
		assert_null(sig);
		EVP_PKEY_free(pub);
		EVP_PKEY_free(priv);
		vk_material_clear(&m);
	}
}

/* Ed25519 is not defined over a digest; symmetric keys do not sign. */
static void
test_prehashed_refused(void **state)
{
	struct vk_material m = { 0 };
	uint8_t d[32] = { 1 }, *sig = NULL;
	size_t sl;

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_ED25519, &m), 0);
	assert_int_equal(vk_sign(VHSM_KEY_ED25519, &m, 0, VHSM_HASH_PREHASHED, d, 32, &sig, &sl),
			 VHSM_E_UNSUPPORTED);
	assert_int_equal(vk_verify(VHSM_KEY_ED25519, &m, 0, VHSM_HASH_PREHASHED, d, 32, d, 32),
			 VHSM_E_UNSUPPORTED);
	assert_null(sig);
	vk_material_clear(&m);
	assert_int_equal(vk_generate(VHSM_KEY_AES256, &m), 0);
	assert_int_equal(vk_sign(VHSM_KEY_AES256, &m, 0, VHSM_HASH_PREHASHED, d, 32, &sig, &sl),
			 VHSM_E_USAGE);
	assert_null(sig);
	vk_material_clear(&m);
}

/* RSA PKCS#1 v1.5 over a caller's DigestInfo, and over a named digest;
 * RSA-PSS over a digest.  OpenSSL verifies them against the message. */
static void
test_prehashed_rsa(void **state)
{
	/* DER DigestInfo prefix of SHA-256 (RFC 8017 §9.2 note 1). */
	static const uint8_t di256[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
					 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
	struct vk_material m = { 0 };
	uint8_t d[EVP_MAX_MD_SIZE], di[sizeof(di256) + 32], big[256] = { 0 };
	uint8_t *sig = NULL, *sig2 = NULL;
	size_t dl, sl = 0, sl2 = 0;
	EVP_PKEY *pub;
	EVP_PKEY_CTX *pc;
	uint32_t h;

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_RSA2048, &m), 0);
	pub = ossl_pub(&m);
	dl = digest_of(VHSM_HASH_SHA256, d);
	assert_int_equal(dl, 32);
	memcpy(di, di256, sizeof(di256));
	memcpy(di + sizeof(di256), d, 32);
	/* DigestInfo as given: a standard RSASSA-PKCS1-v1_5 SHA-256 signature. */
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_PREHASHED, di,
				 sizeof(di), &sig, &sl), 0);
	assert_int_equal(sl, 256);
	assert_true(ossl_verify(pub, VHSM_KEY_RSA2048, VHSM_ALG_RSA_PKCS1, VHSM_HASH_SHA256, sig, sl));
	assert_int_equal(vk_verify(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_PREHASHED, di,
				   sizeof(di), sig, sl), 0);
	/* The digest with its hash named: vhsmd builds the same DigestInfo (v1.5 is deterministic). */
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1,
				 VHSM_HASH_PREHASHED | VHSM_HASH_SHA256, d, dl, &sig2, &sl2), 0);
	assert_int_equal(sl2, sl);
	assert_memory_equal(sig, sig2, sl);
	OPENSSL_free(sig2);
	sig2 = NULL;
	/* Raw recovery shows type-1 padding around exactly the DigestInfo. */
	{
		uint8_t rec[256];
		size_t rl = sizeof(rec);

		pc = EVP_PKEY_CTX_new_from_pkey(NULL, pub, NULL);
		assert_int_equal(EVP_PKEY_verify_recover_init(pc), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING), 1);
		assert_int_equal(EVP_PKEY_verify_recover(pc, rec, &rl, sig, sl), 1);
		assert_int_equal(rl, sizeof(di));
		assert_memory_equal(rec, di, sizeof(di));
		EVP_PKEY_CTX_free(pc);
	}
	OPENSSL_free(sig);
	sig = NULL;
	/* Up to k-11 bytes; k-10 is refused. */
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_PREHASHED, big,
				 245, &sig, &sl), 0);
	OPENSSL_free(sig);
	sig = NULL;
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_PREHASHED, big,
				 246, &sig, &sl), VHSM_E_ARGUMENT);
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1, VHSM_HASH_PREHASHED, big, 0,
				 &sig, &sl), VHSM_E_ARGUMENT);
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PKCS1,
				 VHSM_HASH_PREHASHED | VHSM_HASH_SHA256, di, sizeof(di), &sig, &sl),
			 VHSM_E_ARGUMENT);
	assert_null(sig);
	/* PSS over SHA-256/384/512 digests (salt = digest length, MGF1 same digest). */
	for (h = VHSM_HASH_SHA256; h <= VHSM_HASH_SHA512; h++) {
		dl = digest_of(h, d);
		assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED | h, d,
					 dl, &sig, &sl), 0);
		assert_true(ossl_verify(pub, VHSM_KEY_RSA2048, VHSM_ALG_RSA_PSS, h, sig, sl));
		assert_int_equal(vk_verify(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, h, msg, sizeof(msg),
					   sig, sl), 0);
		assert_int_equal(vk_verify(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED | h,
					   d, dl, sig, sl), 0);
		sig[10] ^= 4;
		assert_int_equal(vk_verify(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED | h,
					   d, dl, sig, sl), VHSM_E_BAD_SIGNATURE);
		OPENSSL_free(sig);
		sig = NULL;
		/* Wrong length for the named digest. */
		assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED | h, d,
					 dl - 1, &sig, &sl), VHSM_E_ARGUMENT);
	}
	/* PSS needs the digest named: the flag alone is refused. */
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_RSA_PSS, VHSM_HASH_PREHASHED, d, 32,
				 &sig, &sl), VHSM_E_ARGUMENT);
	assert_int_equal(vk_sign(VHSM_KEY_RSA2048, &m, VHSM_ALG_DEFAULT, VHSM_HASH_PREHASHED, d, 32,
				 &sig, &sl), VHSM_E_ARGUMENT);
	assert_null(sig);
	EVP_PKEY_free(pub);
	vk_material_clear(&m);
}

static void
test_aes_gcm(void **state)
{
	struct vk_material m = { 0 };
	uint8_t *blob = NULL, *pt = NULL, *key = NULL, out[sizeof(msg)];
	size_t bl = 0, ptl = 0, kl = 0;
	EVP_CIPHER_CTX *ctx;
	int l = 0;
	static const uint8_t aad[] = "context: tenant 7";

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_AES256, &m), 0);
	assert_int_equal(m.sec_len, 32);
	assert_int_equal(vk_encrypt(VHSM_KEY_AES256, &m, 7, 0, aad, sizeof(aad), msg, sizeof(msg),
				    &blob, &bl), 0);
	assert_int_equal(bl, sizeof(msg) + VK_GCM_OVERHEAD);
	{
		uint32_t v = 0;

		assert_int_equal(vk_gcm_blob_version(blob, bl, &v), 0);
		assert_int_equal(v, 7);
	}
	/* OpenSSL decrypts the blob with the same key: version | nonce | ct | tag. */
	assert_int_equal(vk_export(VHSM_KEY_AES256, &m, &key, &kl), 0);
	ctx = EVP_CIPHER_CTX_new();
	assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, blob + 4), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &l, aad, sizeof(aad)), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, out, &l, blob + 16, sizeof(msg)), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, blob + bl - 16), 1);
	assert_int_equal(EVP_DecryptFinal_ex(ctx, out + l, &l), 1);
	assert_memory_equal(out, msg, sizeof(msg));
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_secure_clear_free(key, kl);
	/* And the vHSM decrypts it; wrong AAD or a flipped bit fails authentication. */
	assert_int_equal(vk_decrypt(VHSM_KEY_AES256, &m, 0, aad, sizeof(aad), blob, bl, &pt, &ptl), 0);
	assert_int_equal(ptl, sizeof(msg));
	assert_memory_equal(pt, msg, sizeof(msg));
	OPENSSL_clear_free(pt, ptl);
	pt = NULL;
	assert_int_equal(vk_decrypt(VHSM_KEY_AES256, &m, 0, aad, sizeof(aad) - 1, blob, bl, &pt, &ptl),
			 VHSM_E_DECRYPT);
	blob[20] ^= 1;
	assert_int_equal(vk_decrypt(VHSM_KEY_AES256, &m, 0, aad, sizeof(aad), blob, bl, &pt, &ptl),
			 VHSM_E_DECRYPT);
	assert_int_equal(vk_decrypt(VHSM_KEY_AES256, &m, 0, NULL, 0, blob, VK_GCM_OVERHEAD - 1, &pt, &ptl),
			 VHSM_E_DECRYPT);
	assert_null(pt);
	OPENSSL_free(blob);
	/* Two encryptions of the same text differ (fresh nonce). */
	{
		uint8_t *b1 = NULL, *b2 = NULL;
		size_t l1, l2;

		assert_int_equal(vk_encrypt(VHSM_KEY_AES256, &m, 1, 0, NULL, 0, msg, 4, &b1, &l1), 0);
		assert_int_equal(vk_encrypt(VHSM_KEY_AES256, &m, 1, 0, NULL, 0, msg, 4, &b2, &l2), 0);
		assert_true(memcmp(b1 + 4, b2 + 4, 12) != 0);
		OPENSSL_free(b1);
		OPENSSL_free(b2);
	}
	vk_material_clear(&m);
}

static void
test_key_wrap_rfc5649(void **state)
{
	struct vk_material m = { 0 };
	uint8_t *w = NULL, *u = NULL, *key = NULL, ow[64];
	size_t wl = 0, ul = 0, kl = 0;
	static const uint8_t k20[20] = { 0xc3, 0x7b, 0x7e, 0x64, 0x92, 0x58, 0x43, 0x40, 0xbe, 0xd1,
					 0x22, 0x07, 0x80, 0x89, 0x41, 0x15, 0x50, 0x68, 0xf7, 0x38 };
	EVP_CIPHER_CTX *ctx;
	int l = 0, l2 = 0;

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_AES256, &m), 0);
	assert_int_equal(vk_wrap(&m, k20, sizeof(k20), &w, &wl), 0);
	assert_int_equal(wl, 32); /* 20 padded to 24, + 8 */
	/* OpenSSL's RFC 5649 implementation produces the same bytes (it is deterministic). */
	assert_int_equal(vk_export(VHSM_KEY_AES256, &m, &key, &kl), 0);
	ctx = EVP_CIPHER_CTX_new();
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, key, NULL), 1);
	assert_int_equal(EVP_EncryptUpdate(ctx, ow, &l, k20, sizeof(k20)), 1);
	assert_int_equal(EVP_EncryptFinal_ex(ctx, ow + l, &l2), 1);
	assert_int_equal((size_t)(l + l2), wl);
	assert_memory_equal(ow, w, wl);
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_secure_clear_free(key, kl);
	assert_int_equal(vk_unwrap(&m, w, wl, &u, &ul), 0);
	assert_int_equal(ul, sizeof(k20));
	assert_memory_equal(u, k20, sizeof(k20));
	OPENSSL_secure_clear_free(u, wl + 16);
	u = NULL;
	w[5] ^= 1;
	assert_int_equal(vk_unwrap(&m, w, wl, &u, &ul), VHSM_E_DECRYPT);
	assert_int_equal(vk_unwrap(&m, w, 12, &u, &ul), VHSM_E_DECRYPT);
	assert_null(u);
	OPENSSL_free(w);
	vk_material_clear(&m);
}

static void
test_hmac_rfc4231(void **state)
{
	/* RFC 4231 test case 1. */
	static const uint8_t key[20] = { 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
					 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b };
	static const uint8_t exp256[32] = {
		0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
		0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7 };
	static const uint8_t exp384_head[8] = { 0xaf, 0xd0, 0x39, 0x44, 0xd8, 0x48, 0x95, 0x62 };
	struct vk_material m = { 0 }, g = { 0 };
	uint8_t *mac = NULL, omac[64];
	size_t ml = 0;
	unsigned oml = 0;

	(void)state;
	assert_int_equal(vk_import(VHSM_KEY_HMAC_SHA256, key, sizeof(key), &m), 0);
	assert_int_equal(vk_hmac(VHSM_KEY_HMAC_SHA256, &m, (const uint8_t *)"Hi There", 8, &mac, &ml), 0);
	assert_int_equal(ml, 32);
	assert_memory_equal(mac, exp256, 32);
	assert_int_equal(vk_verify(VHSM_KEY_HMAC_SHA256, &m, 0, 0, (const uint8_t *)"Hi There", 8, mac, ml), 0);
	mac[0] ^= 1;
	assert_int_equal(vk_verify(VHSM_KEY_HMAC_SHA256, &m, 0, 0, (const uint8_t *)"Hi There", 8, mac, ml),
			 VHSM_E_BAD_SIGNATURE);
	assert_int_equal(vk_verify(VHSM_KEY_HMAC_SHA256, &m, 0, 0, (const uint8_t *)"Hi There", 8, mac, 31),
			 VHSM_E_BAD_SIGNATURE);
	OPENSSL_free(mac);
	vk_material_clear(&m);
	assert_int_equal(vk_import(VHSM_KEY_HMAC_SHA384, key, sizeof(key), &m), 0);
	assert_int_equal(vk_hmac(VHSM_KEY_HMAC_SHA384, &m, (const uint8_t *)"Hi There", 8, &mac, &ml), 0);
	assert_int_equal(ml, 48);
	assert_memory_equal(mac, exp384_head, 8);
	OPENSSL_free(mac);
	vk_material_clear(&m);
	/* A generated HMAC-SHA-384 key: 48 bytes, same MAC as OpenSSL's HMAC(). */
	assert_int_equal(vk_generate(VHSM_KEY_HMAC_SHA384, &g), 0);
	assert_int_equal(g.sec_len, 48);
	assert_int_equal(vk_hmac(VHSM_KEY_HMAC_SHA384, &g, msg, sizeof(msg), &mac, &ml), 0);
	assert_non_null(HMAC(EVP_sha384(), g.sec, (int)g.sec_len, msg, sizeof(msg), omac, &oml));
	assert_int_equal(oml, ml);
	assert_memory_equal(mac, omac, ml);
	OPENSSL_free(mac);
	/* HMAC keys neither sign nor encrypt. */
	mac = NULL;
	assert_int_equal(vk_sign(VHSM_KEY_HMAC_SHA384, &g, 0, 0, msg, 1, &mac, &ml), VHSM_E_USAGE);
	assert_int_equal(vk_encrypt(VHSM_KEY_HMAC_SHA384, &g, 1, 0, NULL, 0, msg, 1, &mac, &ml), VHSM_E_USAGE);
	vk_material_clear(&g);
}

static void
test_ecdh_derive(void **state)
{
	uint32_t types[] = { VHSM_KEY_EC_P256, VHSM_KEY_EC_P384 };
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		struct vk_material m = { 0 }, out = { 0 };
		EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", i ? "P-384" : "P-256");
		EVP_PKEY *ours;
		EVP_PKEY_CTX *pctx;
		EVP_KDF *kdf;
		EVP_KDF_CTX *kctx;
		OSSL_PARAM params[4];
		unsigned char *pder = NULL, z[64], okm[48];
		size_t zl = sizeof(z);
		int pdl;
		char info[64] = "nitride-vhsm-ecdhapp/shared";

		assert_int_equal(vk_generate(types[i], &m), 0);
		ours = ossl_pub(&m);
		pdl = i2d_PUBKEY(peer, &pder);
		assert_true(pdl > 0);
		assert_int_equal(vk_derive(types[i], &m, pder, (size_t)pdl, (const uint8_t *)"app/shared", 10,
					   VHSM_KEY_HMAC_SHA384, &out), 0);
		assert_int_equal(out.sec_len, 48);
		/* OpenSSL: ECDH(peer priv, our pub) then HKDF-SHA-256. */
		pctx = EVP_PKEY_CTX_new(peer, NULL);
		assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
		assert_int_equal(EVP_PKEY_derive_set_peer(pctx, ours), 1);
		assert_int_equal(EVP_PKEY_derive(pctx, z, &zl), 1);
		kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
		kctx = EVP_KDF_CTX_new(kdf);
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zl);
		params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, strlen(info));
		params[3] = OSSL_PARAM_construct_end();
		assert_int_equal(EVP_KDF_derive(kctx, okm, 48, params), 1);
		assert_memory_equal(out.sec, okm, 48);
		vk_material_clear(&out);
		/* A peer on the other curve is refused. */
		{
			EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", i ? "P-256" : "P-384");
			unsigned char *oder = NULL;
			int odl = i2d_PUBKEY(other, &oder);

			assert_int_equal(vk_derive(types[i], &m, oder, (size_t)odl, NULL, 0, VHSM_KEY_AES256, &out),
					 VHSM_E_ARGUMENT);
			assert_null(out.sec);
			OPENSSL_free(oder);
			EVP_PKEY_free(other);
		}
		EVP_KDF_CTX_free(kctx);
		EVP_KDF_free(kdf);
		EVP_PKEY_CTX_free(pctx);
		OPENSSL_free(pder);
		EVP_PKEY_free(peer);
		EVP_PKEY_free(ours);
		vk_material_clear(&m);
	}
}

static void
test_import_export(void **state)
{
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	unsigned char *der = NULL;
	int dl;
	struct vk_material m = { 0 };
	uint8_t *sig = NULL;
	size_t sl;
	EVP_MD_CTX *ctx;

	(void)state;
	/* A P-384 key as PKCS#8: accepted as p384, refused as p256 or rsa. */
	dl = i2d_PrivateKey(p384, &der);
	assert_true(dl > 0);
	assert_int_equal(vk_import(VHSM_KEY_EC_P256, der, (size_t)dl, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_RSA2048, der, (size_t)dl, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_EC_P384, der, (size_t)dl - 1, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_EC_P384, der, (size_t)dl, &m), 0);
	/* The vHSM signs with the imported key; OpenSSL verifies with the original. */
	assert_int_equal(vk_sign(VHSM_KEY_EC_P384, &m, 0, 0, msg, sizeof(msg), &sig, &sl), 0);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, p384), 1);
	assert_int_equal(EVP_DigestVerify(ctx, sig, sl, msg, sizeof(msg)), 1);
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(sig);
	vk_material_clear(&m);
	OPENSSL_free(der);
	der = NULL;
	dl = i2d_PrivateKey(ed, &der);
	assert_int_equal(vk_import(VHSM_KEY_ED25519, der, (size_t)dl, &m), 0);
	assert_int_equal(EVP_PKEY_eq(m.pk, ed), 1);
	vk_material_clear(&m);
	OPENSSL_free(der);
	/* Raw sizes. */
	{
		uint8_t raw[64] = { 1 };

		assert_int_equal(vk_import(VHSM_KEY_AES256, raw, 31, &m), VHSM_E_ARGUMENT);
		assert_int_equal(vk_import(VHSM_KEY_AES256, raw, 32, &m), 0);
		vk_material_clear(&m);
		assert_int_equal(vk_import(VHSM_KEY_OPAQUE, raw, 0, &m), VHSM_E_ARGUMENT);
		assert_int_equal(vk_import(VHSM_KEY_OPAQUE, raw, 5, &m), 0);
		assert_int_equal(m.sec_len, 5);
		vk_material_clear(&m);
		assert_int_equal(vk_import(VHSM_KEY_HMAC_SHA256, raw, 15, &m), VHSM_E_ARGUMENT);
		assert_int_equal(vk_import(0, raw, 32, &m), VHSM_E_ARGUMENT);
		assert_int_equal(vk_import(VHSM_KEY_TYPE_MAX + 1, raw, 32, &m), VHSM_E_ARGUMENT);
	}
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}

static void
test_random(void **state)
{
	uint8_t *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(vk_random(0, &a), VHSM_E_ARGUMENT);
	assert_int_equal(vk_random(65537, &a), VHSM_E_ARGUMENT);
	assert_int_equal(vk_random(32, &a), 0);
	assert_int_equal(vk_random(32, &b), 0);
	assert_true(memcmp(a, b, 32) != 0);
	OPENSSL_free(a);
	OPENSSL_free(b);
}

static void
test_type_usages(void **state)
{
	(void)state;
	assert_int_equal(vk_type_usages(VHSM_KEY_OPAQUE), 0);
	assert_true(vk_type_usages(VHSM_KEY_EC_P256) & VHSM_USAGE_DERIVE);
	assert_false(vk_type_usages(VHSM_KEY_ED25519) & VHSM_USAGE_DERIVE);
	assert_false(vk_type_usages(VHSM_KEY_AES256) & VHSM_USAGE_SIGN);
	assert_true(vk_type_asymmetric(VHSM_KEY_RSA4096));
	assert_false(vk_type_asymmetric(VHSM_KEY_HMAC_SHA256));
}

/* Every type's private or secret material lands in OpenSSL's secure heap,
 * generated or imported. */
static void
test_material_in_secure_heap(void **state)
{
	uint32_t t;

	(void)state;
	if (!CRYPTO_secure_malloc_initialized())
		skip();
	for (t = 1; t <= VHSM_KEY_TYPE_MAX; t++) {
		struct vk_material m = { 0 }, m2 = { 0 };
		uint8_t *ex = NULL;
		size_t exl = 0, before = CRYPTO_secure_used(), after;

		if (t == VHSM_KEY_CERT)
			continue; /* public data, imported only (test_cert_object) */

		assert_int_equal(vk_generate(t, &m), 0);
		after = CRYPTO_secure_used();
		if (after <= before)
			fail_msg("type %u: generated material is not in the secure heap", t);
		if (m.sec != NULL)
			assert_true(CRYPTO_secure_allocated(m.sec));
		assert_int_equal(vk_export(t, &m, &ex, &exl), 0);
		assert_true(CRYPTO_secure_allocated(ex));
		before = CRYPTO_secure_used();
		assert_int_equal(vk_import(t, ex, exl, &m2), 0);
		if (CRYPTO_secure_used() <= before)
			fail_msg("type %u: imported material is not in the secure heap", t);
		OPENSSL_secure_clear_free(ex, exl);
		vk_material_clear(&m2);
		vk_material_clear(&m);
	}
}

/* A self-signed certificate for key pk (DER, OPENSSL_malloc'ed). */
static int
make_cert(EVP_PKEY *pk, const char *cn, uint8_t **der)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	int l;

	assert_non_null(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 4242), 1);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	*der = NULL;
	l = i2d_X509(x, der);
	assert_true(l > 0);
	X509_NAME_free(n);
	X509_free(x);
	return l;
}

/* Certificate objects: one whole DER certificate, kept as public data. */
static void
test_cert_object(void **state)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	struct vk_material m = { 0 };
	uint8_t *der = NULL, *ex = NULL, *big;
	size_t exl = 0;
	int l;

	(void)state;
	l = make_cert(pk, "vhsm test", &der);
	assert_int_equal(vk_generate(VHSM_KEY_CERT, &m), VHSM_E_UNSUPPORTED);
	assert_int_equal(vk_type_usages(VHSM_KEY_CERT), 0);
	assert_false(vk_type_asymmetric(VHSM_KEY_CERT));
	assert_int_equal(vk_import(VHSM_KEY_CERT, der, (size_t)l, &m), 0);
	assert_int_equal(m.sec_len, (size_t)l);
	assert_memory_equal(m.sec, der, (size_t)l);
	assert_int_equal(vk_export(VHSM_KEY_CERT, &m, &ex, &exl), 0);
	assert_int_equal(exl, (size_t)l);
	assert_memory_equal(ex, der, exl);
	OPENSSL_secure_clear_free(ex, exl);
	vk_material_clear(&m);
	/* Not a certificate, a truncated one, trailing bytes, empty, too large. */
	assert_int_equal(vk_import(VHSM_KEY_CERT, (const uint8_t *)"hello", 5, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_CERT, der, (size_t)l - 1, &m), VHSM_E_ARGUMENT);
	big = calloc(1, VHSM_CERT_MAX + 1);
	assert_non_null(big);
	memcpy(big, der, (size_t)l);
	assert_int_equal(vk_import(VHSM_KEY_CERT, big, (size_t)l + 1, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_CERT, big, 0, &m), VHSM_E_ARGUMENT);
	assert_int_equal(vk_import(VHSM_KEY_CERT, big, VHSM_CERT_MAX + 1, &m), VHSM_E_ARGUMENT);
	assert_null(m.sec);
	free(big);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
}

/* ECDH with each KDF, against OpenSSL's own ECDH and KDFs. */
static void
test_ecdh_kdfs(void **state)
{
	struct vk_material m = { 0 }, out = { 0 };
	EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ours;
	EVP_PKEY_CTX *pctx;
	unsigned char *pder = NULL, z[64], okm[48];
	size_t zl = sizeof(z);
	static const uint8_t shared[] = "pkcs11 shared info";
	int pdl, i;

	(void)state;
	assert_int_equal(vk_generate(VHSM_KEY_EC_P384, &m), 0);
	ours = ossl_pub(&m);
	pdl = i2d_PUBKEY(peer, &pder);
	pctx = EVP_PKEY_CTX_new(peer, NULL);
	assert_int_equal(EVP_PKEY_derive_init(pctx), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(pctx, ours), 1);
	assert_int_equal(EVP_PKEY_derive(pctx, z, &zl), 1);
	assert_int_equal(zl, 48);
	/* NONE: the secret itself (HMAC-SHA-384: all 48 bytes), or its leading 32 (AES). */
	assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl, VHSM_KDF_NONE, NULL, 0,
				       VHSM_KEY_HMAC_SHA384, &out), 0);
	assert_int_equal(out.sec_len, 48);
	assert_memory_equal(out.sec, z, 48);
	assert_true(CRYPTO_secure_allocated(out.sec) || !CRYPTO_secure_malloc_initialized());
	vk_material_clear(&out);
	assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl, VHSM_KDF_NONE, NULL, 0,
				       VHSM_KEY_AES256, &out), 0);
	assert_memory_equal(out.sec, z, 32);
	vk_material_clear(&out);
	/* NONE takes no shared info. */
	assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl, VHSM_KDF_NONE, shared, 4,
				       VHSM_KEY_AES256, &out), VHSM_E_ARGUMENT);
	/* X9.63 with SHA-256/384/512 and the shared info. */
	for (i = 0; i < 3; i++) {
		static const char *const mds[] = { "SHA256", "SHA384", "SHA512" };
		EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
		EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
		OSSL_PARAM params[4];

		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)mds[i], 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zl);
		params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)shared,
							      sizeof(shared) - 1);
		params[3] = OSSL_PARAM_construct_end();
		assert_int_equal(EVP_KDF_derive(kctx, okm, 32, params), 1);
		assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl,
					       VHSM_KDF_X963_SHA256 + (uint32_t)i, shared, sizeof(shared) - 1,
					       VHSM_KEY_AES256, &out), 0);
		assert_memory_equal(out.sec, okm, 32);
		assert_memory_not_equal(out.sec, z, 32);
		vk_material_clear(&out);
		EVP_KDF_CTX_free(kctx);
		EVP_KDF_free(kdf);
	}
	/* Unknown KDF; shared info over the cap. */
	assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl, VHSM_KDF_MAX + 1, NULL, 0,
				       VHSM_KEY_AES256, &out), VHSM_E_UNSUPPORTED);
	{
		uint8_t *info = calloc(1, VHSM_KDF_INFO_MAX + 1);

		assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P384, &m, pder, (size_t)pdl, VHSM_KDF_X963_SHA256,
					       info, VHSM_KDF_INFO_MAX + 1, VHSM_KEY_AES256, &out),
				 VHSM_E_ARGUMENT);
		free(info);
	}
	assert_null(out.sec);
	vk_material_clear(&m);
	/* NONE from P-256 (32 bytes) cannot fill an HMAC-SHA-384 key (48). */
	{
		EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		unsigned char *d256 = NULL;
		int l256 = i2d_PUBKEY(p256, &d256);

		assert_int_equal(vk_generate(VHSM_KEY_EC_P256, &m), 0);
		assert_int_equal(vk_derive_kdf(VHSM_KEY_EC_P256, &m, d256, (size_t)l256, VHSM_KDF_NONE, NULL, 0,
					       VHSM_KEY_HMAC_SHA384, &out), VHSM_E_ARGUMENT);
		assert_null(out.sec);
		vk_material_clear(&m);
		OPENSSL_free(d256);
		EVP_PKEY_free(p256);
	}
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(ours);
	EVP_PKEY_free(peer);
	OPENSSL_free(pder);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ec_sign),
		cmocka_unit_test(test_ed25519_sign),
		cmocka_unit_test(test_rsa_sign_and_oaep),
		cmocka_unit_test(test_prehashed_ecdsa),
		cmocka_unit_test(test_prehashed_refused),
		cmocka_unit_test(test_prehashed_rsa),
		cmocka_unit_test(test_aes_gcm),
		cmocka_unit_test(test_key_wrap_rfc5649),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_ecdh_derive),
		cmocka_unit_test(test_ecdh_kdfs),
		cmocka_unit_test(test_cert_object),
		cmocka_unit_test(test_import_export),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_type_usages),
		cmocka_unit_test(test_material_in_secure_heap),
	};

	/* As vhsmd does; the last test checks where key material lives. */
	(void)CRYPTO_secure_malloc_init(1u << 20, 32);

	return cmocka_run_group_tests(tests, NULL, NULL);
}
