/*
 * caseb — vhsmd's Case B hand-off with nitrided (caseb.h).
 */
#include "vhsm/caseb.h"

#include "vhsm/vhsmd.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/jwe.h"

#define IN_MAX (VHSM_HDR_LEN + 256u * 1024u) /* nitrided's answer: a JWE or a token */
#define RETRY_MS 200
#define JWKS_MAX 16
#define KEEP_MAX 8 /* idle connections to nitrided kept for the next hand-offs */

struct pend {
	char name[VHSM_NAME_MAX + 1];
	uint32_t kind;         /* VHSM_OP_NITRIDED_PROVISION or _ATTEST */
	EVP_PKEY *tkey;        /* the transfer key (P-256); private half in the secure heap */
	char *tee_json;        /* its public JWK */
	int fd;
	struct vhsm_principal who; /* nitrided as checked when fd was connected */
	bool reused;               /* fd was kept from an earlier hand-off */
	bool conn_clean;           /* no request of ours unanswered on fd: it may be kept */
	uint32_t id;
	struct vhsm_wbuf out;
	size_t out_off;
	uint8_t *in;
	size_t in_len;
	int64_t deadline, next_try; /* monotonic ms */
	bool refresh;               /* a rotation check: no request is held on it */
	char last_err[200];         /* why nitrided could not be reached yet */
	bool done;
	int status;
	char msg[VCASEB_MSG_MAX];
};

/* An idle, authenticated connection to nitrided.  The principal was read
 * from the kernel when it was connected; the socket stays bound to that
 * process (nitrided's accepted sockets are close-on-exec), so it is not
 * read again while the connection lives. */
struct kept_conn {
	int fd;
	struct vhsm_principal who;
};

struct vcaseb {
	struct vcaseb_config cfg;
	struct kept_conn idle[KEEP_MAX];
	size_t nidle;
	struct pend *p[VCASEB_MAX_PENDING];
	size_t n;
	uint32_t next_id;
	cjose_jwk_t *jwks[JWKS_MAX];
	char *kids[JWKS_MAX];
	size_t njwks;
	int64_t next_rotate;   /* monotonic ms of the next rotation check (rotate_interval > 0) */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
vcaseb_config_key(struct vcaseb_config *c, const char *name, const char *value)
{
	char *end;
	unsigned long long n;

	if (strcmp(name, "nitrided_socket") == 0) {
		if (value[0] != '/' || strlen(value) >= sizeof(c->socket))
			return 0;
		memcpy(c->socket, value, strlen(value) + 1);
		return 1;
	}
	if (strcmp(name, "rotate_interval") == 0) {
		if (value[0] < '0' || value[0] > '9')
			return 0;
		errno = 0;
		n = strtoull(value, &end, 10);
		if (errno != 0 || *end != 0 || n > 7u * 86400u)
			return 0;
		c->rotate_interval = (unsigned)n;
		return 1;
	}
	if (strcmp(name, "hold_timeout_ms") == 0 || strcmp(name, "clock_skew") == 0) {
		if (value[0] < '0' || value[0] > '9')
			return 0;
		errno = 0;
		n = strtoull(value, &end, 10);
		if (errno != 0 || *end != 0)
			return 0;
		if (name[0] == 'h') {
			if (n < 100 || n > 3600000)
				return 0;
			c->hold_ms = (unsigned)n;
		} else {
			if (n > 3600)
				return 0;
			c->clock_skew = (unsigned)n;
		}
		return 1;
	}
	if (strcmp(name, "provision") == 0) {
		/* Whitespace-separated patterns; the key may be given several times. */
		const char *s = value;

		while (*s) {
			size_t l;

			while (*s == ' ' || *s == '\t' || *s == ',')
				s++;
			l = strcspn(s, " \t,");
			if (l == 0)
				break;
			if (l > VHSM_NAME_MAX || c->npatterns >= VCASEB_MAX_PATTERNS)
				return 0;
			memcpy(c->patterns[c->npatterns], s, l);
			c->patterns[c->npatterns++][l] = 0;
			s += l;
		}
		return 1;
	}
	if (strcmp(name, "as_jwks") == 0) {
		if (strlen(value) >= sizeof(c->as_jwks))
			return 0;
		memcpy(c->as_jwks, value, strlen(value) + 1);
		return 1;
	}
	if (strcmp(name, "as_issuer") == 0) {
		if (strlen(value) >= sizeof(c->as_issuer))
			return 0;
		memcpy(c->as_issuer, value, strlen(value) + 1);
		return 1;
	}
	return -1;
}

static void
pend_free(struct pend *p)
{
	if (p == NULL)
		return;
	if (p->fd >= 0)
		close(p->fd);
	EVP_PKEY_free(p->tkey); /* clears the private scalar */
	free(p->tee_json);
	if (p->in != NULL) {
		OPENSSL_cleanse(p->in, p->in_len);
		free(p->in);
	}
	vhsm_wbuf_free(&p->out);
	OPENSSL_cleanse(p, sizeof(*p));
	free(p);
}

void
vcaseb_free(struct vcaseb *cb)
{
	size_t i;

	if (cb == NULL)
		return;
	for (i = 0; i < cb->n; i++)
		pend_free(cb->p[i]);
	for (i = 0; i < cb->nidle; i++)
		close(cb->idle[i].fd);
	for (i = 0; i < cb->njwks; i++) {
		cjose_jwk_release(cb->jwks[i]);
		free(cb->kids[i]);
	}
	free(cb);
}

static int
load_jwks(struct vcaseb *cb, const char *path, char *err, size_t errlen)
{
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je), *keys, *k;
	size_t i;
	int r = -1;

