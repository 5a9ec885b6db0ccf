#include "vhsm/policy.h"

#include <errno.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "vhsm/proto.h"

#define POLICY_FILE_MAX (1024u * 1024u)
#define ALL_OPS 0xFFFFFFFEu /* bits 1..31 */

struct rule {
	bool any_uid, any_gid;
	uid_t uid;
	gid_t gid;
	char *exe;           /* fnmatch pattern or NULL */
	bool has_sha;
	uint8_t sha[32];
	char *cgroup;        /* fnmatch pattern or NULL */
	bool tls;            /* a TLS rule: matches only TLS callers, on the fields below */
	char *tls_subject;   /* exact RFC 2253 subject, or NULL */
	bool has_tls_sha;
	uint8_t tls_sha[32]; /* client certificate fingerprint */
	char **keys;
	size_t nkeys;
	uint32_t ops;        /* bit per op */
};

struct vhsm_policy {
	struct rule *rules;
	size_t n;
	bool needs_hash;
};

static const char *const op_names[VHSM_OP_MAX + 1] = {
	[VHSM_OP_PING] = "ping",
	[VHSM_OP_GENERATE] = "generate",
	[VHSM_OP_IMPORT] = "import",
	[VHSM_OP_DELETE] = "delete",
	[VHSM_OP_LIST] = "list",
	[VHSM_OP_GET_PUBLIC] = "get_public",
	[VHSM_OP_SIGN] = "sign",
	[VHSM_OP_VERIFY] = "verify",
	[VHSM_OP_ENCRYPT] = "encrypt",
	[VHSM_OP_DECRYPT] = "decrypt",
	[VHSM_OP_WRAP] = "wrap",
	[VHSM_OP_UNWRAP] = "unwrap",
	[VHSM_OP_HMAC] = "hmac",
	[VHSM_OP_DERIVE] = "derive",
	[VHSM_OP_RANDOM] = "random",
	[VHSM_OP_ROTATE] = "rotate",
	[VHSM_OP_READ_SECRET] = "read",
	[VHSM_OP_RETIRE] = "retire",
	[VHSM_OP_NITRIDED_PROVISION] = "nitrided_provision",
	[VHSM_OP_NITRIDED_ATTEST] = "nitrided_attest",
	[VHSM_OP_PROVISION] = "provision",
	[VHSM_OP_INJECT] = "inject",
	/* Transport messages, never operations a rule could grant. */
	[VHSM_OP_SHM_ATTACH] = "shm_attach",
	[VHSM_OP_DOORBELL] = "doorbell",
};

const char *
vhsm_op_name(uint32_t op)
{
	return op >= 1 && op <= VHSM_OP_MAX ? op_names[op] : NULL;
}

uint32_t
vhsm_op_from_name(const char *s)
{
	uint32_t i;

	for (i = 1; i <= VHSM_OP_MAX; i++)
		if (strcmp(op_names[i], s) == 0)
			return i;
	return 0;
}

static void
rule_clear(struct rule *r)
{
	size_t i;

	free(r->exe);
	free(r->cgroup);
	free(r->tls_subject);
	for (i = 0; i < r->nkeys; i++)
		free(r->keys[i]);
	free(r->keys);
}

void
vhsm_policy_free(struct vhsm_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		rule_clear(&p->rules[i]);
	free(p->rules);
	free(p);
}

static int
get_id(json_t *v, bool user, uint32_t *id)
{
	if (json_is_integer(v)) {
		json_int_t n = json_integer_value(v);

		if (n < 0 || n > (json_int_t)UINT32_MAX - 1)
			return -1;
		*id = (uint32_t)n;
		return 0;
	}
	if (json_is_string(v)) {
		char buf[4096];
		int e;

		if (user) {
			struct passwd pw, *res = NULL;

			e = getpwnam_r(json_string_value(v), &pw, buf, sizeof(buf), &res);
			if (e != 0 || res == NULL)
				return -1;
			*id = pw.pw_uid;
		} else {
			struct group gr, *res = NULL;

			e = getgrnam_r(json_string_value(v), &gr, buf, sizeof(buf), &res);
			if (e != 0 || res == NULL)
				return -1;
			*id = gr.gr_gid;
		}
		return 0;
	}
	return -1;
}

/* A SHA-256 fingerprint: 64 hex digits, or 32 colon-separated pairs as
 * `openssl x509 -fingerprint -sha256` prints them; either case. */
static int
parse_fingerprint(const char *s, uint8_t out[static 32])
{
	char hex[65];
	size_t i, n = 0;

	if (strlen(s) == 95) {
		for (i = 0; i < 95; i++) {
			if (i % 3 == 2) {
				if (s[i] != ':')
					return -1;
				continue;
			}
			hex[n++] = s[i];
		}
		hex[n] = 0;
		s = hex;
	}
	if (strlen(s) != 64)
		return -1;
	return hex_decode(s, out, 32);
}

