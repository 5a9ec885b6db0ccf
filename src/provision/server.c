/*
 * provd HTTP API (contract in server.h; wire formats in docs/provd.md).
 */
#include "provision/server.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/fileio.h"
#include "common/httpreply.h"
#include "common/listen.h"
#include "common/tlsserver.h"
#include "common/timefmt.h"
#include "provision/policy.h"
#include "provision/secret.h"
#include "provision/util.h"

#define HTTP_TIMEOUT_S 30
#define MAX_HEADERS 32768
#define PROBLEM_BASE "https://nitride.dev/problems/"
#define AUDIT_READ_MAX (64u * 1024u * 1024u)

struct worker {
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
	bool started;
};

struct provd_server {
	provd_services svc;
	pthread_rwlock_t keys_lock; /* guards svc.jwks and svc.admins */
	SSL_CTX *ssl;
	int fd;
	size_t n_workers;
	struct worker *workers;
	unsigned long m_requests, m_released, m_denied, m_bad_token, m_not_found, m_admin,
		m_admin_refused, m_bad_request, m_errors;
};

#define INC(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* ------------------------------------------------------------ replies */

static void
send_text(struct evhttp_request *req, int code, const char *reason, const char *text,
	  size_t len, const char *ctype)
{
	struct evbuffer *b = evbuffer_new();

	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (b != NULL && text != NULL)
		(void)evbuffer_add(b, text, len);
	http_send_reply(req, code, reason, b);
	if (b != NULL)
		evbuffer_free(b);
}

static void
send_json(struct evhttp_request *req, int code, const char *reason, json_t *body,
	  const char *ctype)
{
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	send_text(req, code, reason, text, text ? strlen(text) : 0, ctype);
	free(text);
	json_decref(body);
}

static const char *
reason_of(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	default: return "Error";
	}
}

/* RFC 7807 problem; extra (stolen) adds members. */
static void
problem(struct evhttp_request *req, int code, const char *slug, const char *title,
	const char *detail, json_t *extra)
{
	char type[128];
	json_t *p;

	(void)snprintf(type, sizeof(type), PROBLEM_BASE "%s", slug);
	p = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", code,
		      "detail", detail ? detail : title);
	if (p != NULL && extra != NULL)
		(void)json_object_update(p, extra);
	json_decref(extra);
	if (code == 401)
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
					"Bearer");
	send_json(req, code, reason_of(code), p, "application/problem+json");
}

static const char *
client_addr(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (c == NULL)
		return "?";
	evhttp_connection_get_peer(c, &addr, &port);
	return addr ? addr : "?";
}

/* The body as a JSON value of at most max_body bytes (NULL with a 4xx sent). */
static json_t *
read_json(provd_server *s, struct evhttp_request *req, bool object)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const unsigned char *p;
	json_error_t je;
	json_t *j;
	char d[256];

	if (len > s->svc.cfg->max_body) {
		INC(s->m_bad_request);
		problem(req, 413, "body-too-large", "Body too large", "the body exceeds max_body",
			NULL);
		return NULL;
	}
	if (len == 0 || (p = evbuffer_pullup(in, (ssize_t)len)) == NULL) {
		INC(s->m_bad_request);
		problem(req, 400, "malformed", "Malformed request", "empty body: expected JSON", NULL);
		return NULL;
	}
	j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL || (object && !json_is_object(j))) {
		(void)snprintf(d, sizeof(d), "body is not a JSON object%s%s", j == NULL ? ": " : "",
			       j == NULL ? je.text : "");
		json_decref(j);
		INC(s->m_bad_request);
		problem(req, 400, "malformed", "Malformed request", d, NULL);
		return NULL;
	}
	return j;
}

/* Secret names: 1..128 of [A-Za-z0-9._-], not starting with '.'. */
static bool
name_ok(const char *n, size_t len)
{
	size_t i;

	if (len == 0 || len > STORE_NAME_MAX || n[0] == '.')
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)n[i]) && n[i] != '.' && n[i] != '_' && n[i] != '-')
			return false;
	return true;
}

static int
parse_version(const char *v, unsigned *out)
{
	char *end = NULL;
	unsigned long x;

	if (v == NULL || *v < '1' || *v > '9')
		return -1;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || x > 0xffffffffUL)
		return -1;
	*out = (unsigned)x;
	return 0;
}