	if (doc == NULL || !json_is_array(keys = json_object_get(doc, "keys")) ||
	    json_array_size(keys) == 0 || json_array_size(keys) > JWKS_MAX) {
		snprintf(err, errlen, "as_jwks %s: not a JWKS with 1..%d keys", path, JWKS_MAX);
		goto out;
	}
	json_array_foreach(keys, i, k) {
		const char *kid = json_string_value(json_object_get(k, "kid"));
		char *text = json_dumps(k, JSON_COMPACT);
		cjose_err ce;

		cb->kids[i] = strdup(kid ? kid : "");
		cb->jwks[i] = text ? cjose_jwk_import(text, strlen(text), &ce) : NULL;
		free(text);
		cb->njwks = i + 1;
		if (cb->kids[i] == NULL || cb->jwks[i] == NULL ||
		    cjose_jwk_get_kty(cb->jwks[i], &ce) != CJOSE_JWK_KTY_EC) {
			snprintf(err, errlen, "as_jwks %s: keys[%zu] is not an EC public key", path, i);
			goto out;
		}
	}
	r = 0;
out:
	json_decref(doc);
	return r;
}

int
vcaseb_new(const struct vcaseb_config *c, struct vcaseb **out, char *err, size_t errlen)
{
	struct vcaseb *cb = calloc(1, sizeof(*cb));

	if (cb == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cb->cfg = *c;
	if (cb->cfg.hold_ms == 0)
		cb->cfg.hold_ms = 30000;
	cb->next_id = 1;
	cb->next_rotate = now_ms() + (int64_t)cb->cfg.rotate_interval * 1000;
	if (c->as_jwks[0] && load_jwks(cb, c->as_jwks, err, errlen) != 0) {
		vcaseb_free(cb);
		return -1;
	}
	*out = cb;
	return 0;
}

bool
vcaseb_provisionable(const struct vcaseb *cb, const char *name)
{
	size_t i;

	if (cb == NULL)
		return false;
	for (i = 0; i < cb->cfg.npatterns; i++)
		if (fnmatch(cb->cfg.patterns[i], name, 0) == 0)
			return true;
	return false;
}

static struct pend *
find(struct vcaseb *cb, const char *name)
{
	size_t i;

	for (i = 0; i < cb->n; i++)
		if (strcmp(cb->p[i]->name, name) == 0)
			return cb->p[i];
	return NULL;
}

/* Start a hand-off (refresh: a rotation check, nothing held on it). */
static int
start(struct vhsmd *d, const char *name, uint32_t kind, bool refresh, char *msg, size_t msglen)
{
	struct vcaseb *cb = d->caseb;
	struct pend *p = NULL;
	json_t *pub = NULL;
	int r = -1;

	if (find(cb, name) != NULL)
		return 0; /* joined: answered with the others */
	if (cb->n >= VCASEB_MAX_PENDING) {
		snprintf(msg, msglen, "key %s unavailable: too many hand-offs with nitrided in flight", name);
		return -1;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto nomem;
	p->fd = -1;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->kind = kind;
	p->refresh = refresh;
	vhsm_wbuf_init(&p->out, 64 * 1024);
	/* A fresh transfer key per hand-off: its private half lives in the
	 * secure heap (OpenSSL allocates EC private scalars there) and dies with
	 * this hand-off. */
	if (jwe_p256_keygen(&p->tkey) != 0 || jwe_p256_public_jwk(p->tkey, &pub) != 0 ||
	    (p->tee_json = json_dumps(pub, JSON_COMPACT)) == NULL ||
	    (p->in = malloc(IN_MAX)) == NULL)
		goto nomem;
	json_decref(pub);
	pub = NULL;
	p->id = cb->next_id++;
	vhsm_wbuf_frame(&p->out, (uint8_t)kind, p->id);
	vhsm_wbuf_tlv_str(&p->out, VHSM_T_NAME, name);
	vhsm_wbuf_tlv_str(&p->out, VHSM_T_TEE_PUBKEY, p->tee_json);
	if (vhsm_wbuf_finish(&p->out) != 0)
		goto nomem;
	p->deadline = now_ms() + cb->cfg.hold_ms;
	p->next_try = 0;
	snprintf(p->last_err, sizeof(p->last_err), "no answer");
	cb->p[cb->n++] = p;
	vhsmd_log("info", "case B: %s %s through nitrided (%s)",
		  refresh ? "checking for a new version of"
			  : kind == VHSM_OP_NITRIDED_ATTEST ? "attesting" : "provisioning",
		  name, cb->cfg.socket);
	return 0;
nomem:
	snprintf(msg, msglen, "key %s unavailable: cannot create a transfer key", name);
	json_decref(pub);
	pend_free(p);
	return r;
}

int
vcaseb_start(struct vhsmd *d, const char *name, uint32_t kind, char *msg, size_t msglen)
{
	return start(d, name, kind, false, msg, msglen);
}

/* A rotation check: re-provision every installed provisionable key that has
 * no hand-off in flight (one hand-off per name; a held request for the name
 * joins it as usual). */
static void
rotate_all(struct vhsmd *d)
{
	struct vcaseb *cb = d->caseb;
	char msg[VCASEB_MSG_MAX];
	size_t i;

	for (i = 0; i < d->nkeys; i++) {
		const struct vkey *k = d->keys[i];

		if (k->origin != VHSM_ORIGIN_PROVISIONED || !vcaseb_provisionable(cb, k->name) ||
		    find(cb, k->name) != NULL)
			continue;
		if (start(d, k->name, VHSM_OP_NITRIDED_PROVISION, true, msg, sizeof(msg)) != 0) {
			vhsmd_log("warning", "case B: rotation check of %s not started: %s", k->name, msg);
			break; /* the hand-off table is full: the rest wait for the next check */
		}
	}
}

size_t
vcaseb_pollfds(const struct vcaseb *cb, struct pollfd *pfd, size_t max)
{
	size_t i, k = 0;

	if (cb == NULL)
		return 0;
	for (i = 0; i < cb->n && k < max; i++) {
		const struct pend *p = cb->p[i];

		if (p->fd < 0 || p->done)
			continue;
		pfd[k].fd = p->fd;
		pfd[k].events = (short)(POLLIN | (p->out_off < p->out.len ? POLLOUT : 0));
		pfd[k++].revents = 0;
	}
	return k;
}

int
vcaseb_timeout(const struct vcaseb *cb)
{
	int64_t now = now_ms(), best = -1;
	size_t i;

	if (cb == NULL)
		return -1;
	for (i = 0; i < cb->n; i++) {
		const struct pend *p = cb->p[i];
		int64_t t = p->done ? now : (p->fd < 0 && p->next_try < p->deadline ? p->next_try : p->deadline);

		if (best < 0 || t < best)
			best = t;
	}
	if (cb->cfg.rotate_interval != 0 && (best < 0 || cb->next_rotate < best))
		best = cb->next_rotate;
	if (best < 0)
		return -1;
	return best <= now ? 0 : (int)(best - now > 60000 ? 60000 : best - now);
}

static void __attribute__((format(printf, 3, 4)))
finish(struct pend *p, int status, const char *fmt, ...)
{
	va_list ap;

	if (p->done)
		return;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
	p->status = status;
	p->done = true;
	if (p->refresh) {
		/* A failed rotation check changes nothing: the key stays as it is. */
		vhsmd_log(status != 0 ? "warning" : "info", "case B: rotation check: %s", p->msg);
		status = 0;
	}
	/* The connection is kept or closed by vcaseb_step (release_conn). */
	/* The transfer key is not needed any more, whatever happened. */
	EVP_PKEY_free(p->tkey);
	p->tkey = NULL;
	if (status != 0)
		vhsmd_log("warning", "case B: %s", p->msg);
}

/* Connect to nitrided and check who answers: p->fd and p->who (or p
 * finished if the peer cannot be identified), or -1: try again later, the
 * reason in last_err. */
static int
connect_nitrided(struct vhsmd *d, struct pend *p)
{
	struct sockaddr_un sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, d->caseb->cfg.socket, strlen(d->caseb->cfg.socket) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(p->last_err, sizeof(p->last_err), "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(p->last_err, sizeof(p->last_err), "cannot connect to nitrided at %s: %s",
			 d->caseb->cfg.socket, strerror(errno));
		close(fd);
		return -1;
	}
	memset(&p->who, 0, sizeof(p->who));
	if (vhsmd_peer_identify(fd, vhsm_policy_needs_exe_hash(d->policy), &p->who) != 0) {
		close(fd);
		finish(p, VHSM_E_UNAVAILABLE,
		       "key %s unavailable: the process at %s cannot be identified, so it is not "
		       "allowed to inject it", p->name, d->caseb->cfg.socket);
		return 0;
	}
	vhsmd_log("info", "case B: connected to nitrided at %s (pid %d, uid %u)", d->caseb->cfg.socket,
		  (int)p->who.pid, (unsigned)p->who.uid);
	p->fd = fd;
	p->reused = false;
	return 0;
}

/* An idle kept connection that is still usable, or -1.  One with anything
 * to read (nitrided closed it, or sent what nobody asked for) is closed, and
 * so is one whose principal lacks the exe hash a reloaded policy now needs. */
static int
take_kept(struct vhsmd *d, struct pend *p)
{
	struct vcaseb *cb = d->caseb;

	while (cb->nidle > 0) {
		struct kept_conn k = cb->idle[--cb->nidle];
		struct pollfd pf = { .fd = k.fd, .events = POLLIN };

		if (poll(&pf, 1, 0) != 0 ||
		    (vhsm_policy_needs_exe_hash(d->policy) && !k.who.have_exe_sha256)) {
			close(k.fd);
			continue;
		}
		p->fd = k.fd;
		p->who = k.who;
		p->reused = true;
		return 0;
	}
	return -1;
}

/* A connection for this hand-off (kept, else new), and nitrided's right to
 * inject this name.  -1: try again later (last_err). */
static int
get_conn(struct vhsmd *d, struct pend *p)
{
	if (take_kept(d, p) != 0) {
		if (connect_nitrided(d, p) != 0)
			return -1;
		if (p->done)
			return 0;
	}
	p->conn_clean = true;
	/* nitrided is a principal like any other: the policy must grant it
	 * "inject" on this name, or we do not talk to it.  Checked on every
	 * hand-off, against the policy in force now. */
	if (!vhsm_policy_allows(d->policy, &p->who, VHSM_OP_INJECT, p->name))
		finish(p, VHSM_E_UNAVAILABLE,
		       "key %s unavailable: the process at %s (uid %u) is not allowed to inject it",
		       p->name, d->caseb->cfg.socket, (unsigned)p->who.uid);
	return 0;
}

/* A finished hand-off gives its connection back: kept if nothing of ours is
 * pending on it and there is room, else closed. */
static void
release_conn(struct vcaseb *cb, struct pend *p)
{
	if (p->fd < 0)
		return;
	if (p->conn_clean && cb->nidle < KEEP_MAX) {
		cb->idle[cb->nidle].fd = p->fd;
		cb->idle[cb->nidle++].who = p->who;
	} else {
		close(p->fd);
	}
	p->fd = -1;
}

/* A kept connection failed before any answer: nitrided went away while it
 * was idle (restarted).  The request is sent again on a new connection, once. */
static bool
retry_fresh(struct pend *p)
{
	if (!p->reused || p->in_len != 0)
		return false;
	close(p->fd);
	p->fd = -1;
	p->reused = false;
	p->out_off = 0;
	p->next_try = 0;
	return true;
}

static bool
installed(const struct vhsmd *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nkeys; i++)
		if (strcmp(d->keys[i]->name, name) == 0)
			return true;
	return false;
}

