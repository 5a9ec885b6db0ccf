#include "sim/sim_crypto.h"

#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

int
sim_hkdf_sha384(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		const uint8_t *info, size_t info_len, uint8_t *out, size_t outlen)
{
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5];
	char digest[] = "SHA384";
	int r = -1;

	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL || (kctx = EVP_KDF_CTX_new(kdf)) == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(uintptr_t)ikm, ikm_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt, salt_len);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info, info_len);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, outlen, params) != 1)
		goto out;
	r = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	ERR_clear_error();
	return r;
}

int
sim_p384_from_seed(const uint8_t seed[64], EVP_PKEY **out)
{
	EC_GROUP *g = NULL;
	EC_POINT *pub = NULL;
	BN_CTX *bnctx = NULL;
	BIGNUM *d = NULL, *nm1 = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	uint8_t pubbuf[1 + 2 * 48];
	size_t publen;
	char group[] = "P-384";
	int r = -1;

	if ((g = EC_GROUP_new_by_curve_name(NID_secp384r1)) == NULL ||
	    (bnctx = BN_CTX_secure_new()) == NULL || (d = BN_secure_new()) == NULL ||
	    (nm1 = BN_dup(EC_GROUP_get0_order(g))) == NULL || BN_sub_word(nm1, 1) != 1 ||
	    BN_bin2bn(seed, 64, d) == NULL || BN_mod(d, d, nm1, bnctx) != 1 || BN_add_word(d, 1) != 1)
		goto out;
	if ((pub = EC_POINT_new(g)) == NULL || EC_POINT_mul(g, pub, d, NULL, NULL, bnctx) != 1 ||
	    (publen = EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, pubbuf,
					 sizeof(pubbuf), bnctx)) != sizeof(pubbuf))
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pubbuf, publen) != 1 ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(pctx) != 1 ||
	    EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
		goto out;
	*out = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	OSSL_PARAM_free(params); /* d is a secure BIGNUM, so its copy sits in the secure part, cleared on free */
	OSSL_PARAM_BLD_free(bld);
	EC_POINT_free(pub);
	BN_free(nm1);
	BN_clear_free(d);
	BN_CTX_free(bnctx);
	EC_GROUP_free(g);
	ERR_clear_error();
	return r;
}