/* "Bearer <token>": *tok and *len point into the header. */
static bool
bearer(struct evhttp_request *req, const char **tok, size_t *len)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	h += strspn(h, " ");
	*tok = h;
	*len = strlen(h);
	while (*len > 0 && (h[*len - 1] == ' ' || h[*len - 1] == '\t'))
		(*len)--;
	return *len > 0;
}

/* ------------------------------------------------------------ audit */

/* Append rec (stolen) with its time; returns 0 or -1 (logged).  With a
 * ticket the record is only written: the caller must audit_wait(*ticket)
 * before anything that depends on it leaves; without, it is durable on 0. */
static int
audit_event(provd_server *s, json_t *rec, uint64_t *ticket)
{
	char t[RFC3339_LEN];
	int r = -1;

	rfc3339_format(time(NULL), t);
	if (rec != NULL && json_object_set_new(rec, "time", json_string(t)) == 0)
		r = ticket != NULL ? audit_write(s->svc.audit, rec, ticket)
				   : audit_append(s->svc.audit, rec);
	if (r != 0)
		prov_log("error", "audit log %s: append failed", audit_path(s->svc.audit));
	json_decref(rec);
	return r;
}

struct decision {
	const char *secret;
	unsigned version; /* 0: not known */
	const char *decision; /* "allow" | "deny" */
	int status;
	const char *reason;
	json_t *failed;   /* array of {condition,…} or NULL (borrowed) */
	const prov_token *tok;
	const char *policy_digest;
	const char *client;
};

static int
audit_release_ticket(provd_server *s, const struct decision *d, uint64_t *ticket)
{
	json_t *names = json_array(), *rec, *e;
	char tp[44] = "";
	size_t i;

	json_array_foreach(d->failed, i, e)
		(void)json_array_append(names, json_object_get(e, "condition"));
	if (d->tok != NULL && prov_jwk_thumbprint(d->tok->cnf_jwk, tp) != 0)
		tp[0] = '\0';
	rec = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i, s:s, s:o, s:s, s:s, s:s, s:s, s:s}",
			"event", "release", "client", d->client, "secret", d->secret, "version",
			d->version ? json_integer(d->version) : json_null(), "decision", d->decision,
			"status", d->status, "reason", d->reason ? d->reason : "", "failed", names,
			"jti", d->tok ? d->tok->jti : "", "evidence_digest",
			d->tok ? d->tok->evidence_digest : "", "token_policy_id",
			d->tok ? d->tok->policy_id : "", "release_policy_digest",
			d->policy_digest ? d->policy_digest : "", "transfer_key_thumbprint", tp);
	return audit_event(s, rec, ticket);
}

/* A decision, durable when this returns 0. */
static int
audit_release(provd_server *s, const struct decision *d)
{
	return audit_release_ticket(s, d, NULL);
}

/* ------------------------------------------------------------ release */

