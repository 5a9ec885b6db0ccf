/*
 * jwe — compact JWE with alg "ECDH-ES" and enc "A256GCM" on P-256, and
 * nothing else (RFC 7516, RFC 7518 §4.6 and §5.3).  docs/jwe.md says why this
 * one case is done here with OpenSSL rather than with cjose (cost), and what
 * the decrypt side checks.
 *
 * Keys are OpenSSL EVP_PKEYs on P-256.  Public keys from outside come in
 * through jwe_p256_from_jwk (which checks that the point is on the curve);
 * the transfer key of a hand-off is made with jwe_p256_keygen.  All functions
 * may be called from several threads at once.
 *
 * Errors are negative errno values:
 *   -EINVAL    malformed (not five parts, bad base64url, bad JSON, a member of
 *              the wrong type or size, a point that is not on P-256, a key
 *              that is not a P-256 key)
 *   -ENOTSUP   well-formed but not what this module does (alg, enc, crv,
 *              "zip", "crit", a non-empty encrypted key)
 *   -EMSGSIZE  a part or the plaintext beyond the caps below
 *   -EBADMSG   authentication failed: tampered, or not encrypted to this key
 *   -ENOMEM, -EIO (OpenSSL failed)
 * jwe_strerror names each.
 */
#ifndef NITRIDE_COMMON_JWE_H
#define NITRIDE_COMMON_JWE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

/* Caps on what a compact JWE may carry.  The plaintext cap is far above
 * provd's largest release (an RSA-4096 key with its JWK and attributes,
 * ≈ 8 KiB); the header cap is far above a header with a P-256 "epk". */
#define JWE_PLAINTEXT_MAX (128u * 1024u)
#define JWE_HEADER_B64_MAX 2048u   /* protected header, base64url characters */
#define JWE_PARTYINFO_MAX 256u     /* "apu" / "apv", decoded bytes each */
#define JWE_COMPACT_MAX (JWE_HEADER_B64_MAX + 4u + 16u + (JWE_PLAINTEXT_MAX + 2u) / 3u * 4u + 22u)

/* A new P-256 key pair (*out, EVP_PKEY_free; the private scalar is in
 * OpenSSL's secure heap).  0 or -ENOMEM/-EIO. */
__attribute__((warn_unused_result)) int jwe_p256_keygen(EVP_PKEY **out);

/* The P-256 public key of an EC JWK {"kty":"EC","crv":"P-256","x","y"} with
 * x and y exactly 32 bytes of unpadded base64url, the point on the curve.
 * Other members are ignored (a "d" included: only the public half is taken).
 * *out is written only on success (EVP_PKEY_free).  0 or -EINVAL/-ENOTSUP/
 * -ENOMEM/-EIO. */
__attribute__((warn_unused_result)) int jwe_p256_from_jwk(const json_t *jwk, EVP_PKEY **out);

/* The public JWK of a P-256 key: a new object {"kty","crv","x","y"}
 * (json_decref).  0 or -EINVAL/-ENOMEM/-EIO. */
__attribute__((warn_unused_result)) int jwe_p256_public_jwk(const EVP_PKEY *key, json_t **out);

/*
 * Encrypt pt (ptlen ≤ JWE_PLAINTEXT_MAX; ptlen 0 is allowed) to the P-256
 * public key `peer`: a fresh ephemeral key, ECDH, Concat KDF with SHA-256
 * (no apu/apv), AES-256-GCM under a random 96-bit IV.  The protected header
 * is {"alg":"ECDH-ES","enc":"A256GCM"[,"cty":cty],"epk":{…}}; cty may be NULL
 * and is at most 64 characters of [A-Za-z0-9!#$&^_.+/-].  *out is the
 * NUL-terminated compact serialisation, malloc'ed (caller frees), *outlen
 * its length; both written only on success.
 */
__attribute__((warn_unused_result)) int jwe_encrypt_ecdhes(EVP_PKEY *peer, const char *cty,
							   const uint8_t *pt, size_t ptlen,
							   char **out, size_t *outlen);

/*
 * Decrypt the compact JWE text[0..len) with the P-256 private key `own`.
 * Checked, in this order: size caps; exactly five parts; an empty encrypted
 * key; strict unpadded base64url everywhere; the protected header a JSON
 * object without duplicate members, with "alg" "ECDH-ES", "enc" "A256GCM",
 * no "zip", no "crit", "epk" a P-256 EC public key on the curve (no "d"),
 * "apu"/"apv" if present base64url strings of ≤ JWE_PARTYINFO_MAX bytes
 * (they enter the KDF); IV 12 bytes; tag 16 bytes; then the GCM tag over the
 * ciphertext with the header's base64url text, as received, as AAD.
 * On success *pt is in OpenSSL's secure heap (OPENSSL_secure_clear_free(*pt,
 * *ptlen)); outputs are written only on success and nothing of the
 * plaintext is left anywhere on failure.
 */
__attribute__((warn_unused_result)) int jwe_decrypt_ecdhes(EVP_PKEY *own, const char *text,
							   size_t len, uint8_t **pt, size_t *ptlen);

/* A static description of a jwe_* error code. */
const char *jwe_strerror(int r);

#endif
