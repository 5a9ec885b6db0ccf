/*
 * secret — secret types, their material, vHSM attributes, and the release
 * payload and JWE (docs/provd.md, "What a release carries").
 *
 * Types (vhsmd's names): aes256 (32 raw bytes), p256, p384, rsa2048, rsa3072,
 * rsa4096 (PKCS#8 DER private key), opaque (1..4096 bytes, e.g. a LUKS
 * passphrase).
 */
#ifndef NITRIDE_PROVISION_SECRET_H
#define NITRIDE_PROVISION_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "provision/store.h"

#define SECRET_OPAQUE_MAX 4096u
#define SECRET_WHY_MAX 256u

bool secret_type_known(const char *type);

/* Material for a new version: from `in` (for keys a PEM or DER private key of
 * the type, for aes256 32 raw bytes, for opaque the bytes), or generated when
 * `in` is NULL.  *mat is in the secure heap (OPENSSL_secure_clear_free(*mat,
 * *len)).  Returns 0 or -1 with why. */
__attribute__((warn_unused_result)) int secret_material(const char *type, const uint8_t *in,
							size_t inlen, uint8_t **mat, size_t *len,
							char *why, size_t whylen);

/* Normalise the vHSM attributes of a new version (absent members get the
 * type's defaults; unknown members are refused).  *out: new JSON object
 * {usages, exportable, persist, access, require_attestation}. */
__attribute__((warn_unused_result)) int secret_attrs(const char *type, const json_t *in,
						     json_t **out, char *why, size_t whylen);

/* The release payload of a version as JSON text in the secure heap
 * (OPENSSL_secure_clear_free(*text, *len + 1)). */
__attribute__((warn_unused_result)) int secret_payload(const store_item *it, char **text,
						       size_t *len);

/* Wipes the private JWKs secret_payload() keeps for keys it released
 * (secret.c: bounded, secure heap).  For exit and tests. */
void secret_cache_clear(void);

/* Compact JWE (alg ECDH-ES, enc A256GCM, cty application/json) of pt to the
 * P-256 public key `to`, the token's checked cnf key (common/jwe.h).  *jwe is
 * malloc'ed (caller frees). */
__attribute__((warn_unused_result)) int secret_jwe(EVP_PKEY *to, const uint8_t *pt, size_t len,
						   char **jwe);

#endif
