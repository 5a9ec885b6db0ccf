/*
 * ops — vhsmd's request table.  Each request is authorised before the key is
 * looked up, so a denied caller learns nothing about whether the key exists.
 */
#include "vhsm/vhsmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/hex.h"

/* The request being served. */
struct req {
	struct vhsmd *d;
	const struct vhsm_principal *who;
	uint32_t op;
	const uint8_t *body;
	size_t blen;
	struct vhsm_wbuf *w; /* response TLVs are appended here */
};

static int
fail(struct req *q, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(struct req *q, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(q->d->msg, sizeof(q->d->msg), fmt, ap);
	va_end(ap);
	return status;
}

/* A path from /proc for a log line: printable ASCII only (a file name may hold
 * a newline that would forge a log line), truncated to fit. */
static const char *
log_safe(bool have, const char *s, char *buf, size_t cap)
{
	size_t i;

	if (!have)
		return "?";
	for (i = 0; s[i] && i + 1 < cap; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[i] = 0;
	return buf;
}

/* Audit and refuse. */
static int
deny(struct req *q, const char *name)
{
	char exe[256], cg[256], wb[VHSMD_PEER_TEXT_MAX], fp[65];

	if (q->who->tls) {
		/* A TLS caller is its certificate; it has no uid, process or cgroup. */
		vhsmd_log("audit", "deny op=%s key=%s %s", vhsm_op_name(q->op), name ? name : "-",
			  vhsmd_peer_describe(q->who, wb, sizeof(wb)));
		hex_encode(q->who->tls_sha256, sizeof(q->who->tls_sha256), fp);
		return fail(q, VHSM_E_DENIED,
			    "%s on '%s' is not permitted for this caller (TLS certificate sha256 %s)",
			    vhsm_op_name(q->op), name ? name : "-", fp);
	}
	vhsmd_log("audit", "deny op=%s key=%s uid=%u gid=%u pid=%d exe=%s cgroup=%s",
		  vhsm_op_name(q->op), name ? name : "-", (unsigned)q->who->uid,
		  (unsigned)q->who->gid, (int)q->who->pid,
		  log_safe(q->who->have_exe, q->who->exe, exe, sizeof(exe)),
		  log_safe(q->who->have_cgroup, q->who->cgroup, cg, sizeof(cg)));
	return fail(q, VHSM_E_DENIED, "%s on '%s' is not permitted for this caller (uid %u)",
		    vhsm_op_name(q->op), name ? name : "-", (unsigned)q->who->uid);
}

static bool
allowed(struct req *q, uint32_t op, const char *name)
{
	return vhsm_policy_allows(q->d->policy, q->who, op, name);
}

/* A name TLV into buf (NUL-terminated).  0, or an answered error. */
static int
get_name(struct req *q, uint16_t tag, char buf[VHSM_NAME_MAX + 1])
{
	const uint8_t *p;
	size_t l;

	if (vhsm_tlv_find(q->body, q->blen, tag, &p, &l) != 0)
		return fail(q, VHSM_E_ARGUMENT, "missing %s", tag == VHSM_T_NAME ? "name" : "new name");
	if (!vhsm_name_valid(p, l))
		return fail(q, VHSM_E_ARGUMENT, "invalid key name (1-128 of A-Z a-z 0-9 . _ : @ / + -)");
	memcpy(buf, p, l);
	buf[l] = 0;
	return 0;
}

static int
opt_u32(struct req *q, uint16_t tag, uint32_t def, uint32_t *v)
{
	int r = vhsm_tlv_u32(q->body, q->blen, tag, v);

	if (r == -1) {
		*v = def;
		return 0;
	}
	return r == 0 ? 0 : fail(q, VHSM_E_ARGUMENT, "field %u must be 4 bytes", tag);
}

static int
need_bytes(struct req *q, uint16_t tag, const uint8_t **p, size_t *l, const char *what)
{
	if (vhsm_tlv_find(q->body, q->blen, tag, p, l) != 0)
		return fail(q, VHSM_E_ARGUMENT, "missing %s", what);
	return 0;
}

static void
opt_bytes(struct req *q, uint16_t tag, const uint8_t **p, size_t *l)
{
	if (vhsm_tlv_find(q->body, q->blen, tag, p, l) != 0) {
		*p = NULL;
		*l = 0;
	}
}

/* ------------------------------------------------------------------ */
/* The key table                                                       */

static size_t
key_pos(const struct vhsmd *d, const char *name, bool *found)
{
	size_t lo = 0, hi = d->nkeys;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(d->keys[mid]->name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static struct vkey *
key_find(const struct vhsmd *d, const char *name)
{
	bool found;
	size_t i = key_pos(d, name, &found);

	return found ? d->keys[i] : NULL;
}

static void
key_free(struct vkey *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->nv; i++)
		vk_material_clear(&k->v[i].m);
	free(k->v);
	OPENSSL_cleanse(k, sizeof(*k));
	free(k);
}

static int
key_insert(struct vhsmd *d, struct vkey *k)
{
	bool found;
	size_t i = key_pos(d, k->name, &found);

	if (found)
		return VHSM_E_EXISTS;
	if (d->nkeys >= VHSMD_MAX_KEYS)
		return VHSM_E_NOMEM;
	if (d->nkeys == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 64;
		struct vkey **nk = realloc(d->keys, ncap * sizeof(*nk));

		if (nk == NULL)
			return VHSM_E_NOMEM;
		d->keys = nk;
		d->cap = ncap;
	}
	memmove(d->keys + i + 1, d->keys + i, (d->nkeys - i) * sizeof(*d->keys));
	d->keys[i] = k;
	d->nkeys++;
	return 0;
}

static void
key_remove(struct vhsmd *d, const char *name)
{
	bool found;
	size_t i = key_pos(d, name, &found);

	if (!found)
		return;
	key_free(d->keys[i]);
	memmove(d->keys + i, d->keys + i + 1, (d->nkeys - i - 1) * sizeof(*d->keys));
	d->nkeys--;
}

void
vhsmd_keys_clear(struct vhsmd *d)
{
	size_t i;

	for (i = 0; i < d->nkeys; i++)
		key_free(d->keys[i]);
	free(d->keys);
	d->keys = NULL;
	d->nkeys = d->cap = 0;
}

static struct vkver *
key_current(struct vkey *k)
{
	return &k->v[k->nv - 1];
}

static struct vkver *
key_version(struct vkey *k, uint32_t version)
{
	size_t i;

	if (version == 0)
		return key_current(k);
	for (i = 0; i < k->nv; i++)
		if (k->v[i].version == version)
			return &k->v[i];
	return NULL;
}

static void
attrs_of(const struct vkey *k, const struct vkver *v, struct vstore_attrs *a)
{
	a->type = k->type;
	a->usages = k->usages;
	a->flags = k->flags;
	a->origin = k->origin;
	a->max_age = k->max_age;
	a->retired = v->retired ? 1 : 0;
}

/* Seal one version (inside the caller's transaction). */
static int
persist_version(struct vhsmd *d, const struct vkey *k, const struct vkver *v)
{
	struct vstore_attrs a;
	uint8_t *mat = NULL;
	size_t ml = 0;
	int r;

	if ((r = vk_export(k->type, &v->m, &mat, &ml)) != 0)
		return r;
	attrs_of(k, v, &a);
	r = vstore_put(d->store, k->name, v->version, &a, mat, ml) == 0 ? 0 : VHSM_E_STORE;
	OPENSSL_secure_clear_free(mat, ml);
	return r;
}

/* Load callback: a record becomes a key or a version of one. */
static int
load_cb(void *arg, const char *name, uint32_t version, const struct vstore_attrs *a,
	const uint8_t *material, size_t len)
{
	struct vhsmd *d = arg;
	struct vkey *k = key_find(d, name);
	struct vkver *nv;
	struct vk_material m = { 0 };

	if (!vhsm_name_valid((const uint8_t *)name, strlen(name)) || !vk_type_valid(a->type))
		return -1;
	if (vk_import(a->type, material, len, &m) != 0)
		return -1;
	if (k == NULL) {
		if ((k = calloc(1, sizeof(*k))) == NULL)
			goto fail;
		snprintf(k->name, sizeof(k->name), "%s", name);
		k->type = a->type;
		k->usages = a->usages;
		k->flags = a->flags;
		k->origin = a->origin;
		k->max_age = a->max_age;
		if (key_insert(d, k) != 0) {
			free(k);
			goto fail;
		}
	}
	if (k->type != a->type || (k->nv > 0 && key_current(k)->version >= version))
		goto fail;
	if ((nv = realloc(k->v, (k->nv + 1) * sizeof(*nv))) == NULL)
		goto fail;
	k->v = nv;
	k->v[k->nv].version = version;
	k->v[k->nv].retired = a->retired != 0;
	k->v[k->nv].m = m;
	k->nv++;
	return 0;
fail:
	vk_material_clear(&m);
	return -1;
}

int
vhsmd_keys_load(struct vhsmd *d, char *err, size_t errlen)
{
	if (d->store == NULL)
		return 0;
	return vstore_load(d->store, load_cb, d, err, errlen);
}

/* ------------------------------------------------------------------ */
/* Creating keys (generate, import, unwrap, derive)                    */

struct spec {
	uint32_t type, usages, flags, max_age;
	uint32_t version; /* the first version's number; 0 = 1 (a Case B release keeps provd's) */
};

static int
read_spec(struct req *q, struct spec *s)
{
	int r;

	s->version = 0; /* keys made by a request start at version 1 */
	if (vhsm_tlv_u32(q->body, q->blen, VHSM_T_KEY_TYPE, &s->type) != 0 ||
	    !vk_type_valid(s->type))
		return fail(q, VHSM_E_ARGUMENT, "missing or unknown key type");
	if ((r = opt_u32(q, VHSM_T_USAGES, vk_type_usages(s->type), &s->usages)) != 0 ||
	    (r = opt_u32(q, VHSM_T_FLAGS, 0, &s->flags)) != 0 ||
	    (r = opt_u32(q, VHSM_T_MAX_AGE, 0, &s->max_age)) != 0)
		return r;
	if (s->usages & ~vk_type_usages(s->type))
		return fail(q, VHSM_E_ARGUMENT, "usages 0x%x not possible for %s (allowed 0x%x)",
			    s->usages, vhsm_key_type_name(s->type), vk_type_usages(s->type));
	if (s->flags & ~VHSM_FLAG_ALL)
		return fail(q, VHSM_E_ARGUMENT, "unknown flags 0x%x", s->flags);
	if ((s->flags & VHSM_FLAG_EXPORTABLE) && s->type != VHSM_KEY_OPAQUE)
		return fail(q, VHSM_E_ARGUMENT,
			    "only opaque secrets can be exportable; private and secret keys never are");
	if ((s->flags & VHSM_FLAG_PERSISTENT) && q->d->store == NULL)
		return fail(q, VHSM_E_ARGUMENT, "persistent key requested but no sealed store is configured");
	return 0;
}

/* Install a new key with material m (taken over on success and failure). */
static int
install(struct req *q, const char *name, const struct spec *s, uint32_t origin,
	struct vk_material *m)
{
	char wb[VHSMD_PEER_TEXT_MAX];
	struct vkey *k = NULL;
	int r;

	if (key_find(q->d, name) != NULL) {
		vk_material_clear(m);
		return fail(q, VHSM_E_EXISTS, "key '%s' exists", name);
	}
	if ((k = calloc(1, sizeof(*k))) == NULL || (k->v = calloc(1, sizeof(*k->v))) == NULL) {
		vk_material_clear(m);
		free(k);
		return fail(q, VHSM_E_NOMEM, "out of memory");
	}
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->type = s->type;
	k->usages = s->usages;
	k->flags = s->flags;
	k->origin = origin;
	k->max_age = s->max_age;
	k->nv = 1;
	k->v[0].version = s->version != 0 ? s->version : 1;
	k->v[0].m = *m;
	memset(m, 0, sizeof(*m));
	if (k->flags & VHSM_FLAG_PERSISTENT) {
		if (vstore_begin(q->d->store) != 0) {
			r = fail(q, VHSM_E_STORE, "sealed store busy or failed; key not created");
			goto out;
		}
		if ((r = persist_version(q->d, k, &k->v[0])) != 0 || vstore_commit(q->d->store) != 0) {
			vstore_rollback(q->d->store);
			r = fail(q, VHSM_E_STORE, "sealed store write failed; key not created");
			goto out;
		}
	}
	if ((r = key_insert(q->d, k)) != 0) {
		/* Only memory can fail here; undo the sealed record. */
		if ((k->flags & VHSM_FLAG_PERSISTENT) && vstore_begin(q->d->store) == 0) {
			if (vstore_delete(q->d->store, k->name) != 0 || vstore_commit(q->d->store) != 0)
				vstore_rollback(q->d->store);
		}
		r = fail(q, r, "cannot add key");
		goto out;
	}
	vhsmd_log("audit", "create key=%s type=%s origin=%u persistent=%d %s", k->name,
		  vhsm_key_type_name(k->type), origin, (k->flags & VHSM_FLAG_PERSISTENT) != 0,
		  vhsmd_peer_describe(q->who, wb, sizeof(wb)));
	k = NULL;
	r = 0;
out:
	key_free(k);
	return r;
}

static void
put_info(struct vhsm_wbuf *w, const struct vkey *k)
{
	size_t i, usable = 0;

	for (i = 0; i < k->nv; i++)
		usable += !k->v[i].retired;
	vhsm_wbuf_tlv_str(w, VHSM_T_NAME, k->name);
	vhsm_wbuf_tlv_u32(w, VHSM_T_KEY_TYPE, k->type);
	vhsm_wbuf_tlv_u32(w, VHSM_T_USAGES, k->usages);
	vhsm_wbuf_tlv_u32(w, VHSM_T_FLAGS, k->flags);
	vhsm_wbuf_tlv_u32(w, VHSM_T_VERSION, k->v[k->nv - 1].version);
	vhsm_wbuf_tlv_u32(w, VHSM_T_VERSIONS, (uint32_t)usable);
	vhsm_wbuf_tlv_u32(w, VHSM_T_ORIGIN, k->origin);
	vhsm_wbuf_tlv_u32(w, VHSM_T_MAX_AGE, k->max_age);
}

/* Hold the request until the Case B hand-off for `name` ends (VHSMD_HOLD), or,
 * when this is the frame served again after that end, answer its outcome. */
static int
hold(struct req *q, const char *name, uint32_t kind)
{
	char msg[VCASEB_MSG_MAX];

	if (q->d->hold_done) {
		if (q->d->hold_fail != NULL)
			return fail(q, VHSM_E_UNAVAILABLE, "%s", q->d->hold_fail);
		return fail(q, VHSM_E_UNAVAILABLE, "key %s unavailable: the hand-off with nitrided "
						   "did not make it usable", name);
	}
	if (vcaseb_start(q->d, name, kind, msg, sizeof(msg)) != 0)
		return fail(q, VHSM_E_UNAVAILABLE, "%s", msg);
	snprintf(q->d->hold_name, sizeof(q->d->hold_name), "%s", name);
	q->d->hold_kind = kind;
	return VHSMD_HOLD;
}

/* Authorise op on the NAME of the request, then find the key.  On success *kp. */
static int
authorised_key(struct req *q, char name[VHSM_NAME_MAX + 1], struct vkey **kp)
{
	int r;

	if ((r = get_name(q, VHSM_T_NAME, name)) != 0)
		return r;
	if (!allowed(q, q->op, name))
		return deny(q, name);
	if ((*kp = key_find(q->d, name)) == NULL) {
		/* Case B: a key that is absent but provisionable is fetched
		 * through nitrided for operations that use it (not for delete,
		 * rotate or retire). */
		if (q->op != VHSM_OP_DELETE && q->op != VHSM_OP_ROTATE && q->op != VHSM_OP_RETIRE &&
		    vcaseb_provisionable(q->d->caseb, name))
			return hold(q, name, VHSM_OP_NITRIDED_PROVISION);
		return fail(q, VHSM_E_NOT_FOUND, "no key named '%s'", name);
	}
	return 0;
}

/* The attestation gate: a key with require_attestation is usable only while
 * a hand-off with nitrided has attested it (Case B); without Case B never. */
static int
gate(struct req *q, const struct vkey *k)
{
	if (k->max_age == 0)
		return 0;
	if (q->d->caseb != NULL && (int64_t)time(NULL) < k->attested_until)
		return 0;
	if (q->d->caseb != NULL)
		return hold(q, k->name, VHSM_OP_NITRIDED_ATTEST);
	return fail(q, VHSM_E_NOT_ATTESTED,
		    "key '%s' requires attestation no older than %u s; vhsmd has no fresh "
		    "attestation for it (Case B is not configured)",
		    k->name, k->max_age);
}

/* Usage and attestation gates for a key operation. */
static int
usable(struct req *q, const struct vkey *k, uint32_t usage)
{
	if (!(k->usages & usage))
		return fail(q, VHSM_E_USAGE, "key '%s' (%s) does not have the usage this operation needs",
			    k->name, vhsm_key_type_name(k->type));
	return gate(q, k);
}

/* The version to use for verify/decrypt (0 = current); retired ones refused. */
static int
pick_version(struct req *q, struct vkey *k, uint32_t version, struct vkver **vp)
{
	struct vkver *v = key_version(k, version);

	if (v == NULL)
		return fail(q, VHSM_E_NOT_FOUND, "key '%s' has no version %u", k->name, version);
	if (v->retired)
		return fail(q, VHSM_E_RETIRED, "key '%s' version %u is retired", k->name, v->version);
	*vp = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Operations                                                          */

static int
op_ping(struct req *q)
{
	(void)q;
	return 0;
}

static int
op_generate(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct spec s;
	struct vk_material m = { 0 };
	int r;

	if ((r = get_name(q, VHSM_T_NAME, name)) != 0)
		return r;
	if (!allowed(q, q->op, name))
		return deny(q, name);
	if ((r = read_spec(q, &s)) != 0)
		return r;
	if (key_find(q->d, name) != NULL)
		return fail(q, VHSM_E_EXISTS, "key '%s' exists", name);
	if ((r = vk_generate(s.type, &m)) != 0)
		return fail(q, r, "key generation failed");
	if ((r = install(q, name, &s, VHSM_ORIGIN_GENERATED, &m)) != 0)
		return r;
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, 1);
	return 0;
}

static int
op_import(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct spec s;
	struct vk_material m = { 0 };
	const uint8_t *data;
	size_t dl;
	int r;

	if ((r = get_name(q, VHSM_T_NAME, name)) != 0)
		return r;
	if (!allowed(q, q->op, name))
		return deny(q, name);
	if ((r = read_spec(q, &s)) != 0 || (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "key material")) != 0)
		return r;
	if ((r = vk_import(s.type, data, dl, &m)) != 0)
		return fail(q, r, "key material is not a valid %s key", vhsm_key_type_name(s.type));
	return install(q, name, &s, VHSM_ORIGIN_PROVISIONED, &m);
}

static int
op_delete(struct req *q)
{
	char name[VHSM_NAME_MAX + 1], wb[VHSMD_PEER_TEXT_MAX];
	struct vkey *k;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0)
		return r;
	if (k->flags & VHSM_FLAG_PERSISTENT) {
		if (vstore_begin(q->d->store) != 0 || vstore_delete(q->d->store, name) != 0 ||
		    vstore_commit(q->d->store) != 0) {
			vstore_rollback(q->d->store);
			return fail(q, VHSM_E_STORE, "sealed store write failed; key not deleted");
		}
	}
	key_remove(q->d, name);
	vhsmd_log("audit", "delete key=%s %s", name, vhsmd_peer_describe(q->who, wb, sizeof(wb)));
	return 0;
}

static int
op_list(struct req *q)
{
	size_t i;

	for (i = 0; i < q->d->nkeys; i++) {
		const struct vkey *k = q->d->keys[i];
		size_t at;

		if (!vhsm_policy_may_see(q->d->policy, q->who, k->name))
			continue;
		at = vhsm_wbuf_nest_begin(q->w, VHSM_T_KEYINFO);
		put_info(q->w, k);
		vhsm_wbuf_nest_end(q->w, at);
	}
	return 0;
}

static int
op_get_public(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	struct vkver *v;
	uint8_t *der = NULL;
	size_t dl = 0;
	uint32_t version;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = opt_u32(q, VHSM_T_VERSION, 0, &version)) != 0)
		return r;
	if ((v = key_version(k, version)) == NULL)
		return fail(q, VHSM_E_NOT_FOUND, "key '%s' has no version %u", name, version);
	put_info(q->w, k);
	if (k->type == VHSM_KEY_CERT) /* public data: the certificate itself */
		vhsm_wbuf_tlv(q->w, VHSM_T_DATA, v->m.sec, v->m.sec_len);
	if (vk_type_asymmetric(k->type)) {
		if ((r = vk_public_der(&v->m, &der, &dl)) != 0)
			return fail(q, r, "cannot encode the public key");
		vhsm_wbuf_tlv(q->w, VHSM_T_PUBKEY, der, dl);
		OPENSSL_free(der);
	}
	return 0;
}