/* Decrypt the inject JWE with the transfer key and install what it carries.
 * src/common/jwe.c, not cjose: half the cost per hand-off (docs/jwe.md). */
static void
on_jwe(struct vhsmd *d, struct pend *p, const uint8_t *jwe, size_t len)
{
	uint8_t *pt = NULL;
	size_t ptl = 0;
	char msg[VCASEB_MSG_MAX];
	int r;

	if ((r = jwe_decrypt_ecdhes(p->tkey, (const char *)jwe, len, &pt, &ptl)) != 0) {
		if (r == -EBADMSG)
			finish(p, VHSM_E_UNAVAILABLE,
			       "key %s unavailable: the injected JWE does not decrypt with the transfer "
			       "key (tampered, or encrypted to another key)", p->name);
		else if (r == -ENOTSUP)
			finish(p, VHSM_E_UNAVAILABLE,
			       "key %s unavailable: the injected JWE is not ECDH-ES/A256GCM on P-256 "
			       "(or uses zip or crit)", p->name);
		else
			finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: the injected JWE is malformed (%s)",
			       p->name, jwe_strerror(r));
		goto out;
	}
	if (p->refresh && !installed(d, p->name)) {
		finish(p, 0, "key %s was deleted during the check; not re-installed", p->name);
		goto out;
	}
	if (vhsmd_inject(d, p->name, pt, ptl, msg, sizeof(msg)) != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: %s", p->name, msg);
		goto out;
	}
	if (!p->refresh)
		vhsmd_log("audit", "inject key=%s (case B, through nitrided)", p->name);
	finish(p, 0, "%s", msg);
