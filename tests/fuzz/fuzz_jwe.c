/*
 * libFuzzer target: jwe_decrypt_ecdhes (src/common/jwe.c), the parser of the
 * compact JWE vhsmd receives from nitrided.
 *
 * An input that starts with '{' is taken as a protected header: the target
 * wraps it (base64url) into a compact JWE with a fixed IV, ciphertext and
 * tag, so that the header checks are reached without the fuzzer having to
 * find base64url first.  Any other input is the compact text itself.  The
 * recipient is the protocol vectors' transfer key (binding.json), so the
 * seeds (secret.jwe) decrypt in full.
 *
 * Properties checked (abort() on violation):
 *  - decrypt never crashes and returns 0 or one of the documented codes;
 *  - on failure the outputs are untouched; on success the plaintext is no
 *    longer than the ciphertext part allows and within JWE_PLAINTEXT_MAX.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "common/jwe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The vectors' tee_private_jwk (protocol/binding.json): a test key. */
static const uint8_t vec_d[32] = {
	0xdc, 0x91, 0xb7, 0xd7, 0x6a, 0x94, 0xfe, 0xbf, 0xff, 0x30, 0x0c, 0x58, 0x7a, 0x54, 0x65, 0xaf,
	0x91, 0x25, 0x3b, 0xf2, 0x15, 0xf8, 0x0f, 0x47, 0x38, 0x7c, 0x55, 0x9d, 0x7c, 0xe1, 0x7f, 0x3b,
};

static EVP_PKEY *
recipient(void)
{
	static EVP_PKEY *k;
	OSSL_PARAM_BLD *b;
	OSSL_PARAM *ps = NULL;
	EVP_PKEY_CTX *c;
	BIGNUM *bn;
	json_t *pub;
	EVP_PKEY *tmp = NULL;
	uint8_t pt[65];
	size_t n = 0;

	if (k != NULL)
		return k;
	/* The public point from the JWK's x and y, through the module. */
	pub = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x",
			"g8MMElYJEOgXsaggM3TqYL-ldI-YDW4q7E5SptbJlwI", "y",
			"d4u-Jfy-dXoMqKcgp4LQ764nM2i1_rODPUnpp-uORx8");
	if (pub == NULL || jwe_p256_from_jwk(pub, &tmp) != 0 ||
	    EVP_PKEY_get_octet_string_param(tmp, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
					    &n) != 1)
		abort();
	b = OSSL_PARAM_BLD_new();
	bn = BN_bin2bn(vec_d, sizeof(vec_d), NULL);
	c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (b == NULL || bn == NULL || c == NULL ||
	    !OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, bn) ||
	    !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, n) ||
	    (ps = OSSL_PARAM_BLD_to_param(b)) == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
	    EVP_PKEY_fromdata(c, &k, EVP_PKEY_KEYPAIR, ps) != 1)
		abort();
	OSSL_PARAM_free(ps);
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(bn);
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(tmp);
	json_decref(pub);
	return k;
}

static void
check(const char *text, size_t len)
{
	uint8_t *pt = (uint8_t *)&pt, *const sentinel = pt;
	size_t ptl = 12345;
	int r = jwe_decrypt_ecdhes(recipient(), text, len, &pt, &ptl);

	if (r == 0) {
		if (ptl > JWE_PLAINTEXT_MAX || ptl > len)
			abort();
		OPENSSL_secure_clear_free(pt, ptl);
		return;
	}
	if (pt != sentinel || ptl != 12345)
		abort();
	if (r != -EINVAL && r != -ENOTSUP && r != -EMSGSIZE && r != -EBADMSG && r != -ENOMEM)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char tail[] = "..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA";
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *w;
	size_t i, o = 0;

	if (size > 0 && data[0] == '{' && size <= 4096) {
		if ((w = malloc(size / 3 * 4 + 4 + sizeof(tail))) == NULL)
			return 0;
		for (i = 0; i + 3 <= size; i += 3) {
			uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];

			w[o++] = tbl[v >> 18];
			w[o++] = tbl[(v >> 12) & 63];
			w[o++] = tbl[(v >> 6) & 63];
			w[o++] = tbl[v & 63];
		}
		if (size - i > 0) {
			uint32_t v = (uint32_t)data[i] << 16 | (size - i == 2 ? (uint32_t)data[i + 1] << 8 : 0);

			w[o++] = tbl[v >> 18];
			w[o++] = tbl[(v >> 12) & 63];
			if (size - i == 2)
				w[o++] = tbl[(v >> 6) & 63];
		}
		memcpy(w + o, tail, sizeof(tail) - 1);
		check(w, o + sizeof(tail) - 1);
		free(w);
		return 0;
	}
	check((const char *)data, size);
	return 0;
}