static void
h_release(provd_server *s, struct evhttp_request *req, const char *name, const char *query)
{
	struct evkeyvalq q;
	const char *vq = NULL, *tok;
	size_t toklen;
	unsigned version = 0;
	prov_token *t = NULL;
	char why[TOKEN_WHY_MAX], detail[512], pd[PROV_SHA256_HEX] = "";
	char *pol_text = NULL, *payload = NULL, *jwe = NULL;
	size_t plen = 0;
	json_t *pol = NULL, *failed = NULL, *first;
	store_item *it = NULL;
	struct decision d = { .secret = name, .decision = "deny", .client = client_addr(req) };
	uint64_t ticket = 0;
	int r;

	TAILQ_INIT(&q);
	if (query != NULL) {
		if (evhttp_parse_query_str(query, &q) != 0 ||
		    ((vq = evhttp_find_header(&q, "version")) != NULL &&
		     parse_version(vq, &version) != 0)) {
			INC(s->m_bad_request);
			problem(req, 400, "malformed", "Malformed request",
				"query: only version=N (N >= 1) is understood", NULL);
			goto out;
		}
	}
	d.version = version;
	if (!bearer(req, &tok, &toklen)) {
		INC(s->m_bad_token);
		d.status = 401;
		d.reason = "no bearer token";
		(void)audit_release(s, &d);
		problem(req, 401, "token-required", "Attestation token required",
			"Authorization: Bearer <token from the Attestation Service> required", NULL);
		goto out;
	}
	(void)pthread_rwlock_rdlock(&s->keys_lock);
	r = prov_token_verify(s->svc.jwks, s->svc.cfg->issuer, s->svc.cfg->clock_skew, time(NULL),
			      tok, toklen, &t, why, sizeof(why));
	(void)pthread_rwlock_unlock(&s->keys_lock);
	if (r != 0) {
		INC(s->m_bad_token);
		d.status = 401;
		d.reason = why;
		(void)audit_release(s, &d);
		prov_log("info", "release %s: client %s: token rejected: %s", name, d.client, why);
		(void)snprintf(detail, sizeof(detail), "token rejected: %s", why);
		problem(req, 401, "invalid-token", "Invalid attestation token", detail,
			json_pack("{s:s}", "reason", why));
		goto out;
	}
	d.tok = t;
	r = store_get_policy(s->svc.st, name, &pol_text);
	if (r == STORE_NOT_FOUND) {
		INC(s->m_not_found);
		d.status = 404;
		d.reason = "no such secret";
		(void)audit_release(s, &d);
		problem(req, 404, "secret-unavailable", "Secret unavailable", "no such secret", NULL);
		goto out;
	}
	if (r != STORE_OK) {
		INC(s->m_errors);
		problem(req, 500, "store-error", "Store error", store_strerror(r), NULL);
		goto out;
	}
	if (pol_text != NULL) {
		prov_sha256_hex(pol_text, strlen(pol_text), pd);
		d.policy_digest = pd;
		pol = json_loads(pol_text, 0, NULL);
	}
	if (!release_policy_eval(pol, t->claims, &failed)) {
		INC(s->m_denied);
		first = json_array_get(failed, 0);
		(void)snprintf(detail, sizeof(detail), "condition %s failed: expected %s, got %s",
			       json_string_value(json_object_get(first, "condition")),
			       json_string_value(json_object_get(first, "expected")),
			       json_string_value(json_object_get(first, "actual")));
		d.status = 403;
		d.reason = detail;
		d.failed = failed;
		(void)audit_release(s, &d);
		prov_log("info", "release %s: client %s jti %s: denied: %s", name, d.client, t->jti,
			 detail);
		problem(req, 403, "release-denied", "Release denied", detail,
			json_pack("{s:O, s:O}", "condition", json_object_get(first, "condition"),
				  "failed", failed));
		goto out;
	}
	r = store_get(s->svc.st, name, version, &it);
	if (r == STORE_NOT_FOUND || r == STORE_RETIRED) {
		INC(s->m_not_found);
		(void)snprintf(detail, sizeof(detail), "%s",
			       r == STORE_RETIRED ? "version retired"
			       : version	  ? "no such version"
						  : "no version available (all retired)");
		d.status = 404;
		d.reason = detail;
		(void)audit_release(s, &d);
		problem(req, 404, "secret-unavailable", "Secret unavailable", detail, NULL);
		goto out;
	}
	if (r != STORE_OK) {
		INC(s->m_errors);
		prov_log("error", "release %s: %s", name, store_strerror(r));
		problem(req, 500, "release-error", "Release failed", store_strerror(r), NULL);
		goto out;
	}
	d.version = it->version;
	d.decision = "allow";
	d.status = 200;
	/* No release that is not on the record: the record is written first and
	 * the JWE built while it is flushed; the JWE leaves only once the record
	 * is durable (audit_wait). */
	if (audit_release_ticket(s, &d, &ticket) != 0) {
		INC(s->m_errors);
		problem(req, 500, "audit-error", "Audit log unavailable",
			"the decision could not be recorded; nothing is released", NULL);
		goto out;
	}
	if (secret_payload(it, &payload, &plen) != 0 ||
	    secret_jwe(t->cnf_key, (const uint8_t *)payload, plen, &jwe) != 0) {
		INC(s->m_errors);
		prov_log("error", "release %s: cannot build the JWE", name);
		/* The allow above is followed by what happened instead. */
		d.decision = "error";
		d.status = 500;
		d.reason = "cannot build the JWE; nothing released";
		(void)audit_release(s, &d);
		problem(req, 500, "release-error", "Release failed", "cannot build the JWE", NULL);
		goto out;
	}
	if (audit_wait(s->svc.audit, ticket) != 0) {
		INC(s->m_errors);
		prov_log("error", "audit log %s: the release record of %s is not durable",
			 audit_path(s->svc.audit), name);
		problem(req, 500, "audit-error", "Audit log unavailable",
			"the decision could not be recorded; nothing is released", NULL);
		goto out;
	}
	INC(s->m_released);
	prov_log("info", "release %s v%u: client %s jti %s: allowed", name, it->version, d.client,
		 t->jti);
	send_text(req, 200, "OK", jwe, strlen(jwe), "application/jose");
out:
	if (payload != NULL)
		OPENSSL_secure_clear_free(payload, plen + 1);
	free(jwe);
	store_item_free(it);
	json_decref(failed);
	json_decref(pol);
	free(pol_text);
	prov_token_free(t);
	evhttp_clear_headers(&q);
}

