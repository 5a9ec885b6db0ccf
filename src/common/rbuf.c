#include "rbuf.h"

#include <string.h>

void
rbuf_init(struct rbuf *b, const uint8_t *buf, size_t len)
{
	b->base = buf;
	b->len = buf != NULL ? len : 0;
	b->off = 0;
}

size_t
rbuf_remaining(const struct rbuf *b)
{
	return b->len - b->off;
}

size_t
rbuf_offset(const struct rbuf *b)
{
	return b->off;
}

int
rbuf_seek(struct rbuf *b, size_t off)
{
	if (off > b->len)
		return -1;
	b->off = off;
	return 0;
}

int
rbuf_skip(struct rbuf *b, size_t n)
{
	if (rbuf_remaining(b) < n)
		return -1;
	b->off += n;
	return 0;
}

int
rbuf_get_direct(struct rbuf *b, const uint8_t **p, size_t n)
{
	if (rbuf_remaining(b) < n)
		return -1;
	*p = b->base + b->off;
	b->off += n;
	return 0;
}

int
rbuf_get_bytes(struct rbuf *b, void *dst, size_t n)
{
	const uint8_t *p;

	if (rbuf_get_direct(b, &p, n) != 0)
		return -1;
	if (n > 0)
		memcpy(dst, p, n);
	return 0;
}

int
rbuf_get_u8(struct rbuf *b, uint8_t *v)
{
	return rbuf_get_bytes(b, v, 1);
}

int
rbuf_get_u32le(struct rbuf *b, uint32_t *v)
{
	const uint8_t *p;

	if (rbuf_get_direct(b, &p, 4) != 0)
		return -1;
	*v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
	return 0;
}

int
rbuf_get_u64le(struct rbuf *b, uint64_t *v)
{
	uint32_t lo, hi;
	size_t save = b->off;

	if (rbuf_get_u32le(b, &lo) != 0 || rbuf_get_u32le(b, &hi) != 0) {
		b->off = save;
		return -1;
	}
	*v = (uint64_t)hi << 32 | lo;
	return 0;
}

int
rbuf_expect_zero(struct rbuf *b, size_t n, size_t *bad_off)
{
	size_t i;

	if (rbuf_remaining(b) < n)
		return -1;
	for (i = 0; i < n; i++) {
		if (b->base[b->off + i] != 0) {
			if (bad_off != NULL)
				*bad_off = b->off + i;
			return -1;
		}
	}
	b->off += n;
	return 0;
}

void
put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void
put_u64le(uint8_t *p, uint64_t v)
{
	put_u32le(p, (uint32_t)v);
	put_u32le(p + 4, (uint32_t)(v >> 32));
}