out:
	if (pt != NULL)
		OPENSSL_secure_clear_free(pt, ptl);
}

static bool
same_str(json_t *a, json_t *b, const char *k)
{
	const char *x = json_string_value(json_object_get(a, k)), *y = json_string_value(json_object_get(b, k));

	return x != NULL && y != NULL && strcmp(x, y) == 0;
}

/* Check an EAR token for a gated key and mark it attested. */
static void
on_token(struct vhsmd *d, struct pend *p, const uint8_t *tok, size_t len)
{
	struct vcaseb *cb = d->caseb;
	cjose_err ce;
	cjose_jws_t *jws = NULL;
	cjose_header_t *h;
	cjose_jwk_t *key = NULL;
	const char *alg, *kid, *st, *iss;
	uint8_t *pl = NULL;
	size_t pll = 0, i;
	json_t *claims = NULL, *cnf, *mine = NULL, *sub;
	int64_t now = (int64_t)time(NULL), exp, nbf;

	if (cb->njwks == 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: no as_jwks configured to check tokens", p->name);
		goto out;
	}
	if ((jws = cjose_jws_import((const char *)tok, len, &ce)) == NULL ||
	    (h = cjose_jws_get_protected(jws)) == NULL ||
	    (alg = cjose_header_get(h, CJOSE_HDR_ALG, &ce)) == NULL || strcmp(alg, "ES256") != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: the token is not an ES256 JWS", p->name);
		goto out;
	}
	kid = cjose_header_get(h, CJOSE_HDR_KID, &ce);
	for (i = 0; i < cb->njwks && key == NULL; i++)
		if ((kid == NULL && cb->njwks == 1) || (kid != NULL && strcmp(kid, cb->kids[i]) == 0))
			key = cb->jwks[i];
	if (key == NULL || !cjose_jws_verify(jws, key, &ce)) {
		finish(p, VHSM_E_UNAVAILABLE,
		       "key %s unavailable: token signature invalid (not from the Attestation Service)", p->name);
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &pl, &pll, &ce) ||
	    (claims = json_loadb((const char *)pl, pll, 0, NULL)) == NULL) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: token claims unreadable", p->name);
		goto out;
	}
	iss = json_string_value(json_object_get(claims, "iss"));
	if (cb->cfg.as_issuer[0] && (iss == NULL || strcmp(iss, cb->cfg.as_issuer) != 0)) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: token issuer not trusted", p->name);
		goto out;
	}
	exp = json_is_integer(json_object_get(claims, "exp")) ? json_integer_value(json_object_get(claims, "exp")) : 0;
	nbf = json_is_integer(json_object_get(claims, "nbf")) ? json_integer_value(json_object_get(claims, "nbf")) : 0;
	/* Compare against now - skew: exp is the signer's, exp + skew may overflow. */
	if (exp == 0 || exp <= now - (int64_t)cb->cfg.clock_skew) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: attestation token expired", p->name);
		goto out;
	}
	if (nbf > now + (int64_t)cb->cfg.clock_skew) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: attestation token not yet valid", p->name);
		goto out;
	}
	cnf = json_object_get(json_object_get(claims, "cnf"), "jwk");
	mine = json_loads(p->tee_json, 0, NULL);
	if (cnf == NULL || mine == NULL || !same_str(cnf, mine, "kty") || !same_str(cnf, mine, "crv") ||
	    !same_str(cnf, mine, "x") || !same_str(cnf, mine, "y")) {
		finish(p, VHSM_E_UNAVAILABLE,
		       "key %s unavailable: the token's cnf.jwk is not this hand-off's transfer key", p->name);
		goto out;
	}
	sub = json_object_get(json_object_get(json_object_get(claims, "submods"), "cpu0"), "ear.status");
	st = json_string_value(sub);
	if (st == NULL || strcmp(st, "affirming") != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: attestation status is %s, not affirming",
		       p->name, st ? st : "absent");
		goto out;
	}
	if (vhsmd_mark_attested(d, p->name, exp) != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: the key is gone", p->name);
		goto out;
	}
	vhsmd_log("audit", "attested key=%s until=%lld (case B, EAR token)", p->name, (long long)exp);
	finish(p, 0, "key %s attested", p->name);
