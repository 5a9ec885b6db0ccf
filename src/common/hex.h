/*
 * hex — lowercase hexadecimal encoding.
 */
#ifndef NITRIDE_COMMON_HEX_H
#define NITRIDE_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Write 2*n lowercase hex digits and a NUL into out (room for 2*n+1). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly 2*n hex digits (either case) from `in` (NUL-terminated, length
 * exactly 2*n).  Returns 0, or -1 on a bad digit or length. */
__attribute__((warn_unused_result)) int hex_decode(const char *in, uint8_t *out, size_t n);

#endif
