#include "vhsm/keys.h"

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/rbuf.h"
#include "vhsm/proto.h"

#define DERIVE_INFO "nitride-vhsm-ecdh"

bool
vk_type_valid(uint32_t type)
{
	return type >= VHSM_KEY_AES256 && type <= VHSM_KEY_TYPE_MAX;
}

bool
vk_type_asymmetric(uint32_t type)
{
	return type >= VHSM_KEY_EC_P256 && type <= VHSM_KEY_RSA4096;
}

uint32_t
vk_type_usages(uint32_t type)
{
	switch (type) {
	case VHSM_KEY_AES256:
		return VHSM_USAGE_ENCRYPT | VHSM_USAGE_DECRYPT | VHSM_USAGE_WRAP | VHSM_USAGE_UNWRAP;
	case VHSM_KEY_HMAC_SHA256:
	case VHSM_KEY_HMAC_SHA384:
		return VHSM_USAGE_MAC | VHSM_USAGE_VERIFY;
	case VHSM_KEY_EC_P256:
	case VHSM_KEY_EC_P384:
		return VHSM_USAGE_SIGN | VHSM_USAGE_VERIFY | VHSM_USAGE_DERIVE;
	case VHSM_KEY_ED25519:
		return VHSM_USAGE_SIGN | VHSM_USAGE_VERIFY;
	case VHSM_KEY_RSA2048:
	case VHSM_KEY_RSA3072:
	case VHSM_KEY_RSA4096:
		return VHSM_USAGE_SIGN | VHSM_USAGE_VERIFY | VHSM_USAGE_ENCRYPT | VHSM_USAGE_DECRYPT;
	default:
		return 0; /* opaque secrets: only read (by flag and policy) */
	}
}

static size_t
sym_len(uint32_t type)
{
	return type == VHSM_KEY_HMAC_SHA384 ? 48 : 32;
}

void
vk_material_clear(struct vk_material *m)
{
	if (m == NULL)
		return;
	EVP_PKEY_free(m->pk);
	if (m->sec != NULL)
		OPENSSL_secure_clear_free(m->sec, m->sec_len);
	memset(m, 0, sizeof(*m));
}

static int
sec_dup(const uint8_t *in, size_t len, struct vk_material *out)
{
	uint8_t *p = OPENSSL_secure_malloc(len ? len : 1);

	if (p == NULL)
		return VHSM_E_NOMEM;
	memcpy(p, in, len);
	out->pk = NULL;
	out->sec = p;
	out->sec_len = len;
	return 0;
}

/* A certificate object: exactly one DER X.509 certificate, nothing after it.
 * Public data, so it lives in the ordinary heap (vk_material_clear frees it
 * through OPENSSL_secure_clear_free, which handles non-secure pointers). */
static int
cert_dup(const uint8_t *in, size_t len, struct vk_material *out)
{
	const unsigned char *p = in;
	X509 *x;
	uint8_t *b;

	if (len == 0 || len > VHSM_CERT_MAX)
		return VHSM_E_ARGUMENT;
	x = d2i_X509(NULL, &p, (long)len);
	X509_free(x);
	if (x == NULL || p != in + len)
		return VHSM_E_ARGUMENT;
	if ((b = OPENSSL_malloc(len)) == NULL)
		return VHSM_E_NOMEM;
	memcpy(b, in, len);
	out->pk = NULL;
	out->sec = b;
	out->sec_len = len;
	return 0;
}

/* Does an EVP_PKEY have the algorithm, curve and size that `type` names? */
static bool
pkey_matches(uint32_t type, EVP_PKEY *pk)
{
	char grp[64];
	size_t glen = 0;

	switch (type) {
	case VHSM_KEY_EC_P256:
	case VHSM_KEY_EC_P384:
		if (!EVP_PKEY_is_a(pk, "EC") ||
		    !EVP_PKEY_get_group_name(pk, grp, sizeof(grp), &glen))
			return false;
		return strcmp(grp, type == VHSM_KEY_EC_P256 ? "prime256v1" : "secp384r1") == 0 ||
		       strcmp(grp, type == VHSM_KEY_EC_P256 ? "P-256" : "P-384") == 0;
	case VHSM_KEY_ED25519:
		return EVP_PKEY_is_a(pk, "ED25519");
	case VHSM_KEY_RSA2048:
	case VHSM_KEY_RSA3072:
	case VHSM_KEY_RSA4096:
		return EVP_PKEY_is_a(pk, "RSA") &&
		       EVP_PKEY_get_bits(pk) ==
			       (type == VHSM_KEY_RSA2048 ? 2048 : type == VHSM_KEY_RSA3072 ? 3072 : 4096);
	default:
		return false;
	}
}

