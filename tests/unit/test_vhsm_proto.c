/* Unit tests: the vHSM frame codec (src/vhsm/proto.c), positive and negative. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/rbuf.h"
#include "vhsm/proto.h"

/* A request frame with a NAME and a DATA TLV; caller frees w. */
static void
build(struct vhsm_wbuf *w, uint8_t type, uint32_t id)
{
	vhsm_wbuf_init(w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(w, type, id);
	vhsm_wbuf_tlv_str(w, VHSM_T_NAME, "app/key-1");
	vhsm_wbuf_tlv(w, VHSM_T_DATA, "\x01\x02\x03", 3);
	vhsm_wbuf_tlv_u32(w, VHSM_T_ALG, 2);
	assert_int_equal(vhsm_wbuf_finish(w), 0);
}

static void
test_roundtrip(void **state)
{
	struct vhsm_wbuf w;
	struct vhsm_frame f;
	size_t used = 0, l;
	const uint8_t *p;
	uint32_t v;

	(void)state;
	build(&w, VHSM_OP_SIGN, 0xdeadbeef);
	assert_int_equal(w.len, VHSM_HDR_LEN + (6 + 9) + (6 + 3) + (6 + 4));
	assert_memory_equal(w.p, "VHSM\x01\x07\x00\x00\xef\xbe\xad\xde", 12);
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), 0);
	assert_int_equal(used, w.len);
	assert_int_equal(f.type, VHSM_OP_SIGN);
	assert_int_equal(f.id, 0xdeadbeef);
	assert_int_equal(vhsm_tlv_find(f.body, f.body_len, VHSM_T_NAME, &p, &l), 0);
	assert_int_equal(l, 9);
	assert_memory_equal(p, "app/key-1", 9);
	assert_int_equal(vhsm_tlv_u32(f.body, f.body_len, VHSM_T_ALG, &v), 0);
	assert_int_equal(v, 2);
	/* DATA is 3 bytes, not a u32. */
	assert_int_equal(vhsm_tlv_u32(f.body, f.body_len, VHSM_T_DATA, &v), -2);
	assert_int_equal(vhsm_tlv_find(f.body, f.body_len, VHSM_T_AAD, &p, &l), -1);
	/* A request is not acceptable as a response and vice versa. */
	assert_int_equal(vhsm_frame_decode(w.p, w.len, true, &f, &used), VHSM_DEC_BAD);
	w.p[5] = VHSM_RESPONSE | VHSM_OP_SIGN;
	assert_int_equal(vhsm_frame_decode(w.p, w.len, true, &f, &used), 0);
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);
}

static void
test_truncated_needs_more(void **state)
{
	struct vhsm_wbuf w;
	struct vhsm_frame f;
	size_t used = 99, cut;

	(void)state;
	build(&w, VHSM_OP_SIGN, 1);
	/* Every proper prefix of a valid frame is "need more", never a frame. */
	for (cut = 0; cut < w.len; cut++) {
		assert_int_equal(vhsm_frame_decode(w.p, cut, false, &f, &used), VHSM_DEC_NEED_MORE);
		assert_int_equal(used, 0);
	}
	vhsm_wbuf_free(&w);
}

static void
test_two_frames_in_one_buffer(void **state)
{
	struct vhsm_wbuf a, b;
	struct vhsm_frame f;
	uint8_t *both;
	size_t used;

	(void)state;
	build(&a, VHSM_OP_SIGN, 1);
	build(&b, VHSM_OP_HMAC, 2);
	both = malloc(a.len + b.len);
	assert_non_null(both);
	memcpy(both, a.p, a.len);
	memcpy(both + a.len, b.p, b.len);
	assert_int_equal(vhsm_frame_decode(both, a.len + b.len, false, &f, &used), 0);
	assert_int_equal(used, a.len);
	assert_int_equal(f.id, 1);
	assert_int_equal(vhsm_frame_decode(both + used, b.len, false, &f, &used), 0);
	assert_int_equal(f.id, 2);
	assert_int_equal(f.type, VHSM_OP_HMAC);
	free(both);
	vhsm_wbuf_free(&a);
	vhsm_wbuf_free(&b);
}

static void
test_bad_header(void **state)
{
	struct vhsm_wbuf w;
	struct vhsm_frame f;
	size_t used;
	uint8_t save;
	static const size_t pos[] = { 0, 1, 2, 3, 4, 6, 7 };
	size_t i;

	(void)state;
	build(&w, VHSM_OP_SIGN, 1);
	for (i = 0; i < sizeof(pos) / sizeof(pos[0]); i++) {
		save = w.p[pos[i]];
		w.p[pos[i]] ^= 0x40; /* magic, version or reserved */
		assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), VHSM_DEC_BAD);
		/* Rejected as soon as the bad byte is there, not only when whole. */
		assert_int_equal(vhsm_frame_decode(w.p, pos[i] + 1, false, &f, &used), VHSM_DEC_BAD);
		w.p[pos[i]] = save;
	}
	/* Unknown opcodes. */
	w.p[5] = 0;
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), VHSM_DEC_BAD);
	w.p[5] = VHSM_OP_MAX + 1;
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);
}