/* ------------------------------------------------------------ admin */

/* The role of a verified client certificate: its subject's OU, "admin" or
 * "auditor"; *label gets its CN (per-thread buffer).  ROLE_NONE without one. */
static provd_role
cert_role(struct evhttp_request *req, const char **label)
{
	static __thread char cn[128];
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	X509_NAME *n;
	char ou[32];
	provd_role role = ROLE_NONE;

	if (x == NULL || SSL_get_verify_result(ssl) != X509_V_OK ||
	    (n = X509_get_subject_name(x)) == NULL ||
	    X509_NAME_get_text_by_NID(n, NID_organizationalUnitName, ou, sizeof(ou)) <= 0)
		return ROLE_NONE;
	if (strcmp(ou, "admin") == 0)
		role = ROLE_ADMIN;
	else if (strcmp(ou, "auditor") == 0)
		role = ROLE_AUDITOR;
	if (X509_NAME_get_text_by_NID(n, NID_commonName, cn, sizeof(cn)) <= 0)
		(void)snprintf(cn, sizeof(cn), "(no CN)");
	*label = cn;
	return role;
}

/* The caller's role, or ROLE_NONE with 401/403 sent.  `need` is the least role. */
static provd_role
admin_auth(provd_server *s, struct evhttp_request *req, provd_role need, const char **who)
{
	const char *tok, *label = "";
	size_t len;
	provd_role role;

	INC(s->m_admin);
	if (!bearer(req, &tok, &len) && s->svc.cfg->admin_client_ca[0] != '\0' &&
	    (role = cert_role(req, &label)) != ROLE_NONE) {
		if (role < need) {
			INC(s->m_admin_refused);
			prov_log("info", "admin: client %s (certificate %s): role auditor may only read",
				 client_addr(req), label);
			problem(req, 403, "forbidden", "Forbidden",
				"this certificate's role (auditor) may only read; the admin role is "
				"required",
				NULL);
			return ROLE_NONE;
		}
		*who = label;
		return role;
	}
	if (!bearer(req, &tok, &len)) {
		INC(s->m_admin_refused);
		problem(req, 401, "unauthorized", "Unauthorized",
			"Authorization: Bearer <admin token> required", NULL);
		return ROLE_NONE;
	}
	(void)pthread_rwlock_rdlock(&s->keys_lock);
	role = provd_admins_role(s->svc.admins, tok, len, &label);
	(void)pthread_rwlock_unlock(&s->keys_lock);
	if (role == ROLE_NONE) {
		INC(s->m_admin_refused);
		prov_log("info", "admin: client %s: unknown token", client_addr(req));
		problem(req, 401, "unauthorized", "Unauthorized", "unknown admin token", NULL);
		return ROLE_NONE;
	}
	if (role < need) {
		INC(s->m_admin_refused);
		prov_log("info", "admin: client %s (%s): role auditor may only read", client_addr(req),
			 label);
		problem(req, 403, "forbidden", "Forbidden",
			"this token's role (auditor) may only read; the admin role is required", NULL);
		return ROLE_NONE;
	}
	*who = label;
	return role;
}

static void
audit_admin(provd_server *s, struct evhttp_request *req, const char *who, const char *action,
	    const char *name, unsigned version, const char *detail)
{
	(void)audit_event(s, json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "event", "admin", "client",
				 client_addr(req), "admin", who, "action", action, "secret", name,
				 "version", version ? json_integer(version) : json_null(), "detail",
				 detail ? detail : ""), NULL);
}

static void
store_fail(provd_server *s, struct evhttp_request *req, int r)
{
	if (r == STORE_NOT_FOUND)
		problem(req, 404, "not-found", "Not found", store_strerror(r), NULL);
	else if (r == STORE_CONFLICT)
		problem(req, 409, "conflict", "Conflict",
			"the secret exists with another type (delete it first)", NULL);
	else {
		INC(s->m_errors);
		problem(req, 500, "store-error", "Store error", store_strerror(r), NULL);
	}
}

