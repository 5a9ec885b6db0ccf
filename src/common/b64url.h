/*
 * base64url without padding (RFC 4648 §5, as JOSE uses it).  One strict
 * decoder for every wire field that carries it: nonces, JWK coordinates,
 * JWE parts.
 */
#ifndef NITRIDE_COMMON_B64URL_H
#define NITRIDE_COMMON_B64URL_H

#include <stddef.h>
#include <stdint.h>

/* Characters that n bytes encode to (no padding, no NUL). */
size_t b64url_len(size_t n);

/* Encode n bytes at out, which has room for b64url_len(n) characters; no NUL. */
void b64url_put(const uint8_t *in, size_t n, char *out);

/* The same, NUL-terminated: out has room for b64url_len(n) + 1. */
void b64url_encode(const uint8_t *in, size_t n, char *out);

/*
 * Decode in[0..n) into out (room for cap bytes): the byte count, or -1 for a
 * character outside the alphabet (padding included), a length that no byte
 * string has (n % 4 == 1), non-zero unused bits (a second spelling of the
 * same bytes), or more than cap bytes.
 */
long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap);

#endif