static int
op_sign(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	const uint8_t *data;
	uint8_t *sig = NULL;
	size_t dl, sl = 0;
	uint32_t alg, hash;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = usable(q, k, VHSM_USAGE_SIGN)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "data")) != 0 ||
	    (r = opt_u32(q, VHSM_T_ALG, 0, &alg)) != 0 || (r = opt_u32(q, VHSM_T_HASH, 0, &hash)) != 0)
		return r;
	if ((r = vk_sign(k->type, &key_current(k)->m, alg, hash, data, dl, &sig, &sl)) != 0)
		return fail(q, r, "sign with '%s' failed (algorithm %u, hash %u)", name, alg, hash);
	vhsm_wbuf_tlv(q->w, VHSM_T_SIGNATURE, sig, sl);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, key_current(k)->version);
	OPENSSL_free(sig);
	return 0;
}

static int
op_verify(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	struct vkver *v;
	const uint8_t *data, *sig;
	size_t dl, sl;
	uint32_t alg, hash, version;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = usable(q, k, VHSM_USAGE_VERIFY)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "data")) != 0 ||
	    (r = need_bytes(q, VHSM_T_SIGNATURE, &sig, &sl, "signature")) != 0 ||
	    (r = opt_u32(q, VHSM_T_ALG, 0, &alg)) != 0 || (r = opt_u32(q, VHSM_T_HASH, 0, &hash)) != 0 ||
	    (r = opt_u32(q, VHSM_T_VERSION, 0, &version)) != 0 ||
	    (r = pick_version(q, k, version, &v)) != 0)
		return r;
	r = vk_verify(k->type, &v->m, alg, hash, data, dl, sig, sl);
	if (r != 0 && r != VHSM_E_BAD_SIGNATURE)
		return fail(q, r, "verify with '%s' failed (algorithm %u, hash %u)", name, alg, hash);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VALID, r == 0);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, v->version);
	return 0;
}

