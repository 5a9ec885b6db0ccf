/*
 * libvhsm-pkcs11 internals (docs/pkcs11.md).  Nothing here is exported: the
 * module's only public symbol is C_GetFunctionList.
 */
#ifndef NITRIDE_P11_H
#define NITRIDE_P11_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "nitride/vhsm.h"

/* Last: p11-kit's compatibility macros rename common words (value, count, …). */
#include <p11-kit/pkcs11.h>

#define P11_MAX_SLOTS 8
#define P11_DATA_MAX (1024u * 1024u - 4096u) /* multi-part input cap (protocol body cap) */
#define P11_MAX_DEAD 32 /* connections lost to vhsmd restarts, kept until C_Finalize */

/* One PKCS#11 object: a view of a vHSM key (private, public or secret part) or
 * of a vHSM certificate object (CKO_CERTIFICATE). */
struct p11_obj {
	CK_OBJECT_HANDLE h;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	char name[129];
	vhsm_key_info info;
	EVP_PKEY *pub;             /* asymmetric keys with get_public right; else NULL */
	CK_SESSION_HANDLE owner;   /* session object: its session; token object: 0 */
	int seen;                  /* mark for list refresh */
	uint8_t *value;            /* CKO_CERTIFICATE: the DER certificate (public); else NULL */
	size_t value_len;
};

struct p11_slot {
	char socket[256];
	vhsm_client *c;            /* NULL while vhsmd is unreachable */
	/* Connections that failed (vhsmd restarted).  Another thread may still be
	 * inside a request on one, so they are closed only at C_Finalize; when
	 * this is full the slot stops reconnecting (docs/pkcs11.md). */
	vhsm_client *dead[P11_MAX_DEAD];
	size_t ndead;
	struct p11_obj *objs;
	size_t nobjs, cap;
};

/* Operation state of a session (one per kind). */
struct p11_op {
	int active;
	CK_MECHANISM_TYPE mech;
	char name[129];
	vhsm_key_type type;
	EVP_PKEY *pub;             /* own reference, for public-key operations */
	vhsm_alg alg;
	vhsm_hash hash;
	int use_pub;               /* the operation runs here with the public key */
	int multi;                 /* an Update was called */
	uint8_t *data;             /* accumulated multi-part input */
	size_t len, cap;
	uint8_t *ad;               /* GCM additional data */
	size_t ad_len;
	CK_BYTE_PTR iv_out;        /* GCM encrypt: the caller's IV buffer (written back) */
	uint8_t iv[12];
	uint8_t *result;           /* computed but not yet delivered (buffer too small) */
	size_t result_len;
};

#endif /* NITRIDE_P11_H */
