/*
 * policy — vhsmd's authorisation: default deny, rules from a JSON file
 * (docs/vhsm.md, "Authorisation policy").
 *
 * A rule grants `operations` on keys whose names match one of `keys` (fnmatch
 * patterns, FNM_PATHNAME off) to callers matching every field of `principal`.
 * A principal is what the kernel says about the peer, collected at accept(),
 * or for a TLS caller the client certificate the handshake verified.  A rule
 * is either local (uid, gid, exe, exe_sha256, cgroup — or none of them) or
 * TLS (tls_subject, tls_sha256); local rules never match TLS callers and TLS
 * rules never match Unix-socket callers.
 */
#ifndef NITRIDE_VHSM_POLICY_H
#define NITRIDE_VHSM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VHSM_EXE_MAX 4096u
#define VHSM_CGROUP_MAX 1024u
#define VHSM_TLS_SUBJECT_MAX 1024u /* longer subjects are refused at the handshake */

struct vhsm_principal {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool have_exe;    /* exe is the target of /proc/PID/exe */
	char exe[VHSM_EXE_MAX];
	bool have_exe_sha256;
	uint8_t exe_sha256[32];
	bool have_cgroup; /* cgroup v2 path from /proc/PID/cgroup ("0::/…") */
	char cgroup[VHSM_CGROUP_MAX];
	/* A TLS caller (vhsmd's [tls] listener): uid/gid/pid/exe/cgroup are
	 * unset and match nothing; the verified client certificate names it. */
	bool tls;
	char tls_subject[VHSM_TLS_SUBJECT_MAX]; /* RFC 2253, as `openssl x509 -nameopt RFC2253` */
	uint8_t tls_sha256[32];                 /* SHA-256 of the certificate's DER */
};

struct vhsm_policy;

/* Operation names as used in policy files ("sign", …); NULL for an unknown op. */
const char *vhsm_op_name(uint32_t op);
uint32_t vhsm_op_from_name(const char *s); /* 0 if unknown */

/*
 * Parse a policy document.  On failure returns -1 and writes a message naming
 * the rule and field (or the JSON line and column) into err.
 */
__attribute__((warn_unused_result)) int vhsm_policy_parse(const char *json, size_t len,
							  struct vhsm_policy **out, char *err,
							  size_t errlen);
/* Read and parse a file (at most 1 MiB); err names the file. */
__attribute__((warn_unused_result)) int vhsm_policy_load(const char *path,
							 struct vhsm_policy **out, char *err,
							 size_t errlen);
void vhsm_policy_free(struct vhsm_policy *p);

/* Does some rule grant `op` on key `name` to `who`?  For operations that name
 * no key (random), name is NULL and any rule granting op to who suffices. */
bool vhsm_policy_allows(const struct vhsm_policy *p, const struct vhsm_principal *who,
			uint32_t op, const char *name);
/* Does some rule grant `who` any operation on `name`?  (list shows only these.) */
bool vhsm_policy_may_see(const struct vhsm_policy *p, const struct vhsm_principal *who,
			 const char *name);
/* Does any rule match on the executable's SHA-256 (so accept must hash it)? */
bool vhsm_policy_needs_exe_hash(const struct vhsm_policy *p);

#endif