static int
op_crypt(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	struct vkver *v = NULL;
	const uint8_t *data, *aad;
	uint8_t *out = NULL;
	size_t dl, al, ol = 0;
	uint32_t hash, version;
	bool enc = q->op == VHSM_OP_ENCRYPT;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 ||
	    (r = usable(q, k, enc ? VHSM_USAGE_ENCRYPT : VHSM_USAGE_DECRYPT)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "data")) != 0 ||
	    (r = opt_u32(q, VHSM_T_HASH, 0, &hash)) != 0 ||
	    (r = opt_u32(q, VHSM_T_VERSION, 0, &version)) != 0)
		return r;
	opt_bytes(q, VHSM_T_AAD, &aad, &al);
	if (enc) {
		v = key_current(k);
	} else {
		if (k->type == VHSM_KEY_AES256 && vk_gcm_blob_version(data, dl, &version) != 0)
			return fail(q, VHSM_E_DECRYPT, "ciphertext too short");
		if ((r = pick_version(q, k, version, &v)) != 0)
			return r;
	}
	r = enc ? vk_encrypt(k->type, &v->m, v->version, hash, aad, al, data, dl, &out, &ol)
		: vk_decrypt(k->type, &v->m, hash, aad, al, data, dl, &out, &ol);
	if (r != 0)
		return fail(q, r, "%s with '%s' failed", enc ? "encrypt" : "decrypt", name);
	vhsm_wbuf_tlv(q->w, VHSM_T_DATA, out, ol);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, v->version);
	OPENSSL_clear_free(out, ol);
	return 0;
}

