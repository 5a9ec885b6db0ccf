/*
 * sim_crypto — the simulator's key derivations (docs/snpsim.md "Key derivation").
 */
#ifndef NITRIDE_SIM_CRYPTO_H
#define NITRIDE_SIM_CRYPTO_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/evp.h>

/* HKDF-SHA-384 (RFC 5869, extract then expand) of ikm with salt and info into
 * out[outlen].  Returns 0 or -1. */
__attribute__((warn_unused_result)) int sim_hkdf_sha384(const uint8_t *ikm, size_t ikm_len,
							const uint8_t *salt, size_t salt_len,
							const uint8_t *info, size_t info_len,
							uint8_t *out, size_t outlen);

/* A P-384 key pair whose private scalar is d = (seed mod (n - 1)) + 1, seed read as a
 * 64-byte big-endian integer.  *out: caller frees (EVP_PKEY_free).  Returns 0 or -1. */
__attribute__((warn_unused_result)) int sim_p384_from_seed(const uint8_t seed[64], EVP_PKEY **out);

#endif