out:
	json_decref(mine);
	json_decref(claims);
	cjose_jws_release(jws);
}

/* A whole answer from nitrided. */
static void
on_answer(struct vhsmd *d, struct pend *p, const struct vhsm_frame *f)
{
	const uint8_t *v;
	size_t vl;
	uint32_t st;

	if (f->type != (VHSM_RESPONSE | p->kind) || f->id != p->id ||
	    vhsm_tlv_u32(f->body, f->body_len, VHSM_T_STATUS, &st) != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided sent an unexpected message", p->name);
		return;
	}
	if (st != 0) {
		char m[VCASEB_MSG_MAX - 64];

		if (vhsm_tlv_find(f->body, f->body_len, VHSM_T_MESSAGE, &v, &vl) != 0)
			vl = 0;
		if (vl >= sizeof(m))
			vl = sizeof(m) - 1;
		for (size_t i = 0; i < vl; i++)
			m[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? (char)v[i] : '?';
		m[vl] = 0;
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: %s", p->name, vl ? m : "nitrided refused");
		return;
	}
	if (vhsm_tlv_find(f->body, f->body_len, VHSM_T_NAME, &v, &vl) != 0 || vl != strlen(p->name) ||
	    memcmp(v, p->name, vl) != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided answered for another name", p->name);
		return;
	}
	if (p->kind == VHSM_OP_NITRIDED_PROVISION &&
	    vhsm_tlv_find(f->body, f->body_len, VHSM_T_JWE, &v, &vl) == 0)
		on_jwe(d, p, v, vl);
	else if (p->kind == VHSM_OP_NITRIDED_ATTEST &&
		 vhsm_tlv_find(f->body, f->body_len, VHSM_T_TOKEN, &v, &vl) == 0)
		on_token(d, p, v, vl);
	else
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided's answer carries no %s",
		       p->name, p->kind == VHSM_OP_NITRIDED_PROVISION ? "JWE" : "token");
}