static int
op_wrap(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	const uint8_t *data;
	uint8_t *out = NULL;
	size_t dl, ol = 0;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = usable(q, k, VHSM_USAGE_WRAP)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "data")) != 0)
		return r;
	if ((r = vk_wrap(&key_current(k)->m, data, dl, &out, &ol)) != 0)
		return fail(q, r, "wrap with '%s' failed", name);
	vhsm_wbuf_tlv(q->w, VHSM_T_DATA, out, ol);
	OPENSSL_clear_free(out, ol);
	return 0;
}

static int
op_unwrap(struct req *q)
{
	char name[VHSM_NAME_MAX + 1], nname[VHSM_NAME_MAX + 1];
	struct vkey *k;
	struct spec s;
	const uint8_t *data;
	uint8_t *plain = NULL;
	size_t dl, pl = 0;
	struct vk_material m = { 0 };
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = get_name(q, VHSM_T_NEW_NAME, nname)) != 0)
		return r;
	if (!allowed(q, VHSM_OP_IMPORT, nname))
		return deny(q, nname);
	if ((r = usable(q, k, VHSM_USAGE_UNWRAP)) != 0 || (r = read_spec(q, &s)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "wrapped key")) != 0)
		return r;
	if ((r = vk_unwrap(&key_current(k)->m, data, dl, &plain, &pl)) != 0)
		return fail(q, r, "unwrap with '%s' failed", name);
	r = vk_import(s.type, plain, pl, &m);
	OPENSSL_secure_clear_free(plain, dl + 16); /* vk_unwrap's allocation */
	if (r != 0)
		return fail(q, r, "unwrapped bytes are not a valid %s key", vhsm_key_type_name(s.type));
	return install(q, nname, &s, VHSM_ORIGIN_PROVISIONED, &m);
}