int
vk_generate(uint32_t type, struct vk_material *out)
{
	EVP_PKEY *pk = NULL;
	uint8_t *p = NULL;
	size_t n;

	if (!vk_type_valid(type))
		return VHSM_E_ARGUMENT;
	if (type == VHSM_KEY_CERT)
		return VHSM_E_UNSUPPORTED; /* a certificate is imported, never generated */
	if (!vk_type_asymmetric(type)) {
		n = sym_len(type);
		if ((p = OPENSSL_secure_malloc(n)) == NULL)
			return VHSM_E_NOMEM;
		if (RAND_priv_bytes(p, (int)n) != 1) {
			OPENSSL_secure_clear_free(p, n);
			return VHSM_E_INTERNAL;
		}
		out->pk = NULL;
		out->sec = p;
		out->sec_len = n;
		return 0;
	}
	switch (type) {
	case VHSM_KEY_EC_P256:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case VHSM_KEY_EC_P384:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
		break;
	case VHSM_KEY_ED25519:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	default:
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
				       (size_t)(type == VHSM_KEY_RSA2048   ? 2048
						: type == VHSM_KEY_RSA3072 ? 3072
									   : 4096));
		break;
	}
	if (pk == NULL)
		return VHSM_E_INTERNAL;
	out->pk = pk;
	out->sec = NULL;
	out->sec_len = 0;
	return 0;
}

/* OpenSSL's EVP_PKEY_* id of an asymmetric vHSM key type. */
static int
openssl_key_type(uint32_t type)
{
	switch (type) {
	case VHSM_KEY_EC_P256:
	case VHSM_KEY_EC_P384:
		return EVP_PKEY_EC;
	case VHSM_KEY_ED25519:
		return EVP_PKEY_ED25519;
	default:
		return EVP_PKEY_RSA;
	}
}

/*
 * A DER private key of a known OpenSSL type.  Building an OpenSSL 3.0
 * decoder context costs ~60-80 us (d2i_PrivateKey_ex builds two per call);
 * decoding with one already built ~15 us.  So one is kept per type and
 * reused (vhsmd is single-threaded); it holds no key material between calls.
 * Whatever it does not decode goes to d2i_PrivateKey_ex, which also tries
 * the legacy decoders.  *pp is advanced past what was read.
 */
static EVP_PKEY *
decode_private(int ossl_type, const unsigned char **pp, size_t len)
{
	static struct {
		int type;
		OSSL_DECODER_CTX *dc;
		EVP_PKEY *out; /* where dc stores what it decoded */
	} kept[] = { { EVP_PKEY_EC, NULL, NULL }, { EVP_PKEY_ED25519, NULL, NULL },
		     { EVP_PKEY_RSA, NULL, NULL } };
	const unsigned char *p = *pp;
	size_t left = len, i;
	EVP_PKEY *pk = NULL;

	for (i = 0; i < sizeof(kept) / sizeof(kept[0]) && kept[i].type != ossl_type; i++)
		;
	if (i < sizeof(kept) / sizeof(kept[0])) {
		if (kept[i].dc == NULL)
			kept[i].dc = OSSL_DECODER_CTX_new_for_pkey(&kept[i].out, "DER", NULL,
								   OBJ_nid2sn(ossl_type),
								   EVP_PKEY_KEYPAIR, NULL, NULL);
		kept[i].out = NULL;
		if (kept[i].dc != NULL && OSSL_DECODER_from_data(kept[i].dc, &p, &left) == 1 &&
		    kept[i].out != NULL) {
			pk = kept[i].out;
			kept[i].out = NULL;
			*pp = p;
			return pk;
		}
		EVP_PKEY_free(kept[i].out);
		kept[i].out = NULL;
		p = *pp;
	}
	pk = d2i_PrivateKey_ex(ossl_type, NULL, &p, (long)len, NULL, NULL);
	if (pk != NULL)
		*pp = p;
	return pk;
}

int
vk_import(uint32_t type, const uint8_t *in, size_t len, struct vk_material *out)
{
	EVP_PKEY *pk = NULL;
	const unsigned char *p = in;

	if (!vk_type_valid(type) || in == NULL)
		return VHSM_E_ARGUMENT;
	switch (type) {
	case VHSM_KEY_AES256:
		if (len != 32)
			return VHSM_E_ARGUMENT;
		return sec_dup(in, len, out);
	case VHSM_KEY_HMAC_SHA256:
	case VHSM_KEY_HMAC_SHA384:
		if (len < 16 || len > 128)
			return VHSM_E_ARGUMENT;
		return sec_dup(in, len, out);
	case VHSM_KEY_OPAQUE:
		if (len < 1 || len > VK_OPAQUE_MAX)
			return VHSM_E_ARGUMENT;
		return sec_dup(in, len, out);
	case VHSM_KEY_CERT:
		return cert_dup(in, len, out);
	default:
		break;
	}
	if (len > 16384)
		return VHSM_E_ARGUMENT;
	/* The type is known: naming it spares OpenSSL 3.0 trying every decoder
	 * (d2i_AutoPrivateKey), which was half of vhsmd's CPU in a Case B flow. */
	pk = decode_private(openssl_key_type(type), &p, len);
	if (pk == NULL || p != in + len || !pkey_matches(type, pk)) {
		EVP_PKEY_free(pk);
		return VHSM_E_ARGUMENT;
	}
	out->pk = pk;
	out->sec = NULL;
	out->sec_len = 0;
	return 0;
}

