/*
 * keys — key material and the cryptography of every vHSM operation, on
 * OpenSSL 3.  No I/O, no policy: vhsmd's ops layer decides who may call these.
 *
 * Material lives in OpenSSL's secure heap: symmetric keys and opaque secrets
 * as bytes from OPENSSL_secure_malloc, asymmetric keys as EVP_PKEYs (whose
 * private components OpenSSL itself keeps in the secure heap).
 *
 * Functions return 0 or a negative VHSM_E_* status.  Outputs are written only
 * on success.  Byte outputs marked (heap) are OPENSSL_malloc'ed: free with
 * OPENSSL_clear_free(); outputs marked (secure) are OPENSSL_secure_malloc'ed:
 * free with OPENSSL_secure_clear_free().
 */
#ifndef NITRIDE_VHSM_KEYS_H
#define NITRIDE_VHSM_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "nitride/vhsm.h"

/* One version of a key's material. */
struct vk_material {
	EVP_PKEY *pk;  /* asymmetric types */
	uint8_t *sec;  /* symmetric and opaque types (secure heap) */
	size_t sec_len;
};

#define VK_OPAQUE_MAX 4096u  /* largest opaque secret */
#define VK_GCM_NONCE 12u
#define VK_GCM_TAG 16u
#define VK_GCM_OVERHEAD (4u + VK_GCM_NONCE + VK_GCM_TAG) /* version, nonce, tag */

bool vk_type_valid(uint32_t type);
bool vk_type_asymmetric(uint32_t type);
/* The usages a type can have at all (generate/import masks the request with it). */
uint32_t vk_type_usages(uint32_t type);

/* Wipe and free the material (NULL-safe); the struct is zeroed. */
void vk_material_clear(struct vk_material *m);
/* New random material of `type`.  Opaque secrets are 32 random bytes; a cert
 * cannot be generated (VHSM_E_UNSUPPORTED). */
__attribute__((warn_unused_result)) int vk_generate(uint32_t type, struct vk_material *out);
/* Material from bytes: raw for AES-256 (32), HMAC (32 / 48, or any length 16..128),
 * opaque (1..VK_OPAQUE_MAX), cert (one DER X.509 certificate, 1..VHSM_CERT_MAX,
 * ordinary heap: public data); PKCS#8 or traditional DER private key for the
 * others, whose algorithm, curve or size must match `type`. */
__attribute__((warn_unused_result)) int vk_import(uint32_t type, const uint8_t *in, size_t len,
						  struct vk_material *out);
/* The material as bytes (the vk_import format; asymmetric keys as DER) (secure). */
__attribute__((warn_unused_result)) int vk_export(uint32_t type, const struct vk_material *m,
						  uint8_t **out, size_t *len);
/* DER SubjectPublicKeyInfo of an asymmetric key (heap). */
__attribute__((warn_unused_result)) int vk_public_der(const struct vk_material *m, uint8_t **out,
						      size_t *len);

/* Sign msg, hashing it with `hash`; with VHSM_HASH_PREHASHED in `hash`, msg is
 * the digest (or RSA PKCS#1 v1.5 DigestInfo) and is signed as is: wrong
 * lengths VHSM_E_ARGUMENT, Ed25519 VHSM_E_UNSUPPORTED (include/nitride/vhsm.h). */
__attribute__((warn_unused_result)) int vk_sign(uint32_t type, const struct vk_material *m,
						uint32_t alg, uint32_t hash, const uint8_t *msg,
						size_t len, uint8_t **sig, size_t *sig_len);
/* 0 valid, VHSM_E_BAD_SIGNATURE invalid.  HMAC types compare a MAC in constant time. */
__attribute__((warn_unused_result)) int vk_verify(uint32_t type, const struct vk_material *m,
						  uint32_t alg, uint32_t hash, const uint8_t *msg,
						  size_t len, const uint8_t *sig, size_t sig_len);
/* AES-256-GCM: out = version(u32le) || nonce(12, random) || ciphertext || tag(16) (heap).
 * RSA: OAEP with `hash` (default SHA-256) for MGF1 too; out is the ciphertext. */
__attribute__((warn_unused_result)) int vk_encrypt(uint32_t type, const struct vk_material *m,
						   uint32_t version, uint32_t hash,
						   const uint8_t *aad, size_t aad_len,
						   const uint8_t *in, size_t len, uint8_t **out,
						   size_t *out_len);
/* The key version an AES-GCM blob names; -1 if the blob is too short. */
int vk_gcm_blob_version(const uint8_t *in, size_t len, uint32_t *version);
/* Inverse of vk_encrypt (heap).  VHSM_E_DECRYPT when authentication fails. */
__attribute__((warn_unused_result)) int vk_decrypt(uint32_t type, const struct vk_material *m,
						   uint32_t hash, const uint8_t *aad,
						   size_t aad_len, const uint8_t *in, size_t len,
						   uint8_t **out, size_t *out_len);
/* RFC 5649 (AES key wrap with padding) under an AES-256 key; in 1..VK_OPAQUE_MAX*2 (heap). */
__attribute__((warn_unused_result)) int vk_wrap(const struct vk_material *m, const uint8_t *in,
						size_t len, uint8_t **out, size_t *out_len);
/* (secure; the allocation is len + 16 bytes: free with that size) */
__attribute__((warn_unused_result)) int vk_unwrap(const struct vk_material *m, const uint8_t *in,
						  size_t len, uint8_t **out, size_t *out_len);
/* HMAC with the key's digest (heap). */
__attribute__((warn_unused_result)) int vk_hmac(uint32_t type, const struct vk_material *m,
						const uint8_t *msg, size_t len, uint8_t **mac,
						size_t *mac_len);
/* ECDH of an EC key with a peer SPKI (same curve), then HKDF-SHA-256 with
 * info "nitride-vhsm-ecdh" || info into new material of `out_type` (AES-256,
 * HMAC or opaque: 32 bytes, HMAC-SHA-384: 48). */
__attribute__((warn_unused_result)) int vk_derive(uint32_t type, const struct vk_material *m,
						  const uint8_t *peer, size_t peer_len,
						  const uint8_t *info, size_t info_len,
						  uint32_t out_type, struct vk_material *out);
/* As vk_derive with a KDF choice (vhsm_kdf): HKDF as above; NONE, the shared
 * x-coordinate's leading bytes (VHSM_E_ARGUMENT if shorter than the new key;
 * info must be empty); X963_SHA*, ANSI X9.63 with `info` as the shared info
 * (at most VHSM_KDF_INFO_MAX bytes).  The secret never leaves the secure heap. */
__attribute__((warn_unused_result)) int vk_derive_kdf(uint32_t type, const struct vk_material *m,
						      const uint8_t *peer, size_t peer_len,
						      uint32_t kdf, const uint8_t *info,
						      size_t info_len, uint32_t out_type,
						      struct vk_material *out);
/* Random bytes (heap). */
__attribute__((warn_unused_result)) int vk_random(size_t n, uint8_t **out);

#endif
