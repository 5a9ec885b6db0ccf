/*
 * proto — the vHSM wire protocol (docs/vhsm-protocol.md): frame header, TLV
 * body, and a bounded writer.  Shared by vhsmd and libvhsm; knows nothing
 * about keys.
 *
 * Frame: 16-byte header, little-endian
 *   0  magic    "VHSM" (56 48 53 4d)
 *   4  version  1
 *   5  type     request opcode (1..127) or 0x80|opcode for its response
 *   6  reserved 2 bytes, zero
 *   8  id       request id chosen by the client, echoed in the response
 *   12 length   body length, <= VHSM_BODY_MAX
 * Body: TLVs, each tag u16 + length u32 + value, packed, exactly filling the body.
 */
#ifndef NITRIDE_VHSM_PROTO_H
#define NITRIDE_VHSM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VHSM_MAGIC0 0x56u
#define VHSM_MAGIC1 0x48u
#define VHSM_MAGIC2 0x53u
#define VHSM_MAGIC3 0x4du
#define VHSM_PROTO_VERSION 1u
#define VHSM_HDR_LEN 16u
#define VHSM_BODY_MAX (1024u * 1024u) /* hard cap; a larger length closes the connection */
#define VHSM_TLV_HDR_LEN 6u
#define VHSM_TLV_MAX 65536u           /* at most this many TLVs in one body */
#define VHSM_RESPONSE 0x80u

/* Request opcodes (message type; the response is 0x80 | opcode). */
enum vhsm_op {
	VHSM_OP_PING = 1,
	VHSM_OP_GENERATE = 2,
	VHSM_OP_IMPORT = 3,
	VHSM_OP_DELETE = 4,
	VHSM_OP_LIST = 5,
	VHSM_OP_GET_PUBLIC = 6,
	VHSM_OP_SIGN = 7,
	VHSM_OP_VERIFY = 8,
	VHSM_OP_ENCRYPT = 9,
	VHSM_OP_DECRYPT = 10,
	VHSM_OP_WRAP = 11,
	VHSM_OP_UNWRAP = 12,
	VHSM_OP_HMAC = 13,
	VHSM_OP_DERIVE = 14,
	VHSM_OP_RANDOM = 15,
	VHSM_OP_ROTATE = 16,
	VHSM_OP_READ_SECRET = 17,
	VHSM_OP_RETIRE = 18,
	/* Case B (docs/vhsm-protocol.md, "Case B").  19 and 20 travel from vhsmd
	 * to nitrided on nitrided's socket; vhsmd itself answers them PROTOCOL. */
	VHSM_OP_NITRIDED_PROVISION = 19, /* NAME, TEE_PUBKEY, [VERSION] -> NAME, JWE (the inject) */
	VHSM_OP_NITRIDED_ATTEST = 20,    /* NAME, TEE_PUBKEY -> NAME, TOKEN (EAR) */
	VHSM_OP_PROVISION = 21,          /* NAME: make the key available (provision or attest) */
	VHSM_OP_INJECT = 22,             /* never sent: the policy right nitrided needs on a name */
	/* Transport messages of the shared-memory fast path ("Shared memory" in
	 * docs/vhsm-protocol.md); vhsmd's loop consumes them, the request table
	 * never sees them (it would answer PROTOCOL). */
	VHSM_OP_SHM_ATTACH = 23, /* empty body + a memfd (SCM_RIGHTS) -> STATUS */
	VHSM_OP_DOORBELL = 24,   /* empty body, id 0, no answer: "look at the slot" */
	VHSM_OP_MAX = 24
};