int
vk_export(uint32_t type, const struct vk_material *m, uint8_t **out, size_t *len)
{
	uint8_t *buf = NULL, *p;
	int n;

	if (!vk_type_asymmetric(type)) {
		if (m->sec == NULL)
			return VHSM_E_INTERNAL;
		if ((buf = OPENSSL_secure_malloc(m->sec_len)) == NULL)
			return VHSM_E_NOMEM;
		memcpy(buf, m->sec, m->sec_len);
		*out = buf;
		*len = m->sec_len;
		return 0;
	}
	if (m->pk == NULL || (n = i2d_PrivateKey(m->pk, NULL)) <= 0)
		return VHSM_E_INTERNAL;
	if ((buf = OPENSSL_secure_malloc((size_t)n)) == NULL)
		return VHSM_E_NOMEM;
	p = buf;
	if (i2d_PrivateKey(m->pk, &p) != n) {
		OPENSSL_secure_clear_free(buf, (size_t)n);
		return VHSM_E_INTERNAL;
	}
	*out = buf;
	*len = (size_t)n;
	return 0;
}

int
vk_public_der(const struct vk_material *m, uint8_t **out, size_t *len)
{
	unsigned char *der = NULL;
	int n;

	if (m->pk == NULL)
		return VHSM_E_USAGE;
	if ((n = i2d_PUBKEY(m->pk, &der)) <= 0)
		return VHSM_E_INTERNAL;
	*out = der;
	*len = (size_t)n;
	return 0;
}

/* The digest for (type, hash); NULL for an unusable combination. */
static const EVP_MD *
pick_md(uint32_t type, uint32_t hash)
{
	switch (hash) {
	case VHSM_HASH_DEFAULT:
		return type == VHSM_KEY_EC_P384 ? EVP_sha384() : EVP_sha256();
	case VHSM_HASH_SHA256:
		return EVP_sha256();
	case VHSM_HASH_SHA384:
		return EVP_sha384();
	case VHSM_HASH_SHA512:
		return EVP_sha512();
	default:
		return NULL;
	}
}

/* Check (type, alg) for signing; resolve DEFAULT.  0 or VHSM_E_*. */
static int
sign_alg(uint32_t type, uint32_t alg, uint32_t hash, uint32_t *ralg)
{
	switch (type) {
	case VHSM_KEY_EC_P256:
	case VHSM_KEY_EC_P384:
		if (alg == VHSM_ALG_DEFAULT)
			alg = VHSM_ALG_ECDSA_DER;
		if (alg != VHSM_ALG_ECDSA_DER && alg != VHSM_ALG_ECDSA_RAW)
			return VHSM_E_UNSUPPORTED;
		break;
	case VHSM_KEY_ED25519:
		if (alg == VHSM_ALG_DEFAULT)
			alg = VHSM_ALG_ED25519;
		if (alg != VHSM_ALG_ED25519 || hash != VHSM_HASH_DEFAULT)
			return VHSM_E_UNSUPPORTED;
		break;
	case VHSM_KEY_RSA2048:
	case VHSM_KEY_RSA3072:
	case VHSM_KEY_RSA4096:
		if (alg == VHSM_ALG_DEFAULT)
			alg = VHSM_ALG_RSA_PSS;
		if (alg != VHSM_ALG_RSA_PSS && alg != VHSM_ALG_RSA_PKCS1)
			return VHSM_E_UNSUPPORTED;
		break;
	default:
		return VHSM_E_USAGE;
	}
	if (pick_md(type, hash) == NULL)
		return VHSM_E_UNSUPPORTED;
	*ralg = alg;
	return 0;
}

static size_t
ec_half(uint32_t type)
{
	return type == VHSM_KEY_EC_P384 ? 48 : 32;
}