static int
parse_rule(json_t *jr, size_t idx, struct rule *r, bool *needs_hash, char *err, size_t errlen)
{
	json_t *prin, *keys, *ops, *v;
	const char *k;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->any_uid = r->any_gid = true;
	if (!json_is_object(jr)) {
		snprintf(err, errlen, "rules[%zu]: not an object", idx);
		return -1;
	}
	json_object_foreach(jr, k, v) {
		if (strcmp(k, "principal") != 0 && strcmp(k, "keys") != 0 &&
		    strcmp(k, "operations") != 0 && strcmp(k, "comment") != 0) {
			snprintf(err, errlen, "rules[%zu]: unknown field '%s'", idx, k);
			return -1;
		}
	}
	prin = json_object_get(jr, "principal");
	keys = json_object_get(jr, "keys");
	ops = json_object_get(jr, "operations");
	if (!json_is_object(prin)) {
		snprintf(err, errlen, "rules[%zu]: 'principal' must be an object", idx);
		return -1;
	}
	json_object_foreach(prin, k, v) {
		uint32_t id;

		if (strcmp(k, "uid") == 0 || strcmp(k, "user") == 0) {
			if (get_id(v, true, &id) != 0) {
				snprintf(err, errlen, "rules[%zu].principal.%s: not a uid or known user", idx, k);
				return -1;
			}
			r->any_uid = false;
			r->uid = id;
		} else if (strcmp(k, "gid") == 0 || strcmp(k, "group") == 0) {
			if (get_id(v, false, &id) != 0) {
				snprintf(err, errlen, "rules[%zu].principal.%s: not a gid or known group", idx, k);
				return -1;
			}
			r->any_gid = false;
			r->gid = id;
		} else if (strcmp(k, "exe") == 0 && json_is_string(v) &&
			   json_string_value(v)[0] == '/') {
			if ((r->exe = strdup(json_string_value(v))) == NULL)
				goto nomem;
		} else if (strcmp(k, "exe_sha256") == 0 && json_is_string(v)) {
			if (strlen(json_string_value(v)) != 64 ||
			    hex_decode(json_string_value(v), r->sha, 32) != 0) {
				snprintf(err, errlen, "rules[%zu].principal.exe_sha256: expected 64 hex digits", idx);
				return -1;
			}
			r->has_sha = true;
			*needs_hash = true;
		} else if (strcmp(k, "cgroup") == 0 && json_is_string(v) &&
			   json_string_value(v)[0] == '/') {
			if ((r->cgroup = strdup(json_string_value(v))) == NULL)
				goto nomem;
		} else if (strcmp(k, "tls_subject") == 0 && json_is_string(v) &&
			   json_string_length(v) > 0 && json_string_length(v) < VHSM_TLS_SUBJECT_MAX &&
			   strlen(json_string_value(v)) == json_string_length(v)) {
			if ((r->tls_subject = strdup(json_string_value(v))) == NULL)
				goto nomem;
			r->tls = true;
		} else if (strcmp(k, "tls_sha256") == 0 && json_is_string(v)) {
			if (parse_fingerprint(json_string_value(v), r->tls_sha) != 0) {
				snprintf(err, errlen,
					 "rules[%zu].principal.tls_sha256: expected 64 hex digits "
					 "(colons between pairs allowed)", idx);
				return -1;
			}
			r->has_tls_sha = true;
			r->tls = true;
		} else {
			snprintf(err, errlen,
				 "rules[%zu].principal.%s: unknown field or bad value (uid, user, gid, "
				 "group, exe (absolute), exe_sha256, cgroup (absolute), tls_subject, "
				 "tls_sha256)",
				 idx, k);
			return -1;
		}
	}
	/* A TLS caller has no uid, process or cgroup: a rule asking for both
	 * could never match, and is most likely a mistake. */
	if (r->tls && (!r->any_uid || !r->any_gid || r->exe || r->has_sha || r->cgroup)) {
		snprintf(err, errlen,
			 "rules[%zu].principal: tls_subject/tls_sha256 cannot be combined with uid, "
			 "user, gid, group, exe, exe_sha256 or cgroup (a TLS caller has none of those)",
			 idx);
		return -1;
	}
	if (!json_is_array(keys) || json_array_size(keys) == 0) {
		snprintf(err, errlen, "rules[%zu]: 'keys' must be a non-empty array of names or patterns", idx);
		return -1;
	}
	if ((r->keys = calloc(json_array_size(keys), sizeof(char *))) == NULL)
		goto nomem;
	json_array_foreach(keys, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > VHSM_NAME_MAX) {
			snprintf(err, errlen, "rules[%zu].keys[%zu]: not a name or pattern", idx, i);
			return -1;
		}
		if ((r->keys[r->nkeys] = strdup(json_string_value(v))) == NULL)
			goto nomem;
		r->nkeys++;
	}
	if (!json_is_array(ops) || json_array_size(ops) == 0) {
		snprintf(err, errlen, "rules[%zu]: 'operations' must be a non-empty array", idx);
		return -1;
	}
	json_array_foreach(ops, i, v) {
		uint32_t op;

		if (json_is_string(v) && strcmp(json_string_value(v), "*") == 0) {
			r->ops |= ALL_OPS;
			continue;
		}
		if (!json_is_string(v) || (op = vhsm_op_from_name(json_string_value(v))) == 0) {
			snprintf(err, errlen, "rules[%zu].operations[%zu]: unknown operation", idx, i);
			return -1;
		}
		r->ops |= 1u << op;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int
vhsm_policy_parse(const char *json, size_t len, struct vhsm_policy **out, char *err,
		  size_t errlen)
{
	json_t *root = NULL, *rules, *v;
	json_error_t je;
	struct vhsm_policy *p = NULL;
	const char *k;
	size_t i;
	int r = -1;

	if ((root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		snprintf(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
		goto out;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "top level must be an object");
		goto out;
	}
	json_object_foreach(root, k, v) {
		if (strcmp(k, "version") != 0 && strcmp(k, "rules") != 0 && strcmp(k, "comment") != 0) {
			snprintf(err, errlen, "unknown top-level field '%s'", k);
			goto out;
		}
	}
	v = json_object_get(root, "version");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) != 1)) {
		snprintf(err, errlen, "'version' must be 1");
		goto out;
	}
	rules = json_object_get(root, "rules");
	if (!json_is_array(rules)) {
		snprintf(err, errlen, "'rules' must be an array");
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (json_array_size(rules) &&
	     (p->rules = calloc(json_array_size(rules), sizeof(struct rule))) == NULL)) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(rules, i, v) {
		if (parse_rule(v, i, &p->rules[i], &p->needs_hash, err, errlen) != 0) {
			rule_clear(&p->rules[i]);
			goto out;
		}
		p->n++;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	vhsm_policy_free(p);
	json_decref(root);
	return r;
}