/* TLV tags.  A tag may appear once per body, except VHSM_T_KEYINFO. */
enum vhsm_tag {
	VHSM_T_NAME = 1,      /* key name, 1..VHSM_NAME_MAX bytes of [A-Za-z0-9._:@/+-] */
	VHSM_T_KEY_TYPE = 2,  /* u32 vhsm_key_type */
	VHSM_T_USAGES = 3,    /* u32 VHSM_USAGE_* bits */
	VHSM_T_FLAGS = 4,     /* u32 VHSM_FLAG_* bits */
	VHSM_T_VERSION = 5,   /* u32 key version */
	VHSM_T_DATA = 6,      /* bytes: message, plaintext, ciphertext, key material */
	VHSM_T_AAD = 7,       /* bytes: AES-GCM additional data */
	VHSM_T_SIGNATURE = 8, /* bytes: signature or MAC to verify */
	VHSM_T_ALG = 9,       /* u32 vhsm_alg */
	VHSM_T_HASH = 10,     /* u32 vhsm_hash */
	VHSM_T_PUBKEY = 11,   /* bytes: DER SubjectPublicKeyInfo */
	VHSM_T_NEW_NAME = 12, /* name of the key an operation creates */
	VHSM_T_COUNT = 13,    /* u32 */
	VHSM_T_STATUS = 14,   /* u32: 0, or the positive value of a negative VHSM_E_* */
	VHSM_T_MESSAGE = 15,  /* UTF-8 text of an error, for humans */
	VHSM_T_KEYINFO = 16,  /* nested TLVs describing one key (repeatable) */
	VHSM_T_ORIGIN = 17,   /* u32 vhsm_origin */
	VHSM_T_MAX_AGE = 18,  /* u32 require_attestation maximum age, seconds (0 = none) */
	VHSM_T_VALID = 19,    /* u32 1 or 0: verify result */
	VHSM_T_VERSIONS = 20, /* u32: number of usable (not retired) versions */
	VHSM_T_TEE_PUBKEY = 21, /* text: the transfer key, an EC P-256 public JWK (JSON) */
	VHSM_T_JWE = 22,        /* text: compact JWE (ECDH-ES, A256GCM) to the transfer key */
	VHSM_T_TOKEN = 23,      /* text: compact JWS, an EAR token from the Attestation Service */
	VHSM_T_KDF = 24,        /* u32 vhsm_kdf: derive's key derivation (0 / absent = HKDF) */
	VHSM_T_MAX = 24
};

#define VHSM_NAME_MAX 128u

/*
 * The shared-memory slot of one Unix connection: a sealed memfd of exactly
 * VHSM_SHM_SIZE bytes made by the client, a control page then one request
 * and one response slot, each holding one whole frame.  Each control word
 * has a cache line of its own (the two sides write different ones).  The
 * words are accessed with __atomic builtins; neither side trusts what the
 * other wrote (vhsmd reads req_len once, bounds it, copies the frame out).
 */
#define VHSM_SHM_SLOT (64u * 1024u)
#define VHSM_SHM_CTL 4096u
#define VHSM_SHM_REQ_OFF VHSM_SHM_CTL
#define VHSM_SHM_RESP_OFF (VHSM_SHM_CTL + VHSM_SHM_SLOT)
#define VHSM_SHM_SIZE (VHSM_SHM_CTL + 2u * VHSM_SHM_SLOT)

struct vhsm_shm_ctl {
	uint32_t req_seq; /* client: +1 (release) after writing req_len and the frame */
	uint32_t req_len;
	uint32_t pad0[14];
	uint32_t resp_seq; /* vhsmd: +1 (seq_cst) after writing resp_len and the frame */
	uint32_t resp_len;
	uint32_t pad1[14];
	uint32_t server_sleeping; /* vhsmd: 1 before it blocks in poll() */
	uint32_t pad2[15];
	uint32_t client_sleeping; /* client: 1 before it blocks in recv() */
	uint32_t pad3[15];
};

/* A validated frame: header fields and a borrowed view of the body. */
struct vhsm_frame {
	uint8_t type;
	uint32_t id;
	const uint8_t *body; /* points into the caller's buffer */
	uint32_t body_len;
};

/* Decode results (besides 0). */
#define VHSM_DEC_NEED_MORE 1 /* not a whole frame yet; *consumed is 0 */
#define VHSM_DEC_BAD (-1)    /* malformed: bad magic/version/reserved/type, oversized, bad TLV */