/* A DigestSign/DigestVerify context set up for (type, alg, hash). */
static int
md_ctx_init(uint32_t type, EVP_PKEY *pk, uint32_t alg, uint32_t hash, bool sign,
	    EVP_MD_CTX **out)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const char *mdname = NULL;
	int r = VHSM_E_INTERNAL;

	if (type != VHSM_KEY_ED25519)
		mdname = EVP_MD_get0_name(pick_md(type, hash));
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return VHSM_E_NOMEM;
	if (sign) {
		if (EVP_DigestSignInit_ex(ctx, &pctx, mdname, NULL, NULL, pk, NULL) != 1)
			goto out;
	} else if (EVP_DigestVerifyInit_ex(ctx, &pctx, mdname, NULL, NULL, pk, NULL) != 1) {
		goto out;
	}
	if (alg == VHSM_ALG_RSA_PSS) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
			goto out;
	} else if (alg == VHSM_ALG_RSA_PKCS1) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
			goto out;
	}
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* VHSM_HASH_PREHASHED (include/nitride/vhsm.h): DATA is the digest (ECDSA,
 * RSA-PSS, RSA PKCS#1 v1.5 with a named digest) or the DigestInfo (PKCS#1
 * v1.5 without one).  Checks (type, alg, hash, len); resolves alg and the md
 * (NULL: none named).  0 or VHSM_E_*: VHSM_E_ARGUMENT for a wrong length. */
static int
prehashed_check(uint32_t type, EVP_PKEY *pk, uint32_t alg, uint32_t hash, size_t len,
		uint32_t *ralg, const EVP_MD **rmd)
{
	uint32_t h = hash & ~(uint32_t)VHSM_HASH_PREHASHED;
	const EVP_MD *md = NULL;
	size_t mdlen = 0;
	int r, k;

	if ((r = sign_alg(type, alg, h, ralg)) != 0)
		return r;
	if (type == VHSM_KEY_ED25519)
		return VHSM_E_UNSUPPORTED; /* Ed25519 signs the message itself (no prehash) */
	if (h != VHSM_HASH_DEFAULT) {
		md = pick_md(type, h);
		mdlen = (size_t)EVP_MD_get_size(md);
	}
	switch (*ralg) {
	case VHSM_ALG_ECDSA_DER:
	case VHSM_ALG_ECDSA_RAW:
		if (md != NULL ? len != mdlen : (len != 32 && len != 48 && len != 64))
			return VHSM_E_ARGUMENT;
		break;
	case VHSM_ALG_RSA_PKCS1:
		k = EVP_PKEY_get_size(pk);
		if (md != NULL ? len != mdlen : (len == 0 || k < 12 || len > (size_t)k - 11))
			return VHSM_E_ARGUMENT;
		break;
	case VHSM_ALG_RSA_PSS:
		if (md == NULL || len != mdlen)
			return VHSM_E_ARGUMENT; /* PSS needs the digest named */
		break;
	default:
		return VHSM_E_UNSUPPORTED;
	}
	*rmd = md;
	return 0;
}

/* An EVP_PKEY_sign/verify context for a prehashed (alg, md). */
static int
prehashed_ctx(EVP_PKEY *pk, uint32_t alg, const EVP_MD *md, bool sign, EVP_PKEY_CTX **out)
{
	EVP_PKEY_CTX *pctx;

	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL)
		return VHSM_E_NOMEM;
	if ((sign ? EVP_PKEY_sign_init(pctx) : EVP_PKEY_verify_init(pctx)) != 1)
		goto fail;
	if (alg == VHSM_ALG_RSA_PSS) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(pctx, md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)
			goto fail;
	} else {
		if (alg == VHSM_ALG_RSA_PKCS1 &&
		    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
			goto fail;
		if (md != NULL && EVP_PKEY_CTX_set_signature_md(pctx, md) != 1)
			goto fail;
	}
	*out = pctx;
	return 0;
fail:
	EVP_PKEY_CTX_free(pctx);
	return VHSM_E_INTERNAL;
}