int
vhsm_policy_load(const char *path, struct vhsm_policy **out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char e2[256];
	int r;

	if ((r = file_read_all(path, POLICY_FILE_MAX, &buf, &len)) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return -1;
	}
	r = vhsm_policy_parse((const char *)buf, len, out, e2, sizeof(e2));
	if (r != 0)
		snprintf(err, errlen, "%s: %s", path, e2);
	free(buf);
	return r;
}

static bool
principal_matches(const struct rule *r, const struct vhsm_principal *who)
{
	/* Fail closed across transports: a local rule (even one with no field,
	 * which grants every local caller) is not a grant to the network. */
	if (r->tls != who->tls)
		return false;
	if (r->tls) {
		if (r->tls_subject != NULL && strcmp(r->tls_subject, who->tls_subject) != 0)
			return false;
		if (r->has_tls_sha && CRYPTO_memcmp(r->tls_sha, who->tls_sha256, 32) != 0)
			return false;
		return true;
	}
	if (!r->any_uid && r->uid != who->uid)
		return false;
	if (!r->any_gid && r->gid != who->gid)
		return false;
	if (r->exe != NULL && (!who->have_exe || fnmatch(r->exe, who->exe, 0) != 0))
		return false;
	if (r->has_sha &&
	    (!who->have_exe_sha256 || CRYPTO_memcmp(r->sha, who->exe_sha256, 32) != 0))
		return false;
	if (r->cgroup != NULL && (!who->have_cgroup || fnmatch(r->cgroup, who->cgroup, 0) != 0))
		return false;
	return true;
}

static bool
name_matches(const struct rule *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nkeys; i++)
		if (fnmatch(r->keys[i], name, 0) == 0)
			return true;
	return false;
}

bool
vhsm_policy_allows(const struct vhsm_policy *p, const struct vhsm_principal *who, uint32_t op,
		   const char *name)
{
	size_t i;

	if (p == NULL || op < 1 || op > VHSM_OP_MAX)
		return false;
	for (i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];

		if (!(r->ops & (1u << op)) || !principal_matches(r, who))
			continue;
		if (name == NULL || name_matches(r, name))
			return true;
	}
	return false;
}

bool
vhsm_policy_may_see(const struct vhsm_policy *p, const struct vhsm_principal *who,
		    const char *name)
{
	size_t i;

	if (p == NULL)
		return false;
	for (i = 0; i < p->n; i++) {
		const struct rule *r = &p->rules[i];

		if ((r->ops & ~((1u << VHSM_OP_PING) | (1u << VHSM_OP_LIST) |
				(1u << VHSM_OP_RANDOM))) == 0)
			continue;
		if (principal_matches(r, who) && name_matches(r, name))
			return true;
	}
	return false;
}

bool
vhsm_policy_needs_exe_hash(const struct vhsm_policy *p)
{
	return p != NULL && p->needs_hash;
}