static void
pend_io(struct vhsmd *d, struct pend *p, short re)
{
	struct vhsm_frame f;
	size_t used;
	ssize_t n;
	int r;

	if (p->out_off < p->out.len && (re & (POLLOUT | POLLERR | POLLHUP))) {
		n = send(p->fd, p->out.p + p->out_off, p->out.len - p->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			if (!retry_fresh(p))
				finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided closed the connection",
				       p->name);
			return;
		}
		if (n > 0) {
			p->out_off += (size_t)n;
			p->conn_clean = false;
		}
	}
	if (!(re & (POLLIN | POLLHUP | POLLERR)))
		return;
	if (p->in_len == IN_MAX) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided's answer is too large", p->name);
		return;
	}
	n = recv(p->fd, p->in + p->in_len, IN_MAX - p->in_len, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		if (!retry_fresh(p))
			finish(p, VHSM_E_UNAVAILABLE,
			       "key %s unavailable: nitrided closed the connection without an answer", p->name);
		return;
	}
	if (n < 0)
		return;
	p->in_len += (size_t)n;
	r = vhsm_frame_decode(p->in, p->in_len, true, &f, &used);
	if (r == VHSM_DEC_NEED_MORE)
		return;
	if (r != 0) {
		finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided sent a malformed frame", p->name);
		return;
	}
	/* The whole answer to our request and nothing more: the connection
	 * carries nothing of ours any more and may be kept. */
	p->conn_clean = used == p->in_len && p->out_off == p->out.len && f.id == p->id &&
			f.type == (VHSM_RESPONSE | p->kind);
	on_answer(d, p, &f);
}