/* The DER (ECDSA) or raw (RSA) signature over a prehashed input (heap). */
static int
prehashed_sign(uint32_t type, EVP_PKEY *pk, uint32_t alg, uint32_t hash, const uint8_t *in,
	       size_t len, uint32_t *ralg, uint8_t **sig, size_t *sig_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	int r;

	if ((r = prehashed_check(type, pk, alg, hash, len, ralg, &md)) != 0 ||
	    (r = prehashed_ctx(pk, *ralg, md, true, &pctx)) != 0)
		return r;
	r = VHSM_E_INTERNAL;
	if (EVP_PKEY_sign(pctx, NULL, &n, in, len) != 1 || (buf = OPENSSL_malloc(n)) == NULL)
		goto out;
	if (EVP_PKEY_sign(pctx, buf, &n, in, len) != 1)
		goto out;
	*sig = buf;
	*sig_len = n;
	buf = NULL;
	r = 0;
out:
	OPENSSL_free(buf);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

int
vk_sign(uint32_t type, const struct vk_material *m, uint32_t alg, uint32_t hash,
	const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len)
{
	EVP_MD_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	uint8_t *buf = NULL, *raw = NULL;
	size_t n = 0, half;
	const unsigned char *p;
	int r;

	if (hash & VHSM_HASH_PREHASHED) {
		if (!vk_type_asymmetric(type))
			return VHSM_E_USAGE;
		if (m->pk == NULL)
			return VHSM_E_INTERNAL;
		if ((r = prehashed_sign(type, m->pk, alg, hash, msg, len, &alg, &buf, &n)) != 0)
			return r;
		r = VHSM_E_INTERNAL;
	} else {
		if ((r = sign_alg(type, alg, hash, &alg)) != 0)
			return r;
		if (m->pk == NULL)
			return VHSM_E_INTERNAL;
		if ((r = md_ctx_init(type, m->pk, alg, hash, true, &ctx)) != 0)
			return r;
		r = VHSM_E_INTERNAL;
		if (EVP_DigestSign(ctx, NULL, &n, msg, len) != 1 ||
		    (buf = OPENSSL_malloc(n)) == NULL)
			goto out;
		if (EVP_DigestSign(ctx, buf, &n, msg, len) != 1)
			goto out;
	}
	if (alg == VHSM_ALG_ECDSA_RAW) {
		const BIGNUM *br = NULL, *bs = NULL;

		half = ec_half(type);
		p = buf;
		if ((es = d2i_ECDSA_SIG(NULL, &p, (long)n)) == NULL ||
		    (raw = OPENSSL_malloc(2 * half)) == NULL)
			goto out;
		ECDSA_SIG_get0(es, &br, &bs);
		if (BN_bn2binpad(br, raw, (int)half) < 0 || BN_bn2binpad(bs, raw + half, (int)half) < 0)
			goto out;
		OPENSSL_free(buf);
		buf = raw;
		raw = NULL;
		n = 2 * half;
	}
	*sig = buf;
	*sig_len = n;
	buf = NULL;
	r = 0;
out:
	OPENSSL_free(buf);
	OPENSSL_free(raw);
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return r;
}

static int
hmac_raw(uint32_t type, const struct vk_material *m, const uint8_t *msg, size_t len,
	 uint8_t mac[EVP_MAX_MD_SIZE], unsigned *mlen)
{
	const EVP_MD *md = type == VHSM_KEY_HMAC_SHA384 ? EVP_sha384() : EVP_sha256();

	if (m->sec == NULL || m->sec_len > INT32_MAX)
		return VHSM_E_INTERNAL;
	if (HMAC(md, m->sec, (int)m->sec_len, msg, len, mac, mlen) == NULL)
		return VHSM_E_INTERNAL;
	return 0;
}

int
vk_verify(uint32_t type, const struct vk_material *m, uint32_t alg, uint32_t hash,
	  const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *pmd = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *der = NULL;
	const uint8_t *vs = sig;
	size_t vlen = sig_len, half;
	int r, dl;

	if (type == VHSM_KEY_HMAC_SHA256 || type == VHSM_KEY_HMAC_SHA384) {
		uint8_t mac[EVP_MAX_MD_SIZE];
		unsigned mlen = 0;

		if ((r = hmac_raw(type, m, msg, len, mac, &mlen)) == 0)
			r = (sig_len == mlen && CRYPTO_memcmp(mac, sig, mlen) == 0)
				    ? 0
				    : VHSM_E_BAD_SIGNATURE;
		OPENSSL_cleanse(mac, sizeof(mac));
		return r;
	}
	if (hash & VHSM_HASH_PREHASHED) {
		if (!vk_type_asymmetric(type))
			return VHSM_E_USAGE;
		if (m->pk == NULL)
			return VHSM_E_INTERNAL;
		if ((r = prehashed_check(type, m->pk, alg, hash, len, &alg, &pmd)) != 0)
			return r;
	} else {
		if ((r = sign_alg(type, alg, hash, &alg)) != 0)
			return r;
		if (m->pk == NULL)
			return VHSM_E_INTERNAL;
	}
	if (alg == VHSM_ALG_ECDSA_RAW) {
		half = ec_half(type);
		if (sig_len != 2 * half)
			return VHSM_E_BAD_SIGNATURE;
		r = VHSM_E_NOMEM;
		if ((es = ECDSA_SIG_new()) == NULL ||
		    (br = BN_bin2bn(sig, (int)half, NULL)) == NULL ||
		    (bs = BN_bin2bn(sig + half, (int)half, NULL)) == NULL)
			goto out;
		if (ECDSA_SIG_set0(es, br, bs) != 1)
			goto out;
		br = bs = NULL;
		if ((dl = i2d_ECDSA_SIG(es, &der)) <= 0)
			goto out;
		vs = der;
		vlen = (size_t)dl;
	}
	if (hash & VHSM_HASH_PREHASHED) {
		if ((r = prehashed_ctx(m->pk, alg, pmd, false, &pctx)) != 0)
			goto out;
		r = EVP_PKEY_verify(pctx, vs, vlen, msg, len) == 1 ? 0 : VHSM_E_BAD_SIGNATURE;
		goto out;
	}
	if ((r = md_ctx_init(type, m->pk, alg, hash, false, &ctx)) != 0)
		goto out;
	r = EVP_DigestVerify(ctx, vs, vlen, msg, len) == 1 ? 0 : VHSM_E_BAD_SIGNATURE;
out:
	EVP_PKEY_CTX_free(pctx);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_MD_CTX_free(ctx);
	return r;
}

int
vk_gcm_blob_version(const uint8_t *in, size_t len, uint32_t *version)
{
	struct rbuf b;

	if (len < VK_GCM_OVERHEAD)
		return -1;
	rbuf_init(&b, in, len);
	return rbuf_get_u32le(&b, version) == 0 ? 0 : -1;
}

static int
oaep_ctx(EVP_PKEY *pk, uint32_t hash, bool enc, EVP_PKEY_CTX **out)
{
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = pick_md(VHSM_KEY_RSA2048, hash);

	if (md == NULL)
		return VHSM_E_UNSUPPORTED;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL)
		return VHSM_E_NOMEM;
	if ((enc ? EVP_PKEY_encrypt_init(pctx) : EVP_PKEY_decrypt_init(pctx)) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1) {
		EVP_PKEY_CTX_free(pctx);
		return VHSM_E_INTERNAL;
	}
	*out = pctx;
	return 0;
}