static int
op_hmac(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	const uint8_t *data;
	uint8_t *mac = NULL;
	size_t dl, ml = 0;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = usable(q, k, VHSM_USAGE_MAC)) != 0 ||
	    (r = need_bytes(q, VHSM_T_DATA, &data, &dl, "data")) != 0)
		return r;
	if ((r = vk_hmac(k->type, &key_current(k)->m, data, dl, &mac, &ml)) != 0)
		return fail(q, r, "hmac with '%s' failed", name);
	vhsm_wbuf_tlv(q->w, VHSM_T_DATA, mac, ml);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, key_current(k)->version);
	OPENSSL_clear_free(mac, ml);
	return 0;
}

static int
op_derive(struct req *q)
{
	char name[VHSM_NAME_MAX + 1], nname[VHSM_NAME_MAX + 1];
	struct vkey *k;
	struct spec s;
	const uint8_t *peer, *shared = NULL;
	size_t pl, sl = 0;
	uint32_t kdf;
	struct vk_material m = { 0 };
	int r;

	if ((r = authorised_key(q, name, &k)) != 0 || (r = get_name(q, VHSM_T_NEW_NAME, nname)) != 0)
		return r;
	if (!allowed(q, VHSM_OP_GENERATE, nname))
		return deny(q, nname);
	if ((r = usable(q, k, VHSM_USAGE_DERIVE)) != 0 || (r = read_spec(q, &s)) != 0 ||
	    (r = need_bytes(q, VHSM_T_PUBKEY, &peer, &pl, "peer public key")) != 0 ||
	    (r = opt_u32(q, VHSM_T_KDF, VHSM_KDF_HKDF, &kdf)) != 0)
		return r;
	opt_bytes(q, VHSM_T_DATA, &shared, &sl);
	if (kdf > VHSM_KDF_MAX)
		return fail(q, VHSM_E_UNSUPPORTED, "unknown key derivation %u", kdf);
	if (shared != NULL && kdf != VHSM_KDF_X963_SHA256 && kdf != VHSM_KDF_X963_SHA384 &&
	    kdf != VHSM_KDF_X963_SHA512)
		return fail(q, VHSM_E_ARGUMENT, "shared info (DATA) is only for the X9.63 KDF");
	/* HKDF binds the new name; X9.63 takes the caller's shared info. */
	if (kdf == VHSM_KDF_HKDF) {
		shared = (const uint8_t *)nname;
		sl = strlen(nname);
	}
	if ((r = vk_derive_kdf(k->type, &key_current(k)->m, peer, pl, kdf, shared, sl, s.type, &m)) != 0)
		return fail(q, r, "ECDH with '%s' failed (peer key must be on the same curve%s)", name,
			    kdf == VHSM_KDF_NONE ? "; without a KDF the secret must be as long as the new key"
						 : "");
	return install(q, nname, &s, VHSM_ORIGIN_DERIVED, &m);
}

static int
op_random(struct req *q)
{
	uint8_t *out = NULL;
	uint32_t n;
	int r;

	if (!allowed(q, q->op, NULL))
		return deny(q, NULL);
	if (vhsm_tlv_u32(q->body, q->blen, VHSM_T_COUNT, &n) != 0)
		return fail(q, VHSM_E_ARGUMENT, "missing count");
	if ((r = vk_random(n, &out)) != 0)
		return fail(q, r, "random: count must be 1..65536");
	vhsm_wbuf_tlv(q->w, VHSM_T_DATA, out, n);
	OPENSSL_clear_free(out, n);
	return 0;
}