void
vcaseb_step(struct vhsmd *d, const struct pollfd *pfd, size_t n)
{
	struct vcaseb *cb = d->caseb;
	int64_t now = now_ms();
	size_t i, k;

	if (cb == NULL)
		return;
	if (cb->cfg.rotate_interval != 0 && now >= cb->next_rotate) {
		cb->next_rotate = now + (int64_t)cb->cfg.rotate_interval * 1000;
		rotate_all(d);
	}
	for (i = 0; i < cb->n; i++) {
		struct pend *p = cb->p[i];

		if (p->done)
			continue;
		if (p->fd >= 0) {
			for (k = 0; k < n; k++)
				if (pfd[k].fd == p->fd && pfd[k].revents)
					pend_io(d, p, pfd[k].revents);
		}
		/* No connection yet, or a kept one found closed (retry_fresh). */
		if (!p->done && p->fd < 0 && now >= p->next_try) {
			if (get_conn(d, p) != 0)
				p->next_try = now + RETRY_MS;
			else if (!p->done)
				pend_io(d, p, POLLOUT);
		}
		if (!p->done && now >= p->deadline)
			finish(p, VHSM_E_UNAVAILABLE, "key %s unavailable: nitrided did not answer within %u ms (%s)",
			       p->name, cb->cfg.hold_ms, p->fd >= 0 ? "no answer" : p->last_err);
		if (p->done)
			release_conn(cb, p);
	}
}

bool
vcaseb_take_done(struct vcaseb *cb, char name[129], int *status, char *msg, size_t msglen)
{
	size_t i;

	if (cb == NULL)
		return false;
	for (i = 0; i < cb->n; i++) {
		struct pend *p = cb->p[i];

		if (!p->done)
			continue;
		snprintf(name, 129, "%s", p->name);
		*status = p->status;
		snprintf(msg, msglen, "%s", p->msg);
		cb->p[i] = cb->p[--cb->n];
		pend_free(p);
		return true;
	}
	return false;
}