static int
rsa_oaep(const struct vk_material *m, uint32_t hash, bool enc, const uint8_t *in, size_t len,
	 uint8_t **out, size_t *out_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *buf = NULL;
	size_t n = 0;
	int r;

	if (m->pk == NULL)
		return VHSM_E_INTERNAL;
	if ((r = oaep_ctx(m->pk, hash, enc, &pctx)) != 0)
		return r;
	r = enc ? VHSM_E_ARGUMENT : VHSM_E_DECRYPT;
	if ((enc ? EVP_PKEY_encrypt(pctx, NULL, &n, in, len)
		 : EVP_PKEY_decrypt(pctx, NULL, &n, in, len)) != 1)
		goto out;
	if ((buf = OPENSSL_malloc(n ? n : 1)) == NULL) {
		r = VHSM_E_NOMEM;
		goto out;
	}
	if ((enc ? EVP_PKEY_encrypt(pctx, buf, &n, in, len)
		 : EVP_PKEY_decrypt(pctx, buf, &n, in, len)) != 1)
		goto out;
	*out = buf;
	*out_len = n;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, n);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

int
vk_encrypt(uint32_t type, const struct vk_material *m, uint32_t version, uint32_t hash,
	   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len, uint8_t **out,
	   size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *buf = NULL;
	size_t n;
	int outl = 0, fl = 0, r = VHSM_E_INTERNAL;

	if (type >= VHSM_KEY_RSA2048 && type <= VHSM_KEY_RSA4096) {
		if (aad_len != 0)
			return VHSM_E_ARGUMENT;
		return rsa_oaep(m, hash, true, in, len, out, out_len);
	}
	if (type != VHSM_KEY_AES256)
		return VHSM_E_USAGE;
	if (len > INT32_MAX - VK_GCM_OVERHEAD || aad_len > INT32_MAX || m->sec == NULL)
		return VHSM_E_ARGUMENT;
	n = len + VK_GCM_OVERHEAD;
	if ((buf = OPENSSL_malloc(n)) == NULL)
		return VHSM_E_NOMEM;
	put_u32le(buf, version);
	if (RAND_bytes(buf + 4, VK_GCM_NONCE) != 1 || (ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, m->sec, buf + 4) != 1 ||
	    (aad_len > 0 && EVP_EncryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) ||
	    EVP_EncryptUpdate(ctx, buf + 4 + VK_GCM_NONCE, &outl, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, buf + 4 + VK_GCM_NONCE + outl, &fl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, VK_GCM_TAG,
				buf + 4 + VK_GCM_NONCE + len) != 1)
		goto out;
	*out = buf;
	*out_len = n;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, n);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int
