/*
 * libFuzzer target: vhsm_frame_decode, the one decoder of vHSM frames
 * (src/vhsm/proto.c), in both directions (requests, responses).
 *
 * Properties checked (abort() on violation):
 *  - decode never crashes; it returns 0, NEED_MORE or BAD only;
 *  - on 0, the frame fits the input, its body is inside it and within the cap,
 *    and every TLV can be walked to exactly the end of the body;
 *  - on NEED_MORE, every shorter prefix is NEED_MORE too (no frame is accepted
 *    from fewer bytes than it claims), checked for the header-sized prefixes;
 *  - re-encoding the decoded TLVs with the writer gives back the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vhsm/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const uint8_t *data, size_t size, bool responses)
{
	struct vhsm_frame f;
	struct vhsm_wbuf w;
	size_t used = 0, off = 0, vlen, k;
	const uint8_t *val;
	uint16_t tag;
	int r = vhsm_frame_decode(data, size, responses, &f, &used);

	if (r == VHSM_DEC_NEED_MORE) {
		if (used != 0 || size >= VHSM_HDR_LEN + VHSM_BODY_MAX)
			abort();
		for (k = 0; k < size && k <= VHSM_HDR_LEN; k++)
			if (vhsm_frame_decode(data, k, responses, &f, &used) != VHSM_DEC_NEED_MORE)
				abort();
		return;
	}
	if (r == VHSM_DEC_BAD)
		return;
	if (r != 0 || used > size || used != VHSM_HDR_LEN + (size_t)f.body_len ||
	    f.body_len > VHSM_BODY_MAX || f.body != data + VHSM_HDR_LEN)
		abort();
	vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&w, f.type, f.id);
	while (vhsm_tlv_next(f.body, f.body_len, &off, &tag, &val, &vlen) == 0) {
		if (val < f.body || vlen > f.body_len || (size_t)(val - f.body) > f.body_len - vlen)
			abort();
		vhsm_wbuf_tlv(&w, tag, val, vlen);
	}
	if (off != f.body_len || vhsm_wbuf_finish(&w) != 0 || w.len != used ||
	    memcmp(w.p, data, used) != 0)
		abort();
	vhsm_wbuf_free(&w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size, false);
	check(data, size, true);
	return 0;
}
