/*
 * vhsmd internals: the key table and the request table (ops.c), the
 * listener and event loop (server.c), the caller's identity (peer.c).
 */
#ifndef NITRIDE_VHSM_VHSMD_H
#define NITRIDE_VHSM_VHSMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
};

#define VHSMD_MAX_KEYS 100000u

struct vhsmd {
	struct vhsm_policy *policy; /* owned */
	struct vstore *store;       /* owned; NULL: no persistent keys */
	struct vkey **keys;         /* sorted by name */
	size_t nkeys, cap;
	char msg[256];              /* the current request's error text */
	bool log_allowed;           /* audit every allowed key operation too */
};

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

/* Fill *who from a connected Unix socket: SO_PEERCRED, then /proc/PID/{exe,cgroup}
 * (and the executable's SHA-256 when hash_exe), re-checking that PID still
 * names the same process afterwards (pidfd + start time).  -1 if the peer's
 * identity cannot be established (the connection must be refused). */
__attribute__((warn_unused_result)) int vhsmd_peer_identify(int fd, bool hash_exe,
							    struct vhsm_principal *who);

/* One line to stderr: "vhsmd: <level>: …".  Never pass secrets. */
void vhsmd_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
