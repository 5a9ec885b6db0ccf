/*
 * vhsmd internals: the key table and the request table (ops.c), the
 * listener and event loop (server.c), the caller's identity (peer.c).
 */
#ifndef NITRIDE_VHSM_VHSMD_H
#define NITRIDE_VHSM_VHSMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vhsm/caseb.h"
#include "vhsm/keys.h"
#include "vhsm/policy.h"
#include "vhsm/proto.h"
#include "vhsm/store.h"

struct vkver {
	uint32_t version;
	bool retired;
	struct vk_material m;
};

struct vkey {
	char name[VHSM_NAME_MAX + 1];
	uint32_t type, usages, flags, origin, max_age;
	struct vkver *v; /* ascending versions; the last is current */
	size_t nv;
	int64_t attested_until; /* Case B: a gated key is usable until then (time(), not sealed) */
};

#define VHSMD_MAX_KEYS 100000u

struct vhsmd {
	struct vhsm_policy *policy; /* owned */
	struct vstore *store;       /* owned; NULL: no persistent keys */
	struct vkey **keys;         /* sorted by name */
	size_t nkeys, cap;
	char msg[256];              /* the current request's error text */
	bool log_allowed;           /* audit every allowed key operation too */
	struct vcaseb *caseb;       /* owned; NULL: Case B off (gated keys answer NOT_ATTESTED) */
	/* The hold protocol between the request table and the loop: a handler
	 * that needs nitrided sets hold_name/hold_kind and vhsmd_handle returns
	 * VHSMD_HOLD.  When the hand-off ends the loop serves the same frame
	 * again with hold_done set (and hold_fail = the reason if it failed), so
	 * a request is held at most once. */
	char hold_name[VHSM_NAME_MAX + 1];
	uint32_t hold_kind;
	bool hold_done;
	const char *hold_fail;
};

/* vhsmd_handle's answer when the request is held (nothing appended). */
#define VHSMD_HOLD 1

/* Free every key (wiping material).  Leaves policy and store alone. */
void vhsmd_keys_clear(struct vhsmd *d);
/* Load the sealed keys from d->store.  -1 with err on failure. */
__attribute__((warn_unused_result)) int vhsmd_keys_load(struct vhsmd *d, char *err,
							size_t errlen);

/*
 * Serve one request: decide, act, and append the whole response frame to
 * `resp` (same id, type 0x80|op, STATUS first).  Never fails as such: errors
 * are answered.  Returns -1 only if the response cannot be built (memory),
 * in which case the connection should be closed.
 */
__attribute__((warn_unused_result)) int vhsmd_handle(struct vhsmd *d,
						     const struct vhsm_principal *who,
						     const struct vhsm_frame *f,
						     struct vhsm_wbuf *resp);

/*
 * Case B: install the decrypted release payload (provd's JSON: name, version,
 * type, key as base64url, usages, exportable, persist, access,
 * require_attestation) as key `name`, its first version numbered as provd's.
 * If `name` is installed already (rotation), the release is added as a new
 * version only when its version is newer than the key's current one (else
 * nothing changes: "up to date").  0 with what was done in msg, or -1 with
 * the reason in msg.  Does not keep `payload`; the caller wipes it.
 */
__attribute__((warn_unused_result)) int vhsmd_inject(struct vhsmd *d, const char *name,
						     const uint8_t *payload, size_t len, char *msg,
						     size_t msglen);
/* Case B: a gated key is usable until min(until, now + its max age).  -1 if absent. */
int vhsmd_mark_attested(struct vhsmd *d, const char *name, int64_t until);

/* Fill *who from a connected Unix socket: SO_PEERCRED, then /proc/PID/{exe,cgroup}
 * (and the executable's SHA-256 when hash_exe), re-checking that PID still
 * names the same process afterwards (pidfd + start time).  -1 if the peer's
 * identity cannot be established (the connection must be refused). */
__attribute__((warn_unused_result)) int vhsmd_peer_identify(int fd, bool hash_exe,
							    struct vhsm_principal *who);

/* The caller for a log line: "uid=U pid=P" for a Unix-socket caller,
 * "tls_sha256=HEX tls_subject=\"…\"" for a TLS caller (printable ASCII only;
 * the fingerprint first, so a truncated line still names the certificate).
 * Returns buf. */
#define VHSMD_PEER_TEXT_MAX (VHSM_TLS_SUBJECT_MAX + 128u)
const char *vhsmd_peer_describe(const struct vhsm_principal *who, char *buf, size_t cap);

/* One line to stderr: "vhsmd: <level>: …".  Never pass secrets. */
void vhsmd_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
