#include "vhsm/proto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/rbuf.h"

static uint16_t
get_u16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

int
vhsm_tlv_validate(const uint8_t *body, size_t len)
{
	struct rbuf b;
	uint32_t seen = 0; /* bit per tag, VHSM_T_MAX < 32 */
	size_t n = 0;

	rbuf_init(&b, body, len);
	while (rbuf_remaining(&b) > 0) {
		const uint8_t *h = NULL;
		uint16_t tag;
		uint32_t vlen;

		if (++n > VHSM_TLV_MAX)
			return VHSM_DEC_BAD;
		if (rbuf_get_direct(&b, &h, 2) != 0 || rbuf_get_u32le(&b, &vlen) != 0)
			return VHSM_DEC_BAD;
		tag = get_u16le(h);
		if (tag == 0 || tag > VHSM_T_MAX)
			return VHSM_DEC_BAD;
		if (tag != VHSM_T_KEYINFO) {
			if (seen & (1u << tag))
				return VHSM_DEC_BAD;
			seen |= 1u << tag;
		}
		if (rbuf_skip(&b, vlen) != 0)
			return VHSM_DEC_BAD;
	}
	return 0;
}

int
vhsm_frame_decode(const uint8_t *buf, size_t len, bool responses, struct vhsm_frame *f,
		  size_t *consumed)
{
	struct rbuf b;
	uint8_t magic[4], version, type;
	uint32_t id, blen;
	const uint8_t *body = NULL;
	size_t bad_off;

	*consumed = 0;
	rbuf_init(&b, buf, len);
	/* Check what is there of the header byte by byte, so garbage is refused early. */
	if (rbuf_get_bytes(&b, magic, 4) != 0) {
		static const uint8_t m[4] = { VHSM_MAGIC0, VHSM_MAGIC1, VHSM_MAGIC2, VHSM_MAGIC3 };
		return len == 0 || memcmp(buf, m, len) == 0 ? VHSM_DEC_NEED_MORE : VHSM_DEC_BAD;
	}
	if (magic[0] != VHSM_MAGIC0 || magic[1] != VHSM_MAGIC1 || magic[2] != VHSM_MAGIC2 ||
	    magic[3] != VHSM_MAGIC3)
		return VHSM_DEC_BAD;
	if (rbuf_get_u8(&b, &version) != 0)
		return VHSM_DEC_NEED_MORE;
	if (version != VHSM_PROTO_VERSION)
		return VHSM_DEC_BAD;
	if (rbuf_get_u8(&b, &type) != 0)
		return VHSM_DEC_NEED_MORE;
	if (responses) {
		if ((type & VHSM_RESPONSE) == 0 || (type & 0x7fu) == 0 ||
		    (type & 0x7fu) > VHSM_OP_MAX)
			return VHSM_DEC_BAD;
	} else if (type == 0 || type > VHSM_OP_MAX) {
		return VHSM_DEC_BAD;
	}
	if (rbuf_remaining(&b) < 2)
		return rbuf_expect_zero(&b, rbuf_remaining(&b), &bad_off) == 0 ? VHSM_DEC_NEED_MORE
									: VHSM_DEC_BAD;
	if (rbuf_expect_zero(&b, 2, &bad_off) != 0)
		return VHSM_DEC_BAD;
	if (rbuf_get_u32le(&b, &id) != 0)
		return VHSM_DEC_NEED_MORE;
	if (rbuf_get_u32le(&b, &blen) != 0) {
		/* A partial length: its bytes so far must not already exceed the cap. */
		uint32_t partial = 0;
		size_t k, have = rbuf_remaining(&b);

		for (k = 0; k < have; k++)
			partial |= (uint32_t)buf[12 + k] << (8 * k);
		if (partial > VHSM_BODY_MAX)
			return VHSM_DEC_BAD;
		return VHSM_DEC_NEED_MORE;
	}
	if (blen > VHSM_BODY_MAX)
		return VHSM_DEC_BAD;
	if (rbuf_get_direct(&b, &body, blen) != 0)
		return VHSM_DEC_NEED_MORE;
	if (vhsm_tlv_validate(body, blen) != 0)
		return VHSM_DEC_BAD;
	f->type = type;
	f->id = id;
	f->body = body;
	f->body_len = blen;
	*consumed = VHSM_HDR_LEN + (size_t)blen;
	return 0;
}

int
vhsm_tlv_next(const uint8_t *body, size_t len, size_t *off, uint16_t *tag, const uint8_t **val,
	      size_t *vlen)
{
	struct rbuf b;
	const uint8_t *h = NULL;
	uint32_t l;

	rbuf_init(&b, body, len);
	if (rbuf_seek(&b, *off) != 0 || rbuf_remaining(&b) == 0)
		return -1;
	if (rbuf_get_direct(&b, &h, 2) != 0 || rbuf_get_u32le(&b, &l) != 0 ||
	    rbuf_get_direct(&b, val, l) != 0)
		return -1;
	*tag = get_u16le(h);
	*vlen = l;
	*off = rbuf_offset(&b);
	return 0;
}