vk_decrypt(uint32_t type, const struct vk_material *m, uint32_t hash, const uint8_t *aad,
	   size_t aad_len, const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *buf = NULL;
	uint8_t tag[VK_GCM_TAG];
	size_t n = 0;
	int outl = 0, fl = 0, r = VHSM_E_INTERNAL;

	if (type >= VHSM_KEY_RSA2048 && type <= VHSM_KEY_RSA4096) {
		if (aad_len != 0)
			return VHSM_E_ARGUMENT;
		return rsa_oaep(m, hash, false, in, len, out, out_len);
	}
	if (type != VHSM_KEY_AES256)
		return VHSM_E_USAGE;
	if (len < VK_GCM_OVERHEAD)
		return VHSM_E_DECRYPT;
	if (len > INT32_MAX || aad_len > INT32_MAX || m->sec == NULL)
		return VHSM_E_ARGUMENT;
	n = len - VK_GCM_OVERHEAD;
	if ((buf = OPENSSL_malloc(n ? n : 1)) == NULL)
		return VHSM_E_NOMEM;
	memcpy(tag, in + len - VK_GCM_TAG, VK_GCM_TAG);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, m->sec, in + 4) != 1 ||
	    (aad_len > 0 && EVP_DecryptUpdate(ctx, NULL, &outl, aad, (int)aad_len) != 1) ||
	    EVP_DecryptUpdate(ctx, buf, &outl, in + 4 + VK_GCM_NONCE, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, VK_GCM_TAG, tag) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, buf + outl, &fl) != 1) {
		r = VHSM_E_DECRYPT;
		goto out;
	}
	*out = buf;
	*out_len = n;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, n ? n : 1);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

static int
kw(const struct vk_material *m, bool enc, const uint8_t *in, size_t len, uint8_t **out,
   size_t *out_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *buf = NULL;
	size_t cap;
	int outl = 0, fl = 0, r = VHSM_E_INTERNAL;

	if (m->sec == NULL || m->sec_len != 32)
		return VHSM_E_USAGE;
	if (len == 0 || len > 2 * VK_OPAQUE_MAX + 64 || (!enc && (len < 16 || len % 8 != 0)))
		return enc ? VHSM_E_ARGUMENT : VHSM_E_DECRYPT;
	cap = len + 16;
	buf = enc ? OPENSSL_malloc(cap) : OPENSSL_secure_malloc(cap);
	if (buf == NULL)
		return VHSM_E_NOMEM;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), NULL, m->sec, NULL, enc ? 1 : 0) != 1)
		goto out;
	if (EVP_CipherUpdate(ctx, buf, &outl, in, (int)len) != 1 ||
	    EVP_CipherFinal_ex(ctx, buf + outl, &fl) != 1) {
		r = enc ? VHSM_E_INTERNAL : VHSM_E_DECRYPT;
		goto out;
	}
	*out = buf;
	*out_len = (size_t)outl + (size_t)fl;
	buf = NULL;
	r = 0;
out:
	if (buf != NULL) {
		if (enc)
			OPENSSL_clear_free(buf, cap);
		else
			OPENSSL_secure_clear_free(buf, cap);
	}
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int
vk_wrap(const struct vk_material *m, const uint8_t *in, size_t len, uint8_t **out,
	size_t *out_len)
{
	return kw(m, true, in, len, out, out_len);
}

int
vk_unwrap(const struct vk_material *m, const uint8_t *in, size_t len, uint8_t **out,
	  size_t *out_len)
{
	return kw(m, false, in, len, out, out_len);
}

int
vk_hmac(uint32_t type, const struct vk_material *m, const uint8_t *msg, size_t len,
	uint8_t **mac, size_t *mac_len)
{
	uint8_t tmp[EVP_MAX_MD_SIZE], *buf;
	unsigned mlen = 0;
	int r;

	if (type != VHSM_KEY_HMAC_SHA256 && type != VHSM_KEY_HMAC_SHA384)
		return VHSM_E_USAGE;
	if ((r = hmac_raw(type, m, msg, len, tmp, &mlen)) != 0)
		return r;
	if ((buf = OPENSSL_malloc(mlen)) == NULL) {
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return VHSM_E_NOMEM;
	}
	memcpy(buf, tmp, mlen);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	*mac = buf;
	*mac_len = mlen;
	return 0;
}

int
vk_derive(uint32_t type, const struct vk_material *m, const uint8_t *peer, size_t peer_len,
	  const uint8_t *info, size_t info_len, uint32_t out_type, struct vk_material *out)
{
	return vk_derive_kdf(type, m, peer, peer_len, VHSM_KDF_HKDF, info, info_len, out_type, out);
}