static int
op_rotate(struct req *q)
{
	char name[VHSM_NAME_MAX + 1], wb[VHSMD_PEER_TEXT_MAX];
	struct vkey *k;
	struct vkver *nv, *cur;
	struct vk_material m = { 0 };
	const uint8_t *data;
	size_t dl;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0)
		return r;
	opt_bytes(q, VHSM_T_DATA, &data, &dl);
	if (key_current(k)->version == UINT32_MAX)
		return fail(q, VHSM_E_ARGUMENT, "no more versions");
	r = data ? vk_import(k->type, data, dl, &m) : vk_generate(k->type, &m);
	if (r != 0)
		return fail(q, r, "cannot make new material for '%s'", name);
	if ((nv = realloc(k->v, (k->nv + 1) * sizeof(*nv))) == NULL) {
		vk_material_clear(&m);
		return fail(q, VHSM_E_NOMEM, "out of memory");
	}
	k->v = nv;
	cur = &k->v[k->nv];
	cur->version = k->v[k->nv - 1].version + 1;
	cur->retired = false;
	cur->m = m;
	if (k->flags & VHSM_FLAG_PERSISTENT) {
		if (vstore_begin(q->d->store) != 0 || persist_version(q->d, k, cur) != 0 ||
		    vstore_commit(q->d->store) != 0) {
			vstore_rollback(q->d->store);
			vk_material_clear(&cur->m);
			return fail(q, VHSM_E_STORE, "sealed store write failed; key not rotated");
		}
	}
	k->nv++;
	vhsmd_log("audit", "rotate key=%s version=%u %s", name, cur->version,
		  vhsmd_peer_describe(q->who, wb, sizeof(wb)));
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, cur->version);
	return 0;
}

static int
op_retire(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	uint32_t upto;
	size_t i;
	bool *was = NULL;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0)
		return r;
	if (vhsm_tlv_u32(q->body, q->blen, VHSM_T_VERSION, &upto) != 0)
		return fail(q, VHSM_E_ARGUMENT, "missing version");
	if ((was = calloc(k->nv, sizeof(bool))) == NULL)
		return fail(q, VHSM_E_NOMEM, "out of memory");
	for (i = 0; i + 1 < k->nv; i++) {
		was[i] = k->v[i].retired;
		if (k->v[i].version <= upto)
			k->v[i].retired = true;
	}
	if (k->flags & VHSM_FLAG_PERSISTENT) {
		bool ok = vstore_begin(q->d->store) == 0;

		for (i = 0; ok && i + 1 < k->nv; i++)
			if (k->v[i].retired != was[i])
				ok = persist_version(q->d, k, &k->v[i]) == 0;
		if (!ok || vstore_commit(q->d->store) != 0) {
			vstore_rollback(q->d->store);
			for (i = 0; i + 1 < k->nv; i++)
				k->v[i].retired = was[i];
			free(was);
			return fail(q, VHSM_E_STORE, "sealed store write failed; nothing retired");
		}
	}
	free(was);
	put_info(q->w, k);
	return 0;
}

static int
op_read_secret(struct req *q)
{
	char name[VHSM_NAME_MAX + 1], wb[VHSMD_PEER_TEXT_MAX];
	struct vkey *k;
	struct vkver *v;
	int r;

	if ((r = authorised_key(q, name, &k)) != 0)
		return r;
	if (k->type != VHSM_KEY_OPAQUE)
		return fail(q, VHSM_E_NOT_EXPORTABLE,
			    "'%s' is a %s key: private and secret key material is never exportable",
			    name, vhsm_key_type_name(k->type));
	if (!(k->flags & VHSM_FLAG_EXPORTABLE))
		return fail(q, VHSM_E_NOT_EXPORTABLE, "secret '%s' is not exportable", name);
	if ((r = gate(q, k)) != 0)
		return r;
	v = key_current(k);
	vhsm_wbuf_tlv(q->w, VHSM_T_DATA, v->m.sec, v->m.sec_len);
	vhsm_wbuf_tlv_u32(q->w, VHSM_T_VERSION, v->version);
	vhsmd_log("audit", "read key=%s %s", name, vhsmd_peer_describe(q->who, wb, sizeof(wb)));
	return 0;
}

/* Case B: make NAME available (provisioned, and attested if gated). */
static int
op_provision(struct req *q)
{
	char name[VHSM_NAME_MAX + 1];
	struct vkey *k;
	int r;

	if ((r = get_name(q, VHSM_T_NAME, name)) != 0)
		return r;
	if (!allowed(q, q->op, name))
		return deny(q, name);
	if (q->d->caseb == NULL)
		return fail(q, VHSM_E_UNSUPPORTED, "Case B is not configured ([caseb] nitrided_socket)");
	if ((k = key_find(q->d, name)) == NULL) {
		if (!vcaseb_provisionable(q->d->caseb, name))
			return fail(q, VHSM_E_NOT_FOUND, "no key named '%s', and it is not provisionable", name);
		return hold(q, name, VHSM_OP_NITRIDED_PROVISION);
	}
	if ((r = gate(q, k)) != 0)
		return r;
	put_info(q->w, k);
	return 0;
}

/* The fixed request table (OpenSSH monitor style): one handler per opcode. */
static int (*const op_table[VHSM_OP_MAX + 1])(struct req *) = {
	[VHSM_OP_PING] = op_ping,
	[VHSM_OP_GENERATE] = op_generate,
	[VHSM_OP_IMPORT] = op_import,
	[VHSM_OP_DELETE] = op_delete,
	[VHSM_OP_LIST] = op_list,
	[VHSM_OP_GET_PUBLIC] = op_get_public,
	[VHSM_OP_SIGN] = op_sign,
	[VHSM_OP_VERIFY] = op_verify,
	[VHSM_OP_ENCRYPT] = op_crypt,
	[VHSM_OP_DECRYPT] = op_crypt,
	[VHSM_OP_WRAP] = op_wrap,
	[VHSM_OP_UNWRAP] = op_unwrap,
	[VHSM_OP_HMAC] = op_hmac,
	[VHSM_OP_DERIVE] = op_derive,
	[VHSM_OP_RANDOM] = op_random,
	[VHSM_OP_ROTATE] = op_rotate,
	[VHSM_OP_READ_SECRET] = op_read_secret,
	[VHSM_OP_RETIRE] = op_retire,
	[VHSM_OP_PROVISION] = op_provision,
};