/* Wipe the request body in libevent's buffer (it carried secret material). */
static void
wipe_body(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	unsigned char *p = len ? evbuffer_pullup(in, (ssize_t)len) : NULL;

	if (p != NULL)
		OPENSSL_cleanse(p, len);
}

/* POST /v1/admin/secrets/NAME {type, value? | generate?, attributes?} */
static void
h_put(provd_server *s, struct evhttp_request *req, const char *name, const char *who)
{
	json_t *body = NULL, *attrs = NULL, *val;
	const char *type;
	uint8_t *in = NULL, *mat = NULL;
	size_t inlen = 0, matlen = 0;
	char why[SECRET_WHY_MAX], *attrs_text = NULL;
	unsigned version = 0;
	int r;

	if ((body = read_json(s, req, true)) == NULL)
		return;
	type = json_string_value(json_object_get(body, "type"));
	val = json_object_get(body, "value");
	if (type == NULL || !secret_type_known(type)) {
		problem(req, 400, "malformed", "Malformed request",
			"\"type\": one of aes256, p256, p384, rsa2048, rsa3072, rsa4096, opaque", NULL);
		goto out;
	}
	if ((val != NULL) == json_is_true(json_object_get(body, "generate"))) {
		problem(req, 400, "malformed", "Malformed request",
			"give either \"value\" (base64) or \"generate\": true", NULL);
		goto out;
	}
	if (val != NULL && (!json_is_string(val) ||
			    prov_b64_decode(json_string_value(val), json_string_length(val),
					    STORE_MATERIAL_MAX, &in, &inlen) != 0)) {
		problem(req, 400, "malformed", "Malformed request",
			"\"value\": standard base64 of at most 16384 bytes", NULL);
		goto out;
	}
	if (secret_material(type, in, inlen, &mat, &matlen, why, sizeof(why)) != 0 ||
	    secret_attrs(type, json_object_get(body, "attributes"), &attrs, why, sizeof(why)) != 0) {
		problem(req, 400, "malformed", "Malformed request", why, NULL);
		goto out;
	}
	if ((attrs_text = json_dumps(attrs, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	r = store_put(s->svc.st, name, type, attrs_text, mat, matlen, &version);
	if (r != STORE_OK) {
		store_fail(s, req, r);
		goto out;
	}
	audit_admin(s, req, who, "put", name, version, type);
	prov_log("info", "admin %s: %s version %u (%s) stored", who, name, version, type);
	send_json(req, 201, "Created",
		  json_pack("{s:s, s:I, s:s, s:O}", "name", name, "version", (json_int_t)version,
			    "type", type, "attributes", attrs),
		  "application/json");
out:
	wipe_body(req);
	if (in != NULL) {
		OPENSSL_cleanse(in, inlen);
		free(in);
	}
	if (mat != NULL)
		OPENSSL_secure_clear_free(mat, matlen);
	free(attrs_text);
	json_decref(attrs);
	json_decref(body);
}

static void
h_policy_set(provd_server *s, struct evhttp_request *req, const char *name, const char *who)
{
	json_t *pol = read_json(s, req, true);
	char err[300], *text = NULL, pd[PROV_SHA256_HEX];
	int r;

	if (pol == NULL)
		return;
	if (release_policy_check(pol, err, sizeof(err)) != 0) {
		problem(req, 400, "invalid-policy", "Invalid release policy", err,
			json_pack("{s:s}", "reason", err));
		goto out;
	}
	if ((text = json_dumps(pol, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	if ((r = store_set_policy(s->svc.st, name, text)) != STORE_OK) {
		store_fail(s, req, r);
		goto out;
	}
	prov_sha256_hex(text, strlen(text), pd);
	audit_admin(s, req, who, "policy-set", name, 0, pd);
	prov_log("info", "admin %s: policy of %s set (%s)", who, name, pd);
	send_json(req, 200, "OK", json_pack("{s:s, s:s}", "name", name, "digest", pd),
		  "application/json");
out:
	free(text);
	json_decref(pol);
}

static void
h_policy_get(provd_server *s, struct evhttp_request *req, const char *name)
{
	char *text = NULL, pd[PROV_SHA256_HEX];
	json_t *pol;
	int r = store_get_policy(s->svc.st, name, &text);

	if (r != STORE_OK) {
		store_fail(s, req, r);
		return;
	}
	if (text == NULL) {
		problem(req, 404, "no-policy", "No release policy",
			"no release policy is set: nothing is released", NULL);
		return;
	}
	prov_sha256_hex(text, strlen(text), pd);
	pol = json_loads(text, 0, NULL);
	send_json(req, 200, "OK",
		  json_pack("{s:s, s:s, s:o*}", "name", name, "digest", pd, "policy", pol),
		  "application/json");
	free(text);
}

static void
h_audit(provd_server *s, struct evhttp_request *req)
{
	uint8_t *buf = NULL;
	size_t len = 0, n;
	char head[AUDIT_HASH_HEX], cnt[32];
	int r;

	audit_head(s->svc.audit, &n, head);
	if ((r = file_read_all(audit_path(s->svc.audit), AUDIT_READ_MAX, &buf, &len)) != 0) {
		problem(req, 500, "audit-error", "Audit log unreadable", strerror(-r), NULL);
		return;
	}
	(void)snprintf(cnt, sizeof(cnt), "%zu", n);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "X-Audit-Head", head);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "X-Audit-Records", cnt);
	send_text(req, 200, "OK", (const char *)buf, len, "application/x-ndjson");
	free(buf);
}

/* /v1/admin/… with path = the part after "/v1/admin". */
static void
h_admin(provd_server *s, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	bool read = m == EVHTTP_REQ_GET;
	const char *who = "", *rest, *slash;
	char name[STORE_NAME_MAX + 1];
	unsigned version = 0;
	json_t *j = NULL;
	size_t nl;
	int r;

	if (admin_auth(s, req, read ? ROLE_AUDITOR : ROLE_ADMIN, &who) == ROLE_NONE)
		return;
	if (strcmp(path, "/audit") == 0 && read) {
		h_audit(s, req);
		return;
	}
	if (strcmp(path, "/secrets") == 0 && read) {
		if ((r = store_list(s->svc.st, &j)) != STORE_OK) {
			store_fail(s, req, r);
			return;
		}
		send_json(req, 200, "OK", json_pack("{s:o}", "secrets", j), "application/json");
		return;
	}
	if (strncmp(path, "/secrets/", 9) != 0)
		goto notfound;
	rest = path + 9;
	slash = strchr(rest, '/');
	nl = slash ? (size_t)(slash - rest) : strlen(rest);
	if (!name_ok(rest, nl)) {
		problem(req, 400, "malformed", "Malformed request",
			"secret names are 1..128 of A-Z a-z 0-9 . _ - (not starting with .)", NULL);
		return;
	}
	memcpy(name, rest, nl);
	name[nl] = '\0';
	rest += nl;
	if (*rest == '\0') {
		if (m == EVHTTP_REQ_GET) {
			if ((r = store_versions(s->svc.st, name, &j)) != STORE_OK)
				store_fail(s, req, r);
			else
				send_json(req, 200, "OK", j, "application/json");
		} else if (m == EVHTTP_REQ_POST) {
			h_put(s, req, name, who);
		} else if (m == EVHTTP_REQ_DELETE) {
			if ((r = store_delete(s->svc.st, name)) != STORE_OK) {
				store_fail(s, req, r);
				return;
			}
			audit_admin(s, req, who, "delete", name, 0, NULL);
			prov_log("info", "admin %s: %s deleted", who, name);
			send_json(req, 200, "OK", json_pack("{s:s, s:b}", "name", name, "deleted", 1),
				  "application/json");
		} else
			goto badmethod;
		return;
	}
	if (strcmp(rest, "/policy") == 0) {
		if (m == EVHTTP_REQ_GET)
			h_policy_get(s, req, name);
		else if (m == EVHTTP_REQ_PUT)
			h_policy_set(s, req, name, who);
		else
			goto badmethod;
		return;
	}
	if (strncmp(rest, "/versions/", 10) == 0) {
		const char *v = rest + 10;
		const char *e = strchr(v, '/');
		char vb[16];

		if (e == NULL || strcmp(e, "/retire") != 0 || (size_t)(e - v) >= sizeof(vb))
			goto notfound;
		memcpy(vb, v, (size_t)(e - v));
		vb[e - v] = '\0';
		if (parse_version(vb, &version) != 0)
			goto notfound;
		if (m != EVHTTP_REQ_POST)
			goto badmethod;
		if ((r = store_retire(s->svc.st, name, version)) != STORE_OK) {
			store_fail(s, req, r);
			return;
		}
		audit_admin(s, req, who, "retire", name, version, NULL);
		prov_log("info", "admin %s: %s version %u retired", who, name, version);
		send_json(req, 200, "OK",
			  json_pack("{s:s, s:I, s:b}", "name", name, "version", (json_int_t)version,
				    "retired", 1),
			  "application/json");
		return;
	}
notfound:
	problem(req, 404, "not-found", "Not found", NULL, NULL);
	return;
badmethod:
	problem(req, 405, "method-not-allowed", "Method not allowed", NULL, NULL);
}

/* ------------------------------------------------------------ ops */

static void
h_metrics(provd_server *s, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	char head[AUDIT_HASH_HEX];
	size_t n;

	if (b == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	audit_head(s->svc.audit, &n, head);
	(void)evbuffer_add_printf(
		b,
		"# HELP provd_http_requests_total HTTP requests received.\n"
		"# TYPE provd_http_requests_total counter\n"
		"provd_http_requests_total %lu\n"
		"# HELP provd_releases_total Release decisions by outcome.\n"
		"# TYPE provd_releases_total counter\n"
		"provd_releases_total{outcome=\"released\"} %lu\n"
		"provd_releases_total{outcome=\"denied\"} %lu\n"
		"provd_releases_total{outcome=\"invalid_token\"} %lu\n"
		"provd_releases_total{outcome=\"not_found\"} %lu\n"
		"# TYPE provd_admin_requests_total counter\n"
		"provd_admin_requests_total %lu\n"
		"provd_admin_refused_total %lu\n"
		"# TYPE provd_bad_requests_total counter\n"
		"provd_bad_requests_total %lu\n"
		"# TYPE provd_errors_total counter\n"
		"provd_errors_total %lu\n"
		"# HELP provd_audit_records Records in the audit log.\n"
		"# TYPE provd_audit_records gauge\n"
		"provd_audit_records %zu\n",
		GET(s->m_requests), GET(s->m_released), GET(s->m_denied), GET(s->m_bad_token),
		GET(s->m_not_found), GET(s->m_admin), GET(s->m_admin_refused), GET(s->m_bad_request),
		GET(s->m_errors), n);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				"text/plain; version=0.0.4");
	http_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
dispatch(struct evhttp_request *req, void *arg)
{
	provd_server *s = arg;
	const char *uri = evhttp_request_get_uri(req), *q;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char path[512];
	size_t n;

	INC(s->m_requests);
	n = strcspn(uri, "?");
	q = uri[n] == '?' ? uri + n + 1 : NULL;
	if (n >= sizeof(path)) {
		problem(req, 404, "not-found", "Not found", NULL, NULL);
		return;
	}
	memcpy(path, uri, n);
	path[n] = '\0';
	if (strcmp(path, "/healthz") == 0 && m == EVHTTP_REQ_GET) {
		send_json(req, 200, "OK", json_pack("{s:s}", "status", "ok"), "application/json");
		return;
	}
	if (strcmp(path, "/metrics") == 0 && m == EVHTTP_REQ_GET) {
		h_metrics(s, req);
		return;
	}
	if (strncmp(path, "/v1/secrets/", 12) == 0) {
		if (m != EVHTTP_REQ_GET) {
			(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET");
			problem(req, 405, "method-not-allowed", "Method not allowed", NULL, NULL);
			return;
		}
		if (!name_ok(path + 12, strlen(path + 12))) {
			problem(req, 404, "secret-unavailable", "Secret unavailable", "no such secret",
				NULL);
			return;
		}
		h_release(s, req, path + 12, q);
		return;
	}
	if (strncmp(path, "/v1/admin/", 10) == 0) {
		h_admin(s, req, path + 9);
		return;
	}
	problem(req, 404, "not-found", "Not found", NULL, NULL);
}

/* ------------------------------------------------------------ plumbing */

static struct bufferevent *
tls_bev(struct event_base *base, void *arg)
{
	provd_server *s = arg;
	SSL *ssl = SSL_new(s->ssl);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	(void)event_base_dispatch(w->base);
	return NULL;
}

static int
make_tls(provd_server *s, char *err, size_t errlen)
{
	const provd_config *c = s->svc.cfg;

	if (tls_server_ctx(c->tls_cert, c->tls_key, &s->ssl, err, errlen) != 0)
		return -1;
	if (c->admin_client_ca[0] != '\0') {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->admin_client_ca);

		/* Ask for a certificate, do not require one: release callers have none. */
		if (names == NULL ||
		    SSL_CTX_load_verify_locations(s->ssl, c->admin_client_ca, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			(void)snprintf(err, errlen, "admin_client_ca %s: not a PEM CA bundle",
				       c->admin_client_ca);
			return -1;
		}
		SSL_CTX_set_client_CA_list(s->ssl, names);
		SSL_CTX_set_verify(s->ssl, SSL_VERIFY_PEER, NULL);
		(void)SSL_CTX_set_session_id_context(s->ssl, (const unsigned char *)"provd", 5);
	}
	return 0;
}

int
provd_server_start(const provd_services *svc, provd_server **out, char *bound, size_t boundlen,
		   char *err, size_t errlen)
{
	provd_server *s;
	size_t i, n = svc->cfg->workers;
	long cpus;
	int wfd;

	if (evthread_use_pthreads() != 0) {
		(void)snprintf(err, errlen, "libevent: no pthreads support");
		return -1;
	}
	if (n == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		n = cpus > 0 ? (size_t)cpus : 1;
		if (n > 64)
			n = 64;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->workers = calloc(n, sizeof(*s->workers))) == NULL) {
		free(s);
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->svc = *svc;
	s->fd = -1;
	(void)pthread_rwlock_init(&s->keys_lock, NULL);
	if (!svc->cfg->plain_http && make_tls(s, err, errlen) != 0)
		goto fail;
	if (listen_tcp(svc->cfg->listen_host, svc->cfg->listen_port, !svc->cfg->plain_http,
		       &s->fd, bound, boundlen, err, errlen) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		struct worker *w = &s->workers[i];

		s->n_workers = i + 1;
		if ((w->base = event_base_new()) == NULL || (w->http = evhttp_new(w->base)) == NULL ||
		    (wfd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			(void)snprintf(err, errlen, "worker %zu: cannot set up the event loop", i);
			goto fail;
		}
		if (evhttp_accept_socket(w->http, wfd) != 0) {
			close(wfd);
			(void)snprintf(err, errlen, "worker %zu: cannot accept", i);
			goto fail;
		}
		evhttp_set_timeout(w->http, HTTP_TIMEOUT_S);
		evhttp_set_max_headers_size(w->http, MAX_HEADERS);
		evhttp_set_max_body_size(w->http, (ev_ssize_t)svc->cfg->max_body);
		evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
							    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
		evhttp_set_gencb(w->http, dispatch, s);
		if (s->ssl != NULL)
			evhttp_set_bevcb(w->http, tls_bev, s);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			(void)snprintf(err, errlen, "worker %zu: cannot start a thread", i);
			goto fail;
		}
		w->started = true;
	}
	*out = s;
	return 0;
fail:
	/* The caller keeps jwks and admins on failure. */
	s->svc.jwks = NULL;
	s->svc.admins = NULL;
	provd_server_stop(s);
	return -1;
}

void
provd_server_reload(provd_server *s, prov_jwks *jwks, provd_admins *admins)
{
	prov_jwks *oj;
	provd_admins *oa;

	(void)pthread_rwlock_wrlock(&s->keys_lock);
	oj = s->svc.jwks;
	oa = s->svc.admins;
	s->svc.jwks = jwks;
	s->svc.admins = admins;
	(void)pthread_rwlock_unlock(&s->keys_lock);
	prov_jwks_free(oj);
	provd_admins_free(oa);
}

void
provd_server_stop(provd_server *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_workers; i++)
		if (s->workers[i].started)
			(void)event_base_loopexit(s->workers[i].base, NULL);
	for (i = 0; i < s->n_workers; i++)
		if (s->workers[i].started)
			(void)pthread_join(s->workers[i].thread, NULL);
	for (i = 0; i < s->n_workers; i++) {
		if (s->workers[i].http)
			evhttp_free(s->workers[i].http);
		if (s->workers[i].base)
			event_base_free(s->workers[i].base);
	}
	if (s->fd >= 0)
		close(s->fd);
	SSL_CTX_free(s->ssl);
	prov_jwks_free(s->svc.jwks);
	provd_admins_free(s->svc.admins);
	pthread_rwlock_destroy(&s->keys_lock);
	free(s->workers);
	free(s);
}
