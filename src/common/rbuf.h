/*
 * rbuf — a bounded, read-only cursor over untrusted bytes.
 *
 * Every wire byte Nitride parses goes through this: each read checks the
 * remaining length first (without overflowing) and fails without moving the
 * cursor.  Functions return 0 or -1; -1 means "not enough bytes" (or, for
 * rbuf_expect_zero, "a byte was not zero", with its offset in *bad_off).
 */
#ifndef NITRIDE_COMMON_RBUF_H
#define NITRIDE_COMMON_RBUF_H

#include <stddef.h>
#include <stdint.h>

struct rbuf {
	const uint8_t *base; /* start of the whole input, for offsets in messages */
	size_t len;          /* total length */
	size_t off;          /* read position, 0 <= off <= len */
};

/* A cursor over buf[0..len).  The bytes are borrowed, not copied. */
void rbuf_init(struct rbuf *b, const uint8_t *buf, size_t len);
size_t rbuf_remaining(const struct rbuf *b);
size_t rbuf_offset(const struct rbuf *b);
/* Position the cursor at an absolute offset (<= len). */
__attribute__((warn_unused_result)) int rbuf_seek(struct rbuf *b, size_t off);
__attribute__((warn_unused_result)) int rbuf_skip(struct rbuf *b, size_t n);
__attribute__((warn_unused_result)) int rbuf_get_u8(struct rbuf *b, uint8_t *v);
__attribute__((warn_unused_result)) int rbuf_get_u32le(struct rbuf *b, uint32_t *v);
__attribute__((warn_unused_result)) int rbuf_get_u64le(struct rbuf *b, uint64_t *v);
/* Copy n bytes out. */
__attribute__((warn_unused_result)) int rbuf_get_bytes(struct rbuf *b, void *dst, size_t n);
/* Borrow n bytes in place (valid as long as the underlying buffer). */
__attribute__((warn_unused_result)) int rbuf_get_direct(struct rbuf *b, const uint8_t **p, size_t n);
/* Consume n bytes that must all be zero; on a non-zero byte, *bad_off gets its absolute
 * offset and the cursor does not move. */
__attribute__((warn_unused_result)) int rbuf_expect_zero(struct rbuf *b, size_t n, size_t *bad_off);

/* Little-endian stores into a fixed buffer (caller guarantees the room). */
void put_u32le(uint8_t *p, uint32_t v);
void put_u64le(uint8_t *p, uint64_t v);

#endif
