/*
 * util — small helpers shared by provd's modules: base64 (standard and
 * base64url without padding, strict), a wiping allocator for jansson and
 * cjose, SHA-256 in hex, and the log line.
 */
#ifndef NITRIDE_PROVISION_UTIL_H
#define NITRIDE_PROVISION_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROV_SHA256_HEX 65 /* 64 hex digits + NUL */

/* Make every allocation of jansson and cjose wiped on free (secret material
 * passes through their buffers).  Call once, before any JSON is built. */
void prov_alloc_init(void);

/* Base64url without padding.  Returns a malloc'ed NUL-terminated string, or
 * NULL when out of memory.  Caller frees. */
char *prov_b64url_encode(const uint8_t *in, size_t n);
/* Standard base64 with padding.  Caller frees. */
char *prov_b64_encode(const uint8_t *in, size_t n);

/* Strict decoders: reject bad characters, wrong padding and more than `max`
 * decoded bytes.  On success *out is malloc'ed (caller frees; wipe it if it
 * held a secret) with a NUL after *outlen bytes; on failure returns -1 and
 * leaves *out untouched. */
__attribute__((warn_unused_result)) int prov_b64url_decode(const char *in, size_t n, size_t max,
							  uint8_t **out, size_t *outlen);
__attribute__((warn_unused_result)) int prov_b64_decode(const char *in, size_t n, size_t max,
						       uint8_t **out, size_t *outlen);

/* SHA-256 of buf as 64 lowercase hex digits into out. */
void prov_sha256_hex(const void *buf, size_t n, char out[PROV_SHA256_HEX]);

/* One log line on stderr: "provd: <level>: <message>".  Never pass secrets. */
__attribute__((format(printf, 2, 3))) void prov_log(const char *level, const char *fmt, ...);

#endif