/* okm (olen bytes) from the shared secret z with `kdf`.  0 or VHSM_E_*. */
static int
kdf_run(uint32_t kdf, const uint8_t *z, size_t zlen, const uint8_t *info, size_t info_len,
	uint8_t *okm, size_t olen)
{
	EVP_KDF *k = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[4];
	uint8_t *inf = NULL;
	size_t ilen = 0, n = 0;
	const char *md;
	int r = VHSM_E_INTERNAL;

	if (kdf == VHSM_KDF_NONE) {
		/* PKCS#11 CKD_NULL: the secret itself, its leading bytes if longer. */
		if (zlen < olen)
			return VHSM_E_ARGUMENT;
		memcpy(okm, z, olen);
		return 0;
	}
	if (kdf == VHSM_KDF_HKDF) {
		ilen = sizeof(DERIVE_INFO) - 1 + info_len;
		if ((inf = OPENSSL_malloc(ilen)) == NULL)
			return VHSM_E_NOMEM;
		memcpy(inf, DERIVE_INFO, sizeof(DERIVE_INFO) - 1);
		if (info_len)
			memcpy(inf + sizeof(DERIVE_INFO) - 1, info, info_len);
		md = "SHA256";
		k = EVP_KDF_fetch(NULL, "HKDF", NULL);
	} else {
		md = kdf == VHSM_KDF_X963_SHA256 ? "SHA256" : kdf == VHSM_KDF_X963_SHA384 ? "SHA384" : "SHA512";
		k = EVP_KDF_fetch(NULL, "X963KDF", NULL);
	}
	if (k == NULL || (kctx = EVP_KDF_CTX_new(k)) == NULL)
		goto out;
	params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)md, 0);
	params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)z, zlen);
	if (inf != NULL)
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, inf, ilen);
	else if (info_len > 0) /* X9.63 shared info */
		params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
								(void *)(uintptr_t)info, info_len);
	params[n] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, okm, olen, params) == 1)
		r = 0;
out:
	OPENSSL_free(inf);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(k);
	return r;
}

int
vk_derive_kdf(uint32_t type, const struct vk_material *m, const uint8_t *peer, size_t peer_len,
	      uint32_t kdf, const uint8_t *info, size_t info_len, uint32_t out_type,
	      struct vk_material *out)
{
	EVP_PKEY *pub = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *z = NULL, *okm = NULL;
	size_t zlen = 0, olen;
	const unsigned char *p = peer;
	int r = VHSM_E_ARGUMENT;

	if (type != VHSM_KEY_EC_P256 && type != VHSM_KEY_EC_P384)
		return VHSM_E_USAGE;
	if (out_type != VHSM_KEY_AES256 && out_type != VHSM_KEY_HMAC_SHA256 &&
	    out_type != VHSM_KEY_HMAC_SHA384 && out_type != VHSM_KEY_OPAQUE)
		return VHSM_E_UNSUPPORTED;
	if (kdf > VHSM_KDF_MAX)
		return VHSM_E_UNSUPPORTED;
	if (m->pk == NULL || peer == NULL || peer_len > 4096 ||
	    info_len > (kdf == VHSM_KDF_HKDF ? VHSM_NAME_MAX : VHSM_KDF_INFO_MAX) ||
	    (kdf == VHSM_KDF_NONE && info_len != 0) || (info == NULL && info_len != 0))
		return VHSM_E_ARGUMENT;
	olen = sym_len(out_type);
	pub = d2i_PUBKEY(NULL, &p, (long)peer_len);
	if (pub == NULL || p != peer + peer_len || !pkey_matches(type, pub))
		goto out;
	r = VHSM_E_INTERNAL;
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(NULL, m->pk, NULL)) == NULL ||
	    EVP_PKEY_derive_init(pctx) != 1)
		goto out;
	if (EVP_PKEY_derive_set_peer(pctx, pub) != 1) {
		r = VHSM_E_ARGUMENT;
		goto out;
	}
	if (EVP_PKEY_derive(pctx, NULL, &zlen) != 1 || (z = OPENSSL_secure_malloc(zlen)) == NULL ||
	    EVP_PKEY_derive(pctx, z, &zlen) != 1)
		goto out;
	if ((okm = OPENSSL_secure_malloc(olen)) == NULL)
		goto out;
	if ((r = kdf_run(kdf, z, zlen, info, info_len, okm, olen)) != 0)
		goto out;
	out->pk = NULL;
	out->sec = okm;
	out->sec_len = olen;
	okm = NULL;
	r = 0;
out:
	if (z != NULL)
		OPENSSL_secure_clear_free(z, zlen);
	if (okm != NULL)
		OPENSSL_secure_clear_free(okm, olen);
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(pub);
	return r;
}

int
vk_random(size_t n, uint8_t **out)
{
	uint8_t *buf;

	if (n == 0 || n > 65536)
		return VHSM_E_ARGUMENT;
	if ((buf = OPENSSL_malloc(n)) == NULL)
		return VHSM_E_NOMEM;
	if (RAND_bytes(buf, (int)n) != 1) {
		OPENSSL_free(buf);
		return VHSM_E_INTERNAL;
	}
	*out = buf;
	return 0;
}