static void
test_oversized_rejected_early(void **state)
{
	uint8_t h[VHSM_HDR_LEN] = { 'V', 'H', 'S', 'M', 1, VHSM_OP_SIGN, 0, 0, 1, 0, 0, 0 };
	struct vhsm_frame f;
	size_t used;

	(void)state;
	put_u32le(h + 12, VHSM_BODY_MAX + 1);
	assert_int_equal(vhsm_frame_decode(h, sizeof(h), false, &f, &used), VHSM_DEC_BAD);
	/* Three bytes of the length already exceed the cap. */
	assert_int_equal(vhsm_frame_decode(h, 15, false, &f, &used), VHSM_DEC_BAD);
	put_u32le(h + 12, 0xffffffffu);
	assert_int_equal(vhsm_frame_decode(h, 13, false, &f, &used), VHSM_DEC_NEED_MORE);
	assert_int_equal(vhsm_frame_decode(h, 14, false, &f, &used), VHSM_DEC_NEED_MORE);
	assert_int_equal(vhsm_frame_decode(h, 15, false, &f, &used), VHSM_DEC_BAD);
	/* Exactly the cap is a valid prefix. */
	put_u32le(h + 12, VHSM_BODY_MAX);
	assert_int_equal(vhsm_frame_decode(h, sizeof(h), false, &f, &used), VHSM_DEC_NEED_MORE);
	/* An empty body is a whole frame. */
	put_u32le(h + 12, 0);
	assert_int_equal(vhsm_frame_decode(h, sizeof(h), false, &f, &used), 0);
	assert_int_equal(f.body_len, 0);
}

static void
test_tlv_overruns(void **state)
{
	uint8_t b[32];
	struct vhsm_wbuf w;

	(void)state;
	/* A TLV whose length runs past the body. */
	memset(b, 0, sizeof(b));
	b[0] = VHSM_T_DATA;
	put_u32le(b + 2, 5);
	assert_int_equal(vhsm_tlv_validate(b, 6 + 4), VHSM_DEC_BAD);
	assert_int_equal(vhsm_tlv_validate(b, 6 + 5), 0);
	/* A huge length must not wrap. */
	put_u32le(b + 2, 0xffffffffu);
	assert_int_equal(vhsm_tlv_validate(b, sizeof(b)), VHSM_DEC_BAD);
	/* A truncated TLV header. */
	assert_int_equal(vhsm_tlv_validate(b, 5), VHSM_DEC_BAD);
	assert_int_equal(vhsm_tlv_validate(b, 1), VHSM_DEC_BAD);
	/* Tag 0 and an unknown tag. */
	put_u32le(b + 2, 0);
	b[0] = 0;
	assert_int_equal(vhsm_tlv_validate(b, 6), VHSM_DEC_BAD);
	b[0] = VHSM_T_MAX + 1;
	assert_int_equal(vhsm_tlv_validate(b, 6), VHSM_DEC_BAD);
	b[0] = 1;
	b[1] = 1; /* tag 257 */
	assert_int_equal(vhsm_tlv_validate(b, 6), VHSM_DEC_BAD);
	/* A repeated tag is refused; KEYINFO may repeat. */
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_tlv_u32(&w, VHSM_T_ALG, 1);
	vhsm_wbuf_tlv_u32(&w, VHSM_T_ALG, 2);
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_tlv(&w, VHSM_T_KEYINFO, "", 0);
	vhsm_wbuf_tlv(&w, VHSM_T_KEYINFO, "", 0);
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), 0);
	vhsm_wbuf_free(&w);
}

static void
test_too_many_tlvs(void **state)
{
	struct vhsm_wbuf w;
	size_t i;

	(void)state;
	vhsm_wbuf_init(&w, VHSM_BODY_MAX);
	for (i = 0; i < VHSM_TLV_MAX; i++)
		vhsm_wbuf_tlv(&w, VHSM_T_KEYINFO, NULL, 0);
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), 0);
	vhsm_wbuf_tlv(&w, VHSM_T_KEYINFO, NULL, 0);
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);
}

static void
test_writer_cap(void **state)
{
	struct vhsm_wbuf w;
	static uint8_t big[VHSM_BODY_MAX];

	(void)state;
	vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&w, VHSM_OP_SIGN, 1);
	vhsm_wbuf_tlv(&w, VHSM_T_DATA, big, sizeof(big)); /* + 6 header bytes: over */
	assert_true(w.failed);
	assert_int_equal(vhsm_wbuf_finish(&w), -1);
	vhsm_wbuf_free(&w);
	vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&w, VHSM_OP_SIGN, 1);
	vhsm_wbuf_tlv(&w, VHSM_T_DATA, big, sizeof(big) - 6);
	assert_int_equal(vhsm_wbuf_finish(&w), 0);
	assert_int_equal(w.len, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_free(&w);
}