/*
 * The one frame decoder.  Looks at buf[0..len): if it starts with a whole,
 * valid frame, fills *f (borrowing buf), sets *consumed to its size and returns
 * 0.  Returns VHSM_DEC_NEED_MORE when the bytes are a valid prefix (a header
 * whose length is within the cap, or less than a header), VHSM_DEC_BAD when the
 * bytes can never become a valid frame: the header is checked as soon as it is
 * complete, so an oversized length is rejected before its body arrives.
 * `responses` selects which kind of message type is acceptable.
 */
__attribute__((warn_unused_result)) int vhsm_frame_decode(const uint8_t *buf, size_t len,
							  bool responses, struct vhsm_frame *f,
							  size_t *consumed);

/* Check that body[0..len) is a well-formed TLV sequence: every TLV inside,
 * tags 1..VHSM_T_MAX, no repeated tag except KEYINFO, at most VHSM_TLV_MAX.
 * Returns 0 or VHSM_DEC_BAD.  (vhsm_frame_decode calls it on every body.) */
__attribute__((warn_unused_result)) int vhsm_tlv_validate(const uint8_t *body, size_t len);

/* Find `tag` in a validated TLV sequence.  Returns 0 and a borrowed view, or -1. */
int vhsm_tlv_find(const uint8_t *body, size_t len, uint16_t tag, const uint8_t **val,
		  size_t *vlen);
/* As vhsm_tlv_find for a u32 value (exactly 4 bytes).  -1 if absent, -2 if not 4 bytes. */
int vhsm_tlv_u32(const uint8_t *body, size_t len, uint16_t tag, uint32_t *v);
/* Iterate a validated sequence: *off starts at 0; returns 0 with the next TLV, -1 at the end. */
int vhsm_tlv_next(const uint8_t *body, size_t len, size_t *off, uint16_t *tag,
		  const uint8_t **val, size_t *vlen);

/* True if name is a valid key name (length 1..VHSM_NAME_MAX, allowed characters). */
bool vhsm_name_valid(const uint8_t *name, size_t len);

/*
 * vhsm_wbuf — an append-only buffer with a hard cap, for building frames.
 * Appends after a failure are ignored and the failure sticks (check once, at
 * vhsm_wbuf_finish).  Buffers that may hold secrets are wiped when freed.
 */
struct vhsm_wbuf {
	uint8_t *p;
	size_t len, cap, max;
	bool failed;
};

void vhsm_wbuf_init(struct vhsm_wbuf *w, size_t max);
/* Start a frame: writes a header with a zero length. */
void vhsm_wbuf_frame(struct vhsm_wbuf *w, uint8_t type, uint32_t id);
/* Append raw bytes (a whole frame built elsewhere). */
void vhsm_wbuf_raw(struct vhsm_wbuf *w, const void *p, size_t n);
void vhsm_wbuf_tlv(struct vhsm_wbuf *w, uint16_t tag, const void *val, size_t len);
void vhsm_wbuf_tlv_u32(struct vhsm_wbuf *w, uint16_t tag, uint32_t v);
void vhsm_wbuf_tlv_str(struct vhsm_wbuf *w, uint16_t tag, const char *s);
/* Begin/end a nested TLV (KEYINFO): returns the offset to pass to _end. */
size_t vhsm_wbuf_nest_begin(struct vhsm_wbuf *w, uint16_t tag);
void vhsm_wbuf_nest_end(struct vhsm_wbuf *w, size_t at);
/* Patch the body length of the frame started at offset 0.  Returns 0, or -1
 * when any append failed (allocation or the cap). */
__attribute__((warn_unused_result)) int vhsm_wbuf_finish(struct vhsm_wbuf *w);
/* Wipe and free.  NULL-safe; the struct may be reused after vhsm_wbuf_init. */
void vhsm_wbuf_free(struct vhsm_wbuf *w);

#endif