int
vhsm_tlv_find(const uint8_t *body, size_t len, uint16_t tag, const uint8_t **val, size_t *vlen)
{
	size_t off = 0;
	uint16_t t;
	const uint8_t *v;
	size_t l;

	while (vhsm_tlv_next(body, len, &off, &t, &v, &l) == 0) {
		if (t == tag) {
			*val = v;
			*vlen = l;
			return 0;
		}
	}
	return -1;
}

int
vhsm_tlv_u32(const uint8_t *body, size_t len, uint16_t tag, uint32_t *v)
{
	const uint8_t *p;
	size_t l;
	struct rbuf b;

	if (vhsm_tlv_find(body, len, tag, &p, &l) != 0)
		return -1;
	if (l != 4)
		return -2;
	rbuf_init(&b, p, l);
	return rbuf_get_u32le(&b, v) == 0 ? 0 : -2;
}

bool
vhsm_name_valid(const uint8_t *name, size_t len)
{
	size_t i;

	if (len == 0 || len > VHSM_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		uint8_t c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '.' || c == '_' || c == ':' || c == '@' || c == '/' || c == '+' ||
		    c == '-')
			continue;
		return false;
	}
	return name[0] != '.' && name[0] != '-';
}

/* ------------------------------------------------------------------ */

void
vhsm_wbuf_init(struct vhsm_wbuf *w, size_t max)
{
	memset(w, 0, sizeof(*w));
	w->max = max;
}

static void
wbuf_put(struct vhsm_wbuf *w, const void *p, size_t n)
{
	if (w->failed)
		return;
	if (n > w->max || w->len > w->max - n) {
		w->failed = true;
		return;
	}
	if (w->cap - w->len < n) {
		size_t ncap = w->cap ? w->cap : 256;
		uint8_t *np;

		while (ncap - w->len < n)
			ncap = ncap > w->max / 2 ? w->max : ncap * 2;
		/* No realloc: the old bytes may be secret and must be wiped. */
		np = malloc(ncap);
		if (np == NULL) {
			w->failed = true;
			return;
		}
		if (w->len)
			memcpy(np, w->p, w->len);
		if (w->p) {
			OPENSSL_cleanse(w->p, w->cap);
			free(w->p);
		}
		w->p = np;
		w->cap = ncap;
	}
	if (n)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

void
vhsm_wbuf_raw(struct vhsm_wbuf *w, const void *p, size_t n)
{
	wbuf_put(w, p, n);
}

void
vhsm_wbuf_frame(struct vhsm_wbuf *w, uint8_t type, uint32_t id)
{
	uint8_t h[VHSM_HDR_LEN] = { VHSM_MAGIC0, VHSM_MAGIC1, VHSM_MAGIC2, VHSM_MAGIC3,
				    VHSM_PROTO_VERSION, type, 0, 0 };

	put_u32le(h + 8, id);
	put_u32le(h + 12, 0);
	wbuf_put(w, h, sizeof(h));
}

void
vhsm_wbuf_tlv(struct vhsm_wbuf *w, uint16_t tag, const void *val, size_t len)
{
	uint8_t h[VHSM_TLV_HDR_LEN];

	if (len > UINT32_MAX) {
		w->failed = true;
		return;
	}
	h[0] = (uint8_t)tag;
	h[1] = (uint8_t)(tag >> 8);
	put_u32le(h + 2, (uint32_t)len);
	wbuf_put(w, h, sizeof(h));
	wbuf_put(w, val, len);
}

void
vhsm_wbuf_tlv_u32(struct vhsm_wbuf *w, uint16_t tag, uint32_t v)
{
	uint8_t b[4];

	put_u32le(b, v);
	vhsm_wbuf_tlv(w, tag, b, 4);
}

void
vhsm_wbuf_tlv_str(struct vhsm_wbuf *w, uint16_t tag, const char *s)
{
	vhsm_wbuf_tlv(w, tag, s, strlen(s));
}

size_t
vhsm_wbuf_nest_begin(struct vhsm_wbuf *w, uint16_t tag)
{
	size_t at = w->len;

	vhsm_wbuf_tlv(w, tag, NULL, 0);
	return at;
}

void
vhsm_wbuf_nest_end(struct vhsm_wbuf *w, size_t at)
{
	if (w->failed || w->len < at + VHSM_TLV_HDR_LEN)
		return;
	if (w->len - at - VHSM_TLV_HDR_LEN > UINT32_MAX) {
		w->failed = true;
		return;
	}
	put_u32le(w->p + at + 2, (uint32_t)(w->len - at - VHSM_TLV_HDR_LEN));
}

int
vhsm_wbuf_finish(struct vhsm_wbuf *w)
{
	if (w->failed || w->len < VHSM_HDR_LEN || w->len - VHSM_HDR_LEN > VHSM_BODY_MAX)
		return -1;
	put_u32le(w->p + 12, (uint32_t)(w->len - VHSM_HDR_LEN));
	return 0;
}

void
vhsm_wbuf_free(struct vhsm_wbuf *w)
{
	if (w == NULL)
		return;
	if (w->p) {
		/* Only [0, len) was ever written: appends grow len, a larger
		 * buffer receives a copy of [0, len) and the old one is wiped whole,
		 * and whoever resets len wipes first (vhsmd's conn_write). */
		OPENSSL_cleanse(w->p, w->len);
		free(w->p);
	}
	w->p = NULL;
	w->len = w->cap = 0;
	w->failed = false;
}