static void
test_names(void **state)
{
	(void)state;
	assert_true(vhsm_name_valid((const uint8_t *)"app/sign-key_1.v2@x:y+z", 23));
	assert_false(vhsm_name_valid((const uint8_t *)"", 0));
	assert_false(vhsm_name_valid((const uint8_t *)"a b", 3));
	assert_false(vhsm_name_valid((const uint8_t *)"a\nb", 3));
	assert_false(vhsm_name_valid((const uint8_t *)"a\0b", 3));
	assert_false(vhsm_name_valid((const uint8_t *)"-x", 2));
	assert_false(vhsm_name_valid((const uint8_t *)"a*", 2));
	{
		char n[VHSM_NAME_MAX + 1];

		memset(n, 'a', sizeof(n));
		assert_true(vhsm_name_valid((const uint8_t *)n, VHSM_NAME_MAX));
		assert_false(vhsm_name_valid((const uint8_t *)n, VHSM_NAME_MAX + 1));
	}
}

/* Case B messages: a provision request and its inject answer round-trip; the
 * new tags are accepted, the next one is not; response types of the new ops. */
static void
test_caseb_messages(void **state)
{
	struct vhsm_wbuf w;
	struct vhsm_frame f;
	size_t used, l;
	const uint8_t *v;
	static const char jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"a\",\"y\":\"b\"}";
	static const char jwe[] = "eyJhbGciOiJFQ0RILUVTIn0..iv.ct.tag";

	(void)state;
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_frame(&w, VHSM_OP_NITRIDED_PROVISION, 9);
	vhsm_wbuf_tlv_str(&w, VHSM_T_NAME, "caseb-sign");
	vhsm_wbuf_tlv_str(&w, VHSM_T_TEE_PUBKEY, jwk);
	assert_int_equal(vhsm_wbuf_finish(&w), 0);
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), 0);
	assert_int_equal(f.type, VHSM_OP_NITRIDED_PROVISION);
	assert_int_equal(f.id, 9);
	assert_int_equal(vhsm_tlv_find(f.body, f.body_len, VHSM_T_TEE_PUBKEY, &v, &l), 0);
	assert_int_equal(l, strlen(jwk));
	assert_memory_equal(v, jwk, l);
	/* As a response it is refused (wrong direction). */
	assert_int_equal(vhsm_frame_decode(w.p, w.len, true, &f, &used), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);

	/* The inject answer: 0x80|19 with STATUS, NAME, JWE. */
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_frame(&w, VHSM_RESPONSE | VHSM_OP_NITRIDED_PROVISION, 9);
	vhsm_wbuf_tlv_u32(&w, VHSM_T_STATUS, 0);
	vhsm_wbuf_tlv_str(&w, VHSM_T_NAME, "caseb-sign");
	vhsm_wbuf_tlv_str(&w, VHSM_T_JWE, jwe);
	assert_int_equal(vhsm_wbuf_finish(&w), 0);
	assert_int_equal(vhsm_frame_decode(w.p, w.len, true, &f, &used), 0);
	assert_int_equal(f.type, VHSM_RESPONSE | VHSM_OP_NITRIDED_PROVISION);
	assert_int_equal(vhsm_tlv_find(f.body, f.body_len, VHSM_T_JWE, &v, &l), 0);
	assert_int_equal(l, strlen(jwe));
	assert_int_equal(vhsm_tlv_find(f.body, f.body_len, VHSM_T_TOKEN, &v, &l), -1);
	/* A second JWE in one body is malformed. */
	vhsm_wbuf_tlv_str(&w, VHSM_T_JWE, jwe);
	assert_int_equal(vhsm_tlv_validate(w.p + VHSM_HDR_LEN, w.len - VHSM_HDR_LEN), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);

	/* The attest answer carries TOKEN; tag 24 does not exist. */
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_tlv_str(&w, VHSM_T_TOKEN, "a.b.c");
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), 0);
	vhsm_wbuf_tlv_str(&w, VHSM_T_MAX + 1, "x");
	assert_int_equal(vhsm_tlv_validate(w.p, w.len), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);

	/* PROVISION (21) is a request vhsmd serves; 23 is not an opcode. */
	vhsm_wbuf_init(&w, 4096);
	vhsm_wbuf_frame(&w, VHSM_OP_PROVISION, 1);
	vhsm_wbuf_tlv_str(&w, VHSM_T_NAME, "caseb-sign");
	assert_int_equal(vhsm_wbuf_finish(&w), 0);
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), 0);
	w.p[5] = VHSM_OP_MAX + 1;
	assert_int_equal(vhsm_frame_decode(w.p, w.len, false, &f, &used), VHSM_DEC_BAD);
	vhsm_wbuf_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_truncated_needs_more),
		cmocka_unit_test(test_two_frames_in_one_buffer),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_oversized_rejected_early),
		cmocka_unit_test(test_tlv_overruns),
		cmocka_unit_test(test_too_many_tlvs),
		cmocka_unit_test(test_writer_cap),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_caseb_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
