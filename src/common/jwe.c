/*
 * jwe — compact JWE, ECDH-ES + A256GCM on P-256 (contract in jwe.h, the
 * decision in docs/jwe.md).
 *
 * Why not cjose here: its ECDH-ES builds a new EC group for the ephemeral
 * key and runs OpenSSL's full public-key check (a scalar multiplication by
 * the group order) on every call, which doubled the cost of the JWE at both
 * ends of a Case B release.  This module keeps what does not change between
 * calls (below) and checks the peer point the way a prime-order curve
 * needs: on the curve, not at infinity.
 */
#include "common/jwe.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/b64url.h"

#define FIELD_LEN 32u      /* P-256 coordinate and scalar */
#define POINT_LEN 65u      /* 0x04 || x || y */
#define CEK_LEN 32u        /* A256GCM */
#define IV_LEN 12u
#define TAG_LEN 16u
#define COORD_B64_LEN 43u  /* 32 bytes, unpadded base64url */
#define IV_B64_LEN 16u
#define TAG_B64_LEN 22u
#define CTY_MAX 64u
#define ENC_NAME "A256GCM"

/*
 * Kept for the life of the process, made once (pthread_once), and only read
 * afterwards, which OpenSSL allows from any number of threads (provd's
 * workers share them; vhsmd has one thread):
 *   - a P-256 parameters-only key, the template for every key generated and
 *     imported here: OpenSSL copies its group instead of building one from
 *     the curve's name on each call;
 *   - the SSKDF (Concat KDF) and AES-256-GCM implementations, fetched once
 *     instead of looked up by name on each call.
 * None of them holds key material.
 */
static struct {
	pthread_once_t once;
	EVP_PKEY *params;
	EVP_KDF *sskdf;
	EVP_CIPHER *gcm;
} kept = { .once = PTHREAD_ONCE_INIT };

static void
kept_init(void)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);

	if (pc == NULL || EVP_PKEY_paramgen_init(pc) != 1 ||
	    EVP_PKEY_CTX_set_group_name(pc, "P-256") != 1 ||
	    EVP_PKEY_paramgen(pc, &kept.params) != 1)
		kept.params = NULL;
	EVP_PKEY_CTX_free(pc);
	kept.sskdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SSKDF, NULL);
	kept.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

static bool
kept_ready(void)
{
	return pthread_once(&kept.once, kept_init) == 0 && kept.params != NULL &&
	       kept.sskdf != NULL && kept.gcm != NULL;
}

const char *
jwe_strerror(int r)
{
	switch (r) {
	case 0: return "ok";
	case -EINVAL: return "malformed JWE or key";
	case -ENOTSUP: return "not an ECDH-ES/A256GCM JWE on P-256 without zip or crit";
	case -EMSGSIZE: return "JWE part or plaintext too large";
	case -EBADMSG: return "authentication failed (tampered, or encrypted to another key)";
	case -ENOMEM: return "out of memory";
	case -EIO: return "OpenSSL failure";
	default: return "unknown error";
	}
}

/* ---- keys ---- */

static bool
is_p256(const EVP_PKEY *k)
{
	char grp[32];
	size_t gl = 0;

	return k != NULL && EVP_PKEY_is_a(k, "EC") &&
	       EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, grp, sizeof(grp), &gl) ==
		       1 &&
	       strcmp(grp, "prime256v1") == 0;
}

int
jwe_p256_keygen(EVP_PKEY **out)
{
	EVP_PKEY_CTX *gc = NULL;
	EVP_PKEY *k = NULL;
	int r = -EIO;

	if (!kept_ready())
		return -EIO;
	if ((gc = EVP_PKEY_CTX_new_from_pkey(NULL, kept.params, NULL)) == NULL ||
	    EVP_PKEY_keygen_init(gc) != 1 || EVP_PKEY_keygen(gc, &k) != 1)
		goto out;
	*out = k;
	k = NULL;
	r = 0;
out:
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(gc);
	return r;
}

