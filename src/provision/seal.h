/*
 * seal — provd's master key and AES-256-GCM encryption of secret material at
 * rest.  The key is 32 random bytes in a file of mode 0600, created on first
 * start; it lives in OpenSSL's secure heap.
 *
 * Sealed format: IV (12 bytes) || ciphertext || tag (16 bytes).  The caller's
 * AAD binds the ciphertext to its row (name, version, type), so a row copied
 * onto another does not decrypt.
 */
#ifndef NITRIDE_PROVISION_SEAL_H
#define NITRIDE_PROVISION_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_KEY_LEN 32u
#define SEAL_OVERHEAD 28u

typedef struct seal_key seal_key;

/* Load the key file at `path`; when it does not exist and `create` is set,
 * make a new random key there (mode 0600, written atomically).  The file must
 * be a regular file of exactly 32 bytes not readable by group or others.
 * Returns 0 and *out (free with seal_key_free), or -1 with err. */
__attribute__((warn_unused_result)) int seal_key_open(const char *path, bool create,
						      seal_key **out, char *err, size_t errlen);
/* Wipe and free; NULL-safe. */
void seal_key_free(seal_key *k);

/* Encrypt pt under k with aad.  *ct is malloc'ed (caller frees), *ctlen =
 * ptlen + SEAL_OVERHEAD.  Returns 0 or -1. */
__attribute__((warn_unused_result)) int seal_encrypt(const seal_key *k, const uint8_t *aad,
						     size_t aadlen, const uint8_t *pt, size_t ptlen,
						     uint8_t **ct, size_t *ctlen);
/* Decrypt and authenticate.  *pt is in the secure heap (free it with
 * OPENSSL_secure_clear_free(*pt, *ptlen)); it has one extra NUL byte.
 * Returns 0, or -1 when the tag, the AAD or the key does not match. */
__attribute__((warn_unused_result)) int seal_decrypt(const seal_key *k, const uint8_t *aad,
						     size_t aadlen, const uint8_t *ct, size_t ctlen,
						     uint8_t **pt, size_t *ptlen);

#endif