int
vhsmd_handle(struct vhsmd *d, const struct vhsm_principal *who, const struct vhsm_frame *f,
	     struct vhsm_wbuf *resp)
{
	char wb[VHSMD_PEER_TEXT_MAX];
	struct vhsm_wbuf w;
	struct req q;
	size_t start = resp->len;
	int status;

	vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&w, (uint8_t)(VHSM_RESPONSE | f->type), f->id);
	vhsm_wbuf_tlv_u32(&w, VHSM_T_STATUS, 0);
	d->msg[0] = 0;
	q.d = d;
	q.who = who;
	q.op = f->type;
	q.body = f->body;
	q.blen = f->body_len;
	q.w = &w;
	status = f->type <= VHSM_OP_MAX && op_table[f->type] ? op_table[f->type](&q)
							    : VHSM_E_PROTOCOL;
	if (status == VHSMD_HOLD) {
		vhsm_wbuf_free(&w);
		return VHSMD_HOLD;
	}
	if (status == 0 && d->log_allowed && f->type != VHSM_OP_PING)
		vhsmd_log("audit", "allow op=%s %s", vhsm_op_name(f->type),
			  vhsmd_peer_describe(who, wb, sizeof(wb)));
	if (status == 0 && vhsm_wbuf_finish(&w) != 0) {
		status = VHSM_E_TOO_LARGE;
		snprintf(d->msg, sizeof(d->msg), "the answer exceeds the protocol's size cap");
	}
	if (status != 0) {
		vhsm_wbuf_free(&w);
		vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
		vhsm_wbuf_frame(&w, (uint8_t)(VHSM_RESPONSE | f->type), f->id);
		vhsm_wbuf_tlv_u32(&w, VHSM_T_STATUS, (uint32_t)-status);
		vhsm_wbuf_tlv_str(&w, VHSM_T_MESSAGE, d->msg[0] ? d->msg : vhsm_strerror(status));
		if (vhsm_wbuf_finish(&w) != 0) {
			vhsm_wbuf_free(&w);
			return -1;
		}
	}
	/* Append the frame to the connection's output. */
	vhsm_wbuf_raw(resp, w.p, w.len);
	vhsm_wbuf_free(&w);
	if (resp->failed) {
		resp->failed = false;
		resp->len = start;
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Case B: what nitrided brought                                       */

static const char *const usage_names[8] = { "sign", "verify", "encrypt", "decrypt",
					    "wrap", "unwrap", "mac", "derive" };

/* base64url without padding into secure memory.  -1 if malformed. */
static int
b64url_secure(const char *s, uint8_t **out, size_t *outlen)
{
	size_t n = strlen(s), i, pad, cap;
	char *t = NULL;
	uint8_t *b = NULL;
	int m, r = -1;

	if (n == 0 || n > 16 * 1024 || n % 4 == 1)
		return -1;
	pad = (4 - n % 4) % 4;
	cap = n + pad;
	if ((t = OPENSSL_secure_malloc(cap + 1)) == NULL || (b = OPENSSL_secure_malloc(cap)) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			goto out;
		t[i] = c;
	}
	for (i = 0; i < pad; i++)
		t[n + i] = '=';
	t[cap] = 0;
	if ((m = EVP_DecodeBlock(b, (const unsigned char *)t, (int)cap)) < 0 || (size_t)m < pad)
		goto out;
	*outlen = (size_t)m - pad;
	*out = b;
	b = NULL;
	r = 0;
out:
	if (t != NULL)
		OPENSSL_secure_clear_free(t, cap + 1);
	if (b != NULL)
		OPENSSL_secure_clear_free(b, cap);
	return r;
}

/*
 * Case B rotation: add release version `version` (material m, taken over on
 * success and failure) to the installed key k, like rotate with given
 * material.  A version not newer than k's current one is never installed
 * (provd's "latest" skips retired versions, so a retired or older version
 * can only come back as a downgrade, which is refused silently): 0 with
 * "up to date" in msg.  The key keeps its attributes; older versions stay
 * usable for verify/decrypt until retired.  0, or -1 with the reason in msg.
 */
static int
add_version(struct vhsmd *d, struct vkey *k, uint32_t type, uint32_t version, struct vk_material *m,
	    char *msg, size_t msglen)
{
	struct vkver *nv, *cur;
	int r = -1;

	if (type != k->type) {
		snprintf(msg, msglen, "the release is a %s key, the installed key is %s",
			 vhsm_key_type_name(type), vhsm_key_type_name(k->type));
		goto out;
	}
	if (version <= key_current(k)->version) {
		snprintf(msg, msglen, "key %s is up to date (version %u; provd's latest is %u)", k->name,
			 key_current(k)->version, version);
		r = 0;
		goto out;
	}
	if ((nv = realloc(k->v, (k->nv + 1) * sizeof(*nv))) == NULL) {
		snprintf(msg, msglen, "out of memory");
		goto out;
	}
	k->v = nv;
	cur = &k->v[k->nv];
	cur->version = version;
	cur->retired = false;
	cur->m = *m;
	memset(m, 0, sizeof(*m));
	if (k->flags & VHSM_FLAG_PERSISTENT) {
		if (vstore_begin(d->store) != 0 || persist_version(d, k, cur) != 0 ||
		    vstore_commit(d->store) != 0) {
			vstore_rollback(d->store);
			vk_material_clear(&cur->m);
			snprintf(msg, msglen, "sealed store write failed; version %u not installed", version);
			goto out;
		}
	}
	k->nv++;
	vhsmd_log("audit", "rotate key=%s version=%u (case B, through nitrided)", k->name, version);
	snprintf(msg, msglen, "key %s rotated to version %u", k->name, version);
	r = 0;
out:
	vk_material_clear(m);
	return r;
}

int
vhsmd_inject(struct vhsmd *d, const char *name, const uint8_t *payload, size_t len, char *msg,
	     size_t msglen)
{
	struct vkey *k;
	struct vhsm_principal who;
	struct vhsm_wbuf w;
	struct req q;
	struct spec s = { 0 };
	struct vk_material m = { 0 };
	json_t *o = NULL, *u, *e;
	const char *pname, *ptype, *key;
	uint8_t *mat = NULL;
	size_t ml = 0, i, j;
	json_int_t ma;
	int r = -1;

	o = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL);
	pname = json_string_value(json_object_get(o, "name"));
	ptype = json_string_value(json_object_get(o, "type"));
	key = json_string_value(json_object_get(o, "key"));
	if (o == NULL || pname == NULL || ptype == NULL || key == NULL) {
		snprintf(msg, msglen, "the release payload is not the expected JSON");
		goto out;
	}
	if (strcmp(pname, name) != 0) {
		snprintf(msg, msglen, "the release is for '%.128s', not this key", pname);
		goto out;
	}
	if ((s.type = vhsm_key_type_from_name(ptype)) == 0) {
		snprintf(msg, msglen, "the release has an unknown key type '%.32s'", ptype);
		goto out;
	}
	if (!json_is_integer(json_object_get(o, "version")) ||
	    json_integer_value(json_object_get(o, "version")) < 1) {
		snprintf(msg, msglen, "the release has no valid version");
		goto out;
	}
	if (json_integer_value(json_object_get(o, "version")) > (json_int_t)UINT32_MAX) {
		snprintf(msg, msglen, "the release's version is out of range");
		goto out;
	}
	s.version = (uint32_t)json_integer_value(json_object_get(o, "version"));
	u = json_object_get(o, "usages");
	if (u != NULL && !json_is_array(u)) {
		snprintf(msg, msglen, "the release's usages are not an array");
		goto out;
	}
	json_array_foreach(u, i, e) {
		for (j = 0; j < 8; j++)
			if (json_is_string(e) && strcmp(json_string_value(e), usage_names[j]) == 0)
				break;
		if (j == 8) {
			snprintf(msg, msglen, "the release has an unknown usage");
			goto out;
		}
		s.usages |= 1u << j;
	}
	if (u == NULL)
		s.usages = vk_type_usages(s.type);
	if (s.usages & ~vk_type_usages(s.type)) {
		snprintf(msg, msglen, "the release's usages are not possible for a %s key", ptype);
		goto out;
	}
	if (json_is_true(json_object_get(o, "exportable"))) {
		if (s.type != VHSM_KEY_OPAQUE) {
			snprintf(msg, msglen, "the release marks a %s key exportable", ptype);
			goto out;
		}
		s.flags |= VHSM_FLAG_EXPORTABLE;
	}
	if (!json_is_false(json_object_get(o, "persist")) && d->store != NULL)
		s.flags |= VHSM_FLAG_PERSISTENT;
	ma = json_is_integer(json_object_get(o, "require_attestation"))
		     ? json_integer_value(json_object_get(o, "require_attestation")) : 0;
	if (ma < 0 || ma > (json_int_t)UINT32_MAX) {
		snprintf(msg, msglen, "the release's require_attestation is out of range");
		goto out;
	}
	s.max_age = (uint32_t)ma;
	if (b64url_secure(key, &mat, &ml) != 0 || vk_import(s.type, mat, ml, &m) != 0) {
		snprintf(msg, msglen, "the released material is not a valid %s key", ptype);
		goto out;
	}
	if ((k = key_find(d, name)) != NULL) {
		/* Rotation: the key is installed; add the release as a newer version. */
		r = add_version(d, k, s.type, s.version, &m, msg, msglen);
		/* The release needed a fresh attestation, as at the first install. */
		if (r == 0 && k->max_age != 0)
			(void)vhsmd_mark_attested(d, name, (int64_t)time(NULL) + k->max_age);
		goto out;
	}
	memset(&who, 0, sizeof(who));
	vhsm_wbuf_init(&w, 64);
	memset(&q, 0, sizeof(q));
	q.d = d;
	q.who = &who;
	q.op = VHSM_OP_INJECT;
	q.w = &w;
	d->msg[0] = 0;
	r = install(&q, name, &s, VHSM_ORIGIN_PROVISIONED, &m);
	vhsm_wbuf_free(&w);
	if (r != 0) {
		snprintf(msg, msglen, "%s", d->msg[0] ? d->msg : "cannot install the key");
		r = -1;
		goto out;
	}
	/* The release itself needed a fresh attestation. */
	if (s.max_age != 0)
		(void)vhsmd_mark_attested(d, name, (int64_t)time(NULL) + s.max_age);
	snprintf(msg, msglen, "key %s provisioned (version %u)", name, s.version);
	r = 0;
out:
	if (mat != NULL)
		OPENSSL_secure_clear_free(mat, ml);
	vk_material_clear(&m);
	/* Wipe the material's text copies inside the parsed document. */
	if (key != NULL)
		OPENSSL_cleanse((char *)(uintptr_t)key, strlen(key));
	if (json_is_string(json_object_get(o, "value")))
		OPENSSL_cleanse((char *)(uintptr_t)json_string_value(json_object_get(o, "value")),
				json_string_length(json_object_get(o, "value")));
	json_decref(o);
	return r;
}

int
vhsmd_mark_attested(struct vhsmd *d, const char *name, int64_t until)
{
	struct vkey *k = key_find(d, name);
	int64_t cap;

	if (k == NULL)
		return -1;
	cap = (int64_t)time(NULL) + k->max_age;
	k->attested_until = until < cap ? until : cap;
	return 0;
}