/*
 * The public key 0x04 || x || y as an EVP_PKEY.  The template's group is
 * copied; OpenSSL's point decoding refuses a point that is not on the curve,
 * and the uncompressed form cannot encode the point at infinity.  On P-256
 * (cofactor 1) every other point on the curve has the group's order, so the
 * full check OpenSSL would otherwise run before ECDH (a multiplication by
 * the order, about as costly as the ECDH itself) adds nothing; the derive
 * below skips it for that reason.
 */
static int
p256_from_point(const uint8_t point[static POINT_LEN], EVP_PKEY **out)
{
	EVP_PKEY *k = NULL;

	if (!kept_ready())
		return -EIO;
	if ((k = EVP_PKEY_dup(kept.params)) == NULL)
		return -ENOMEM;
	if (EVP_PKEY_set1_encoded_public_key(k, point, POINT_LEN) != 1) {
		EVP_PKEY_free(k);
		return -EINVAL;
	}
	*out = k;
	return 0;
}

/* A coordinate member of a JWK: exactly 32 bytes of base64url. */
static int
get_coord(const json_t *jwk, const char *name, uint8_t out[static FIELD_LEN])
{
	const char *s = json_string_value(json_object_get(jwk, name));

	if (s == NULL || json_string_length(json_object_get(jwk, name)) != COORD_B64_LEN ||
	    b64url_decode(s, COORD_B64_LEN, out, FIELD_LEN) != (long)FIELD_LEN)
		return -EINVAL;
	return 0;
}

int
jwe_p256_from_jwk(const json_t *jwk, EVP_PKEY **out)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	uint8_t point[POINT_LEN];

	if (!json_is_object(jwk) || kty == NULL || crv == NULL)
		return -EINVAL;
	if (strcmp(kty, "EC") != 0 || strcmp(crv, "P-256") != 0)
		return -ENOTSUP;
	point[0] = 0x04;
	if (get_coord(jwk, "x", point + 1) != 0 || get_coord(jwk, "y", point + 1 + FIELD_LEN) != 0)
		return -EINVAL;
	return p256_from_point(point, out);
}

/* 0x04 || x || y of a P-256 key. */
static int
get_point(const EVP_PKEY *k, uint8_t point[static POINT_LEN])
{
	size_t n = 0;

	if (!is_p256(k))
		return -EINVAL;
	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, POINT_LEN,
					    &n) != 1 ||
	    n != POINT_LEN || point[0] != 0x04)
		return -EIO;
	return 0;
}

int
jwe_p256_public_jwk(const EVP_PKEY *key, json_t **out)
{
	uint8_t point[POINT_LEN];
	char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1];
	json_t *j;
	int r;

	if ((r = get_point(key, point)) != 0)
		return r;
	b64url_put(point + 1, FIELD_LEN, x);
	b64url_put(point + 1 + FIELD_LEN, FIELD_LEN, y);
	x[COORD_B64_LEN] = y[COORD_B64_LEN] = '\0';
	if ((j = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", x, "y", y)) == NULL)
		return -ENOMEM;
	*out = j;
	return 0;
}

/* ---- ECDH-ES key agreement (RFC 7518 §4.6) ---- */

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * The CEK: Z = ECDH(mine, peer), then the Concat KDF of NIST SP 800-56A
 * (OpenSSL's SSKDF) with SHA-256 and OtherInfo = AlgorithmID ("A256GCM",
 * since this is Direct Key Agreement) || PartyUInfo (apu) || PartyVInfo
 * (apv) || SuppPubInfo (256, the key length in bits), each datum prefixed
 * with its 32-bit big-endian length.  Z is wiped on every path.
 */
static int
derive_cek(EVP_PKEY *mine, EVP_PKEY *peer, const uint8_t *apu, size_t apulen, const uint8_t *apv,
	   size_t apvlen, uint8_t cek[static CEK_LEN])
{
	uint8_t z[FIELD_LEN];
	uint8_t info[4 + sizeof(ENC_NAME) - 1 + 4 + JWE_PARTYINFO_MAX + 4 + JWE_PARTYINFO_MAX + 4];
	size_t zlen = sizeof(z), il = 0;
	EVP_PKEY_CTX *dc = NULL;
	EVP_KDF_CTX *kc = NULL;
	OSSL_PARAM params[4];
	int r = -EIO;

	if (apulen > JWE_PARTYINFO_MAX || apvlen > JWE_PARTYINFO_MAX)
		return -EMSGSIZE;
	/* validate_peer 0: the peer was checked on import (p256_from_point). */
	if ((dc = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL)) == NULL ||
	    EVP_PKEY_derive_init(dc) != 1 || EVP_PKEY_derive_set_peer_ex(dc, peer, 0) != 1 ||
	    EVP_PKEY_derive(dc, z, &zlen) != 1 || zlen != FIELD_LEN)
		goto out;
	put_be32(info + il, (uint32_t)(sizeof(ENC_NAME) - 1));
	memcpy(info + il + 4, ENC_NAME, sizeof(ENC_NAME) - 1);
	il += 4 + sizeof(ENC_NAME) - 1;
	put_be32(info + il, (uint32_t)apulen);
	if (apulen > 0)
		memcpy(info + il + 4, apu, apulen);
	il += 4 + apulen;
	put_be32(info + il, (uint32_t)apvlen);
	if (apvlen > 0)
		memcpy(info + il + 4, apv, apvlen);
	il += 4 + apvlen;
	put_be32(info + il, CEK_LEN * 8);
	il += 4;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, zlen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, il);
	params[3] = OSSL_PARAM_construct_end();
	if ((kc = EVP_KDF_CTX_new(kept.sskdf)) == NULL ||
	    EVP_KDF_derive(kc, cek, CEK_LEN, params) != 1)
		goto out;
	r = 0;
out:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_KDF_CTX_free(kc);
	EVP_PKEY_CTX_free(dc);
	if (r != 0)
		OPENSSL_cleanse(cek, CEK_LEN);
	return r;
}

/* ---- encrypt ---- */

static bool
cty_ok(const char *cty)
{
	size_t i;

	for (i = 0; cty[i] != '\0'; i++)
		if (i >= CTY_MAX || !((cty[i] >= 'a' && cty[i] <= 'z') || (cty[i] >= 'A' && cty[i] <= 'Z') ||
				      (cty[i] >= '0' && cty[i] <= '9') || strchr("!#$&^_.+/-", cty[i]) != NULL))
			return false;
	return i > 0;
}

int
jwe_encrypt_ecdhes(EVP_PKEY *peer, const char *cty, const uint8_t *pt, size_t ptlen, char **out,
		   size_t *outlen)
{
	EVP_PKEY *eph = NULL;
	EVP_CIPHER_CTX *cc = NULL;
	uint8_t point[POINT_LEN], cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN];
	char x[COORD_B64_LEN + 1], y[COORD_B64_LEN + 1];
	char hdr[256 + CTY_MAX]; /* the fixed members, the epk (≈ 180 with its coordinates) and cty */
	uint8_t *ct = NULL;
	char *text = NULL, *w;
	size_t hl, hb, n;
	int len = 0, fin = 0, r;

	if (ptlen > JWE_PLAINTEXT_MAX)
		return -EMSGSIZE;
	if ((pt == NULL && ptlen > 0) || (cty != NULL && !cty_ok(cty)) || !is_p256(peer))
		return -EINVAL;
	if (!kept_ready())
		return -EIO;
	if ((r = jwe_p256_keygen(&eph)) != 0 || (r = get_point(eph, point)) != 0 ||
	    (r = derive_cek(eph, peer, NULL, 0, NULL, 0, cek)) != 0)
		goto out;
	b64url_put(point + 1, FIELD_LEN, x);
	b64url_put(point + 1 + FIELD_LEN, FIELD_LEN, y);
	x[COORD_B64_LEN] = y[COORD_B64_LEN] = '\0';
	n = (size_t)snprintf(hdr, sizeof(hdr),
			     "{\"alg\":\"ECDH-ES\",\"enc\":\"" ENC_NAME "\"%s%s%s,\"epk\":{\"kty\":\"EC\","
			     "\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}}",
			     cty ? ",\"cty\":\"" : "", cty ? cty : "", cty ? "\"" : "", x, y);
	r = -EIO;
	if (n >= sizeof(hdr))
		goto out;
	hl = n;
	hb = b64url_len(hl);
	/* header.(empty key).iv.ciphertext.tag and the NUL */
	n = hb + 2 + IV_B64_LEN + 1 + b64url_len(ptlen) + 1 + TAG_B64_LEN + 1;
	r = -ENOMEM;
	if ((text = malloc(n)) == NULL || (ct = malloc(ptlen + 1)) == NULL)
		goto out;
	w = text;
	b64url_put((const uint8_t *)hdr, hl, w);
	w += hb;
	r = -EIO;
	if (RAND_bytes(iv, IV_LEN) != 1 || (cc = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex2(cc, kept.gcm, cek, iv, NULL) != 1 ||
	    EVP_EncryptUpdate(cc, NULL, &len, (const uint8_t *)text, (int)hb) != 1 ||
	    (len = 0, ptlen > 0 && EVP_EncryptUpdate(cc, ct, &len, pt, (int)ptlen) != 1) ||
	    EVP_EncryptFinal_ex(cc, ct + len, &fin) != 1 || (size_t)len + (size_t)fin != ptlen ||
	    EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	*w++ = '.';
	*w++ = '.';
	b64url_put(iv, IV_LEN, w);
	w += IV_B64_LEN;
	*w++ = '.';
	b64url_put(ct, ptlen, w);
	w += b64url_len(ptlen);
	*w++ = '.';
	b64url_put(tag, TAG_LEN, w);
	w += TAG_B64_LEN;
	*w = '\0';
	*out = text;
	*outlen = (size_t)(w - text);
	text = NULL;
	r = 0;
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_free(eph);
	free(ct);
	free(text);
	return r;
}

/* ---- decrypt ---- */

/* The five parts of a compact JWE, as spans of the text. */
struct parts {
	const char *p[5];
	size_t n[5];
};

static int
split(const char *text, size_t len, struct parts *s)
{
	size_t i, start = 0, k = 0;

	for (i = 0; i <= len; i++) {
		if (i < len && text[i] != '.')
			continue;
		if (k == 5)
			return -EINVAL; /* a sixth part */
		s->p[k] = text + start;
		s->n[k++] = i - start;
		start = i + 1;
	}
	return k == 5 ? 0 : -EINVAL;
}

/* An optional base64url member of the header (apu, apv). */
static int
get_partyinfo(const json_t *hdr, const char *name, uint8_t *out, size_t *outlen)
{
	const json_t *v = json_object_get(hdr, name);
	long n;

	*outlen = 0;
	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return -EINVAL;
	if (json_string_length(v) > b64url_len(JWE_PARTYINFO_MAX))
		return -EMSGSIZE;
	if ((n = b64url_decode(json_string_value(v), json_string_length(v), out, JWE_PARTYINFO_MAX)) < 0)
		return -EINVAL;
	*outlen = (size_t)n;
	return 0;
}

/* The protected header: its checks (jwe.h), the sender's key and apu/apv. */
static int
check_header(const struct parts *s, EVP_PKEY **epk, uint8_t *apu, size_t *apulen, uint8_t *apv,
	     size_t *apvlen)
{
	uint8_t raw[JWE_HEADER_B64_MAX / 4 * 3 + 3];
	json_t *h = NULL, *e;
	const char *alg, *enc, *kty, *crv;
	long n;
	int r = -EINVAL;

	if ((n = b64url_decode(s->p[0], s->n[0], raw, sizeof(raw))) <= 0 ||
	    (h = json_loadb((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(h))
		goto out;
	alg = json_string_value(json_object_get(h, "alg"));
	enc = json_string_value(json_object_get(h, "enc"));
	e = json_object_get(h, "epk");
	if (alg == NULL || enc == NULL || !json_is_object(e))
		goto out;
	r = -ENOTSUP;
	if (strcmp(alg, "ECDH-ES") != 0 || strcmp(enc, ENC_NAME) != 0 ||
	    json_object_get(h, "zip") != NULL || json_object_get(h, "crit") != NULL)
		goto out;
	kty = json_string_value(json_object_get(e, "kty"));
	crv = json_string_value(json_object_get(e, "crv"));
	r = -EINVAL;
	if (kty == NULL || crv == NULL || json_object_get(e, "d") != NULL)
		goto out;
	if ((r = get_partyinfo(h, "apu", apu, apulen)) != 0 ||
	    (r = get_partyinfo(h, "apv", apv, apvlen)) != 0 || (r = jwe_p256_from_jwk(e, epk)) != 0)
		goto out;
	r = 0;
out:
	json_decref(h);
	OPENSSL_cleanse(raw, sizeof(raw));
	return r;
}

int
jwe_decrypt_ecdhes(EVP_PKEY *own, const char *text, size_t len, uint8_t **pt, size_t *ptlen)
{
	struct parts s;
	EVP_PKEY *epk = NULL;
	EVP_CIPHER_CTX *cc = NULL;
	uint8_t cek[CEK_LEN], iv[IV_LEN], tag[TAG_LEN];
	uint8_t apu[JWE_PARTYINFO_MAX], apv[JWE_PARTYINFO_MAX];
	size_t apulen = 0, apvlen = 0, ctlen = 0, cap = 0;
	uint8_t *ct = NULL, *out = NULL;
	int l1 = 0, l2 = 0, r;
	long n;

	if (text == NULL || len == 0)
		return -EINVAL;
	if (len > JWE_COMPACT_MAX)
		return -EMSGSIZE;
	if ((r = split(text, len, &s)) != 0)
		return r;
	if (s.n[1] != 0)
		return -ENOTSUP; /* ECDH-ES is Direct Key Agreement: no encrypted key */
	if (s.n[0] > JWE_HEADER_B64_MAX || s.n[3] > b64url_len(JWE_PLAINTEXT_MAX))
		return -EMSGSIZE;
	if (s.n[0] == 0 || s.n[2] != IV_B64_LEN || s.n[4] != TAG_B64_LEN || !is_p256(own))
		return -EINVAL;
	if (!kept_ready())
		return -EIO;
	if ((r = check_header(&s, &epk, apu, &apulen, apv, &apvlen)) != 0)
		goto out;
	r = -EINVAL;
	if (b64url_decode(s.p[2], s.n[2], iv, IV_LEN) != (long)IV_LEN ||
	    b64url_decode(s.p[4], s.n[4], tag, TAG_LEN) != (long)TAG_LEN)
		goto out;
	cap = s.n[3] / 4 * 3 + 3;
	r = -ENOMEM;
	if ((ct = malloc(cap)) == NULL || (out = OPENSSL_secure_malloc(cap)) == NULL)
		goto out;
	r = -EINVAL;
	if ((n = b64url_decode(s.p[3], s.n[3], ct, cap)) < 0)
		goto out;
	ctlen = (size_t)n;
	if ((r = derive_cek(own, epk, apu, apulen, apv, apvlen, cek)) != 0)
		goto out;
	r = -EIO;
	if ((cc = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex2(cc, kept.gcm, cek, iv, NULL) != 1 ||
	    EVP_DecryptUpdate(cc, NULL, &l1, (const uint8_t *)s.p[0], (int)s.n[0]) != 1 ||
	    (ctlen > 0 && EVP_DecryptUpdate(cc, out, &l1, ct, (int)ctlen) != 1) ||
	    EVP_CIPHER_CTX_ctrl(cc, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if (ctlen == 0)
		l1 = 0;
	/* GCM's final compares the tag in constant time. */
	r = -EBADMSG;
	if (EVP_DecryptFinal_ex(cc, out + l1, &l2) != 1 || (size_t)l1 + (size_t)l2 != ctlen)
		goto out;
	*pt = out;
	*ptlen = ctlen;
	out = NULL;
	r = 0;
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	EVP_CIPHER_CTX_free(cc);
	EVP_PKEY_free(epk);
	if (out != NULL)
		OPENSSL_secure_clear_free(out, cap);
	free(ct);
	return r;
}
