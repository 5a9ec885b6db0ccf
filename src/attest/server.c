/*
 * attestd HTTP API v1 (contract in server.h; wire formats in docs/api-attestd.md).
 */
#include "attest/server.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "attest/appraise.h"
#include "common/hex.h"
#include "common/httpreply.h"
#include "common/listen.h"
#include "common/tlsserver.h"
#include "common/jcs.h"
#include "common/timefmt.h"
#include "common/workq.h"

#define HTTP_TIMEOUT_S 30
#define MAX_HEADERS 16384
#define PROBLEM_BASE "https://nitride.dev/problems/"
#define CHALLENGE_BATCH_MAX 16 /* nonces one challenge may ask for (api-attestd.md) */

/*
 * Threads.  One event loop per core; each accepts connections in turn (the
 * turn passes at every accept, so kept-alive clients spread over the loops).
 * Attestations wait in one queue that the loops themselves drain, each
 * taking its own requests first: a loop appraises what it read, with no
 * hand-over to another thread and no wake-up on the way back (on a VM with
 * halting idle vCPUs each costs 25-50 us), and an idle loop takes over the
 * queue's surplus, so every core works whatever loop holds the connections.
 * Only appraisals that need the KDS go to the pool: a loop never waits for
 * the network.
 */
struct worker {
	pthread_t thread;
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *inline_ev;        /* lowest priority: runs one queued appraisal */
	bool busy;                      /* appraising (atomic: read by the other loops) */
	size_t index;
	attestd_server *srv;
	bool started;
};

/* Loop priorities: libevent's own (HTTP I/O) in the middle, the queued
 * appraisals last, so requests already readable are parsed and queued (where
 * an idle loop can take them) before this loop spends 0.5 ms on a P-384
 * verify. */
#define LOOP_PRIORITIES 3
#define INLINE_PRIORITY 2

struct attestd_server {
	attestd_services svc;
	workq *crypto;       /* appraisals that need the KDS */
	pthread_mutex_t q_lock;
	struct attest_job *q_head, *q_tail; /* attestations the loops drain */
	size_t q_len;
	SSL_CTX *ssl;
	int fd;
	size_t n_workers;
	struct worker *workers;
	pthread_mutex_t audit_lock;
	/* metrics */
	unsigned long m_requests, m_challenges, m_challenge_full, m_attest[3], m_attest_bad,
		m_attest_nonce, m_unavailable, m_appraise, m_reloads, m_reload_fail, m_run_loop,
		m_run_pool;
};

#define INC(x) __atomic_add_fetch(&(x), 1, __ATOMIC_RELAXED)
#define GET(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

int attestd_log_quiet;

void
attestd_log(const char *level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (attestd_log_quiet && strcmp(level, "info") == 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	(void)fprintf(stderr, "attestd: %s: %s\n", level, line);
}

/* ------------------------------------------------------------ replies */

static void
send_json(struct evhttp_request *req, int code, const char *reason, json_t *body,
	  const char *ctype)
{
	struct evbuffer *b = evbuffer_new();
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;

	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	if (b != NULL && text != NULL)
		(void)evbuffer_add(b, text, strlen(text));
	http_send_reply(req, code, reason, b);
	if (b != NULL)
		evbuffer_free(b);
	free(text);
	json_decref(body);
}

/* RFC 7807 problem; check/expected/actual may be NULL. */
static void
problem(struct evhttp_request *req, int code, const char *slug, const char *title,
	const char *detail, const char *check, const char *expected, const char *actual,
	json_t *extra)
{
	char type[128];
	json_t *p;
	const char *k;
	json_t *v;

	(void)snprintf(type, sizeof(type), PROBLEM_BASE "%s", slug);
	p = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", code,
		      "detail", detail ? detail : title);
	if (p != NULL && check)
		(void)json_object_set_new(p, "check", json_string(check));
	if (p != NULL && expected)
		(void)json_object_set_new(p, "expected", json_string(expected));
	if (p != NULL && actual)
		(void)json_object_set_new(p, "actual", json_string(actual));
	if (p != NULL && extra != NULL)
		json_object_foreach(extra, k, v)
			(void)json_object_set(p, k, v);
	json_decref(extra);
	send_json(req, code,
		  code == 400   ? "Bad Request"
		  : code == 401 ? "Unauthorized"
		  : code == 403 ? "Forbidden"
		  : code == 404 ? "Not Found"
		  : code == 405 ? "Method Not Allowed"
		  : code == 413 ? "Payload Too Large"
		  : code == 503 ? "Service Unavailable"
				: "Error",
		  p, "application/problem+json");
}

/* {"token": jwt}, written directly: a compact JWS is base64url and dots,
 * which JSON carries unescaped, and jansson's escaping loop over 1.5 KB was a
 * visible part of each attestation's cost on the event loop. */
static void
send_token(struct evhttp_request *req, const char *jwt)
{
	static const char ok_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				       "0123456789-_.";
	struct evbuffer *b;
	size_t n = strlen(jwt);

	if (strspn(jwt, ok_chars) != n) { /* never: token_issue makes compact JWS */
		send_json(req, 200, "OK", json_pack("{s:s}", "token", jwt), "application/json");
		return;
	}
	if ((b = evbuffer_new()) == NULL || evbuffer_add(b, "{\"token\":\"", 10) != 0 ||
	    evbuffer_add(b, jwt, n) != 0 || evbuffer_add(b, "\"}", 2) != 0) {
		if (b != NULL)
			evbuffer_free(b);
		problem(req, 503, "unavailable", "Out of memory", NULL, NULL, NULL, NULL, NULL);
		return;
	}
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				"application/json");
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	http_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

/* ------------------------------------------------------------ input */

/* The body as a JSON object (NULL with a 4xx sent). */
static json_t *
read_json(attestd_server *s, struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const unsigned char *p;
	json_error_t je;
	json_t *j;
	char d[256];

	if (len > s->svc.cfg->max_body) {
		problem(req, 413, "body-too-large", "Body too large", "the body exceeds max_body", NULL,
			NULL, NULL, NULL);
		return NULL;
	}
	if (len == 0 || (p = evbuffer_pullup(in, (ssize_t)len)) == NULL) {
		problem(req, 400, "malformed", "Malformed request", "empty body: expected a JSON object",
			NULL, NULL, NULL, NULL);
		return NULL;
	}
	j = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL || !json_is_object(j)) {
		(void)snprintf(d, sizeof(d), "body is not a JSON object%s%s",
			       j == NULL ? ": " : "", j == NULL ? je.text : "");
		json_decref(j);
		problem(req, 400, "malformed", "Malformed request", d, NULL, NULL, NULL, NULL);
		return NULL;
	}
	return j;
}

/* Strict standard base64 (padding required) of at most `max` decoded bytes. */
static int
b64_decode(const char *in, size_t n, size_t max, uint8_t **out, size_t *outlen)
{
	uint8_t *buf;
	int w;
	size_t pad = 0;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > max + 2 || n > INT32_MAX)
		return -1;
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	if ((buf = malloc(n / 4 * 3 + 1)) == NULL)
		return -1;
	w = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if (w < 0 || (size_t)w != n / 4 * 3 || (size_t)w - pad > max ||
	    strspn(in, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n ||
	    memchr(in, '=', n - pad) != NULL) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = (size_t)w - pad;
	return 0;
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

static void
audit(attestd_server *s, const char *client, const char *endpoint, const appraisal *a,
      const char *jti, const char *extra_verdict)
{
	char t[RFC3339_LEN];
	json_t *line, *failed = json_array();
	char *text;
	size_t i;

	if (s->svc.audit == NULL)
		return;
	rfc3339_format(time(NULL), t);
	for (i = 0; a != NULL && i < a->n_checks; i++)
		if (!a->checks[i].ok)
			(void)json_array_append_new(failed, json_string(a->checks[i].name));
	line = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s?}", "time", t, "client",
			 client, "endpoint", endpoint, "evidence_digest",
			 a ? a->evidence_digest : "", "policy_digest", a ? a->policy_digest : "",
			 "verdict", extra_verdict ? extra_verdict : ear_status_name(a->status),
			 "failed", failed, "jti", jti);
	if (line == NULL || (text = json_dumps(line, JSON_COMPACT)) == NULL) {
		json_decref(line);
		return;
	}
	(void)pthread_mutex_lock(&s->audit_lock);
	(void)fprintf(s->svc.audit, "%s\n", text);
	(void)fflush(s->svc.audit);
	(void)pthread_mutex_unlock(&s->audit_lock);
	free(text);
	json_decref(line);
}

/* ------------------------------------------------------------ endpoints */

/*
 * How many nonces one challenge asks for: 1 with no body (or "{}"), else the
 * body's "count", 1 to CHALLENGE_BATCH_MAX.  Returns 0 with a 4xx sent
 * otherwise.  An agent that runs many flows fetches its nonces by the batch
 * (nitrided.md); each one is still single-use and expires on its own.
 */
static unsigned
challenge_count(attestd_server *s, struct evhttp_request *req)
{
	json_t *body, *c;
	json_int_t n;
	bool given;
	char d[64];

	if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) == 0)
		return 1;
	if ((body = read_json(s, req)) == NULL)
		return 0;
	c = json_object_get(body, "count");
	given = c != NULL;
	n = json_is_integer(c) ? json_integer_value(c) : 0;
	json_decref(body);
	if (!given)
		return 1;
	if (n < 1 || n > CHALLENGE_BATCH_MAX) {
		(void)snprintf(d, sizeof(d), "\"count\" must be an integer from 1 to %d",
			       CHALLENGE_BATCH_MAX);
		problem(req, 400, "malformed", "Malformed request", d, "count", NULL, NULL, NULL);
		return 0;
	}
	return (unsigned)n;
}

static void
h_challenge(attestd_server *s, struct evhttp_request *req)
{
	char nonce[NONCE_TEXT_LEN + 1], exp[RFC3339_LEN];
	json_t *list = NULL, *out = NULL;
	time_t now = time(NULL), expires = 0;
	unsigned want, i;
	int r = NONCE_OK;

	INC(s->m_challenges);
	if ((want = challenge_count(s, req)) == 0)
		return;
	if ((list = json_array()) == NULL)
		goto nomem;
	/* Up to `want`: a store that fills up midway gives what it has. */
	for (i = 0; i < want; i++) {
		if ((r = nonce_store_issue(s->svc.nonces, now, nonce, &expires)) != NONCE_OK)
			break;
		if (json_array_append_new(list, json_stringn_nocheck(nonce, NONCE_TEXT_LEN)) != 0)
			goto nomem;
	}
	if (i == 0 && r == NONCE_FULL) {
		INC(s->m_challenge_full);
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
		problem(req, 503, "nonce-store-full", "Too many outstanding challenges",
			"the nonce store is full of live nonces; retry later", "nonce_store", NULL,
			NULL, NULL);
		goto out;
	}
	if (i == 0) {
		problem(req, 503, "unavailable", "No randomness", NULL, NULL, NULL, NULL, NULL);
		goto out;
	}
	rfc3339_format(expires, exp);
	/* "nonce" is the first of "nonces": a client that asked for one reads it. */
	out = json_pack("{s:O, s:s, s:I}", "nonce", json_array_get(list, 0), "expires_at", exp, "ttl",
			(json_int_t)s->svc.cfg->nonce_ttl);
	if (out == NULL || (want > 1 && json_object_set(out, "nonces", list) != 0))
		goto nomem;
	send_json(req, 200, "OK", out, "application/json");
	out = NULL;
	goto out;
nomem:
	problem(req, 503, "unavailable", "Out of memory", NULL, NULL, NULL, NULL, NULL);
out:
	json_decref(out);
	json_decref(list);
}

/* REPORT_DATA = SHA-384(JCS({"nonce": n, "tee-pubkey": jwk})) || 0^16 */
static int
binding_report_data(const char *nonce, const json_t *jwk, uint8_t out[SNP_REPORT_DATA_LEN])
{
	json_t *o = json_pack("{s:s, s:O}", "nonce", nonce, "tee-pubkey", jwk);
	char *canon = NULL;
	size_t len;
	unsigned n = 0;
	int r = -1;

	memset(out, 0, SNP_REPORT_DATA_LEN);
	if (o != NULL && jcs_serialize(o, &canon, &len) == 0 &&
	    EVP_Digest(canon, len, out, &n, EVP_sha384(), NULL) == 1 && n == 48)
		r = 0;
	free(canon);
	json_decref(o);
	return r;
}

/* Decode report/certs members; sends 400 on failure. */
static int
get_evidence(attestd_server *s, struct evhttp_request *req, json_t *body, uint8_t **report,
	     size_t *rlen, uint8_t **certs, size_t *clen)
{
	json_t *r = json_object_get(body, "report"), *c = json_object_get(body, "certs");

	(void)s;
	if (!json_is_string(r) ||
	    b64_decode(json_string_value(r), json_string_length(r), SNP_REPORT_SIZE + 0, report,
		       rlen) != 0) {
		problem(req, 400, "malformed", "Malformed request",
			"\"report\" must be the base64 of a 1184-byte attestation report", "report",
			NULL, NULL, NULL);
		return -1;
	}
	if (c != NULL && !json_is_null(c) &&
	    (!json_is_string(c) || b64_decode(json_string_value(c), json_string_length(c),
					      SNP_CERTTABLE_MAX_SIZE, certs, clen) != 0)) {
		free(*report);
		*report = NULL;
		problem(req, 400, "malformed", "Malformed request",
			"\"certs\" must be the base64 of a certificate table (at most 64 KiB)", "certs",
			NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

static void
reject(attestd_server *s, struct evhttp_request *req, const appraisal *a)
{
	const appraisal_check *f = appraisal_first_failure(a);
	json_t *extra = appraisal_to_json(a, false);
	char detail[APPRAISE_NAME_MAX + 2 * APPRAISE_VALUE_MAX + 48];

	(void)s;
	/* A value outside an allow-list (measurement, host data, VMPL, …) reads as
	 * "<name> not allowed", the words an application sees through nitrided. */
	if (f != NULL && strncmp(f->expected, "one of ", 7) == 0)
		(void)snprintf(detail, sizeof(detail), "%s not allowed: got %s, expected %s",
			       f->name, f->actual, f->expected);
	else
		(void)snprintf(detail, sizeof(detail), "check %s failed: expected %s, got %s",
			       f ? f->name : "?", f ? f->expected : "?", f ? f->actual : "?");
	problem(req, 403, "attestation-rejected", "Attestation rejected", detail, f ? f->name : NULL,
		f ? f->expected : NULL, f ? f->actual : NULL, extra);
}

/* One attestation, from the event loop that read it to whichever thread
 * appraises it (a loop, or the pool when the KDS is needed).  The reading
 * loop parses and checks the request (cheap); the appraiser runs the P-384
 * verification and signs the token; the loop that owns the connection
 * answers (libevent's requests belong to their loop).  If the client goes
 * away meanwhile, libevent detaches the request and frees it when the answer
 * is "sent". */
struct attest_job {
	attestd_server *s;
	struct attest_job *next; /* in s's queue */
	struct worker *owner;    /* the loop that read it and answers */
	struct event_base *base; /* owner's */
	struct evhttp_request *req;
	char client[64];
	json_t *body;            /* owns nonce and jwk */
	const char *nonce;
	json_t *jwk;
	uint8_t *report, *certs;
	size_t rlen, clen;
	uint8_t rd[SNP_REPORT_DATA_LEN];
	/* results, from the appraising thread */
	bool failed;             /* out of memory in appraise() */
	appraisal *a;
	char *jwt;               /* NULL with a && affirming/warning: signing failed */
	char jti[TOKEN_JTI_LEN + 1];
};

static void
attest_job_free(struct attest_job *j)
{
	if (j == NULL)
		return;
	appraisal_free(j->a);
	free(j->jwt);
	free(j->report);
	free(j->certs);
	json_decref(j->body);
	free(j);
}

/* In the event loop: answer from the job's results. */
static void
attest_finish(evutil_socket_t fd, short what, void *arg)
{
	struct attest_job *j = arg;
	attestd_server *s = j->s;
	struct evhttp_request *req = j->req;
	appraisal *a = j->a;

	(void)fd;
	(void)what;
	if (j->failed) {
		problem(req, 503, "unavailable", "Out of memory", NULL, NULL, NULL, NULL, NULL);
		goto out;
	}
	if (a->unavailable) {
		INC(s->m_unavailable);
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "30");
		problem(req, 503, "collateral-unavailable", "Collateral unavailable",
			a->unavailable_detail, "collateral", NULL, NULL, NULL);
		audit(s, j->client, "attest", a, NULL, "unavailable");
		goto out;
	}
	INC(s->m_attest[a->status]);
	if (a->status == EAR_CONTRAINDICATED) {
		reject(s, req, a);
		audit(s, j->client, "attest", a, NULL, NULL);
		attestd_log("info", "attest rejected: client %s check %s", j->client,
			    appraisal_first_failure(a) ? appraisal_first_failure(a)->name : "?");
		goto out;
	}
	if (j->jwt == NULL) {
		problem(req, 503, "unavailable", "Token signing failed", NULL, NULL, NULL, NULL, NULL);
		goto out;
	}
	audit(s, j->client, "attest", a, j->jti, NULL);
	attestd_log("info", "attest %s: client %s jti %s", ear_status_name(a->status), j->client,
		    j->jti);
	send_token(req, j->jwt);
out:
	attest_job_free(j);
}

/* The appraisal and, if it passed, the token (in a loop or a pool thread). */
static void
attest_run(struct attest_job *j, bool cached_only)
{
	attestd_server *s = j->s;
	const policy *pol = policy_holder_get(s->svc.policies);
	appraise_input in = { 0 };
	token_params tp = { 0 };

	in.report = j->report;
	in.report_len = j->rlen;
	in.certs = j->certs;
	in.certs_len = j->clen;
	in.expected_report_data = j->rd;
	in.cached_only = cached_only;
	if (appraise(s->svc.coll, pol, &in, &j->a) != 0) {
		j->failed = true;
	} else if (j->a->would_fetch) {
		/* Back to the pool, which may wait for the KDS. */
	} else if (!j->a->unavailable && j->a->status != EAR_CONTRAINDICATED) {
		tp.issuer = s->svc.cfg->issuer;
		tp.now = time(NULL);
		tp.lifetime = s->svc.cfg->token_lifetime;
		tp.nonce = j->nonce;
		tp.tee_pubkey = j->jwk;
		tp.appraisal = j->a;
		if (token_issue(s->svc.signer, &tp, &j->jwt, j->jti) != 0)
			j->jwt = NULL;
	}
	policy_holder_put(s->svc.policies, pol);
}

/* In a pool thread: the whole appraisal, then the answer in the loop. */
static void
attest_work(void *arg)
{
	struct attest_job *j = arg;
	static const struct timeval now = { 0, 0 };

	INC(j->s->m_run_pool);
	attest_run(j, false);
	/* Thread-safe: the bases were made with evthread_use_pthreads(). */
	if (event_base_once(j->base, -1, EV_TIMEOUT, attest_finish, j, &now) != 0) {
		/* Cannot happen short of memory; answering from here would race
		 * the loop, so the client times out instead. */
		attestd_log("error", "attest: cannot hand the answer back to the event loop");
	}
}

/* Unlinks and returns this loop's oldest queued job, else the oldest one. */
static struct attest_job *
queue_take(attestd_server *s, struct worker *w, bool *more)
{
	struct attest_job *j, *prev = NULL, *pick = NULL, *pick_prev = NULL;

	(void)pthread_mutex_lock(&s->q_lock);
	for (j = s->q_head; j != NULL; prev = j, j = j->next) {
		if (pick == NULL) {
			pick = j;
			pick_prev = prev;
		}
		if (j->owner == w) {
			pick = j;
			pick_prev = prev;
			break;
		}
	}
	if (pick != NULL) {
		if (pick_prev != NULL)
			pick_prev->next = pick->next;
		else
			s->q_head = pick->next;
		if (s->q_tail == pick)
			s->q_tail = pick_prev;
		pick->next = NULL;
		s->q_len--;
	}
	*more = s->q_len > 0;
	(void)pthread_mutex_unlock(&s->q_lock);
	return pick;
}

/* In a loop, when its turn comes (lowest priority): one queued appraisal. */
static void
attest_inline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	static const struct timeval now = { 0, 0 };
	struct attest_job *j;
	bool more = false;

	(void)fd;
	(void)what;
	if ((j = queue_take(w->srv, w, &more)) == NULL)
		return;
	__atomic_store_n(&w->busy, true, __ATOMIC_RELAXED);
	attest_run(j, true);
	__atomic_store_n(&w->busy, false, __ATOMIC_RELAXED);
	if (j->a != NULL && j->a->would_fetch) {
		appraisal_free(j->a);
		j->a = NULL;
		if (workq_submit(j->s->crypto, attest_work, j) == 0)
			goto next; /* answered from the pool */
		j->failed = true; /* shutting down: answered 503 below */
	} else {
		INC(j->s->m_run_loop);
	}
	if (j->owner == w)
		attest_finish(-1, 0, j);
	else if (event_base_once(j->base, -1, EV_TIMEOUT, attest_finish, j, &now) != 0)
		attestd_log("error", "attest: cannot hand the answer back to the event loop");
next:
	if (more)
		event_active(w->inline_ev, EV_TIMEOUT, 0);
}

static void
h_attest(attestd_server *s, struct worker *w, struct evhttp_request *req)
{
	struct attest_job *j = NULL;
	const char *nonce;
	char why[200];
	size_t queued, i;
	int r;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		problem(req, 503, "unavailable", "Out of memory", NULL, NULL, NULL, NULL, NULL);
		return;
	}
	j->s = s;
	j->owner = w;
	j->base = w->base;
	j->req = req;
	(void)snprintf(j->client, sizeof(j->client), "%s", client_addr(req));
	if ((j->body = read_json(s, req)) == NULL) {
		INC(s->m_attest_bad);
		goto fail;
	}
	nonce = json_string_value(json_object_get(j->body, "nonce"));
	if (nonce == NULL) {
		INC(s->m_attest_bad);
		problem(req, 400, "malformed", "Malformed request", "\"nonce\" (string) is required",
			"nonce", NULL, NULL, NULL);
		goto fail;
	}
	j->nonce = nonce;
	/* Consumed first, whatever happens next. */
	r = nonce_store_consume(s->svc.nonces, nonce, time(NULL));
	if (r == NONCE_MALFORMED) {
		INC(s->m_attest_bad);
		problem(req, 400, "malformed", "Malformed request",
			"\"nonce\" must be 43 base64url characters (32 bytes)", "nonce", NULL, NULL,
			NULL);
		goto fail;
	}
	if (r != NONCE_OK) {
		INC(s->m_attest_nonce);
		(void)snprintf(why, sizeof(why), "nonce %s", nonce_status_name(r));
		problem(req, 403, "attestation-rejected", "Attestation rejected", why, "nonce",
			"a live nonce issued by this service", nonce_status_name(r), NULL);
		audit(s, j->client, "attest", NULL, NULL, why);
		goto fail;
	}
	j->jwk = json_object_get(j->body, "tee_pubkey");
	if (token_check_tee_pubkey(j->jwk, why, sizeof(why)) != 0) {
		INC(s->m_attest_bad);
		problem(req, 400, "malformed", "Malformed request", why, "tee_pubkey", NULL, NULL, NULL);
		goto fail;
	}
	if (get_evidence(s, req, j->body, &j->report, &j->rlen, &j->certs, &j->clen) != 0) {
		INC(s->m_attest_bad);
		goto fail;
	}
	if (binding_report_data(nonce, j->jwk, j->rd) != 0) {
		problem(req, 400, "malformed", "Malformed request", "tee_pubkey cannot be canonicalised",
			"tee_pubkey", NULL, NULL, NULL);
		goto fail;
	}
	(void)pthread_mutex_lock(&s->q_lock);
	if (s->q_tail != NULL)
		s->q_tail->next = j;
	else
		s->q_head = j;
	s->q_tail = j;
	queued = ++s->q_len;
	(void)pthread_mutex_unlock(&s->q_lock);
	event_active(w->inline_ev, EV_TIMEOUT, 0);
	/* More than this loop will take next: wake a loop that is not appraising
	 * (event_active is thread-safe with evthread_use_pthreads). */
	for (i = 1; queued > 1 && i < s->n_workers; i++) {
		struct worker *peer = &s->workers[(w->index + i) % s->n_workers];

		if (!__atomic_load_n(&peer->busy, __ATOMIC_RELAXED)) {
			event_active(peer->inline_ev, EV_TIMEOUT, 0);
			break;
		}
	}
	return; /* answered by attest_finish(), from attest_inline() */
fail:
	attest_job_free(j);
}

static bool
admin_ok(attestd_server *s, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	const char *tok = s->svc.cfg->admin_token;
	size_t n = strlen(tok);

	unsigned char a[32], b[32];
	unsigned la = 0, lb = 0;

	if (n == 0 || h == NULL || strncmp(h, "Bearer ", 7) != 0)
		return false;
	h += 7;
	/* Compare digests in constant time: neither the content nor the length of
	 * the configured token leaks through timing. */
	if (EVP_Digest(h, strlen(h), a, &la, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(tok, n, b, &lb, EVP_sha256(), NULL) != 1 || la != 32 || lb != 32)
		return false;
	return CRYPTO_memcmp(a, b, 32) == 0;
}

static void
h_appraise(attestd_server *s, struct evhttp_request *req)
{
	json_t *body = NULL, *res, *claims, *at = NULL, *rdj, *pj;
	uint8_t *report = NULL, *certs = NULL, rd[SNP_REPORT_DATA_LEN];
	size_t rlen = 0, clen = 0;
	const policy *pol = NULL;
	appraisal *a = NULL;
	appraise_input in = { 0 };

	INC(s->m_appraise);
	if (s->svc.cfg->admin_token[0] == '\0') {
		problem(req, 403, "admin-disabled", "Admin API disabled",
			"no admin_token is configured", NULL, NULL, NULL, NULL);
		return;
	}
	if (!admin_ok(s, req)) {
		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
					"Bearer");
		problem(req, 401, "unauthorized", "Unauthorized",
			"Authorization: Bearer <admin_token> required", NULL, NULL, NULL, NULL);
		return;
	}
	if ((body = read_json(s, req)) == NULL)
		return;
	if (get_evidence(s, req, body, &report, &rlen, &certs, &clen) != 0)
		goto out;
	in.report = report;
	in.report_len = rlen;
	in.certs = certs;
	in.certs_len = clen;
	if ((at = json_object_get(body, "at")) != NULL) {
		if (!json_is_string(at) || rfc3339_parse(json_string_value(at), &in.at) != 0) {
			problem(req, 400, "malformed", "Malformed request",
				"\"at\" must be an RFC 3339 instant", "at", NULL, NULL, NULL);
			goto out;
		}
	}
	if ((pj = json_object_get(body, "product")) != NULL) {
		if (!json_is_string(pj) ||
		    (in.product = snp_product_from_name(json_string_value(pj))) == SNP_PRODUCT_UNKNOWN) {
			problem(req, 400, "malformed", "Malformed request",
				"\"product\" must be milan, genoa or turin", "product", NULL, NULL, NULL);
			goto out;
		}
	}
	if ((rdj = json_object_get(body, "report_data")) != NULL) {
		if (!json_is_string(rdj) || json_string_length(rdj) != 2 * SNP_REPORT_DATA_LEN ||
		    hex_decode(json_string_value(rdj), rd, sizeof(rd)) != 0) {
			problem(req, 400, "malformed", "Malformed request",
				"\"report_data\" must be 128 hex digits", "report_data", NULL, NULL,
				NULL);
			goto out;
		}
		in.expected_report_data = rd;
	}
	pol = policy_holder_get(s->svc.policies);
	if (appraise(s->svc.coll, pol, &in, &a) != 0) {
		problem(req, 503, "unavailable", "Out of memory", NULL, NULL, NULL, NULL, NULL);
		goto out;
	}
	if (a->unavailable) {
		problem(req, 503, "collateral-unavailable", "Collateral unavailable",
			a->unavailable_detail, "collateral", NULL, NULL, NULL);
		audit(s, client_addr(req), "appraise", a, NULL, "unavailable");
		goto out;
	}
	audit(s, client_addr(req), "appraise", a, NULL, NULL);
	res = appraisal_to_json(a, true);
	if (res != NULL && (claims = appraisal_report_claims(a)) != NULL)
		(void)json_object_set_new(res, "claims", claims);
	send_json(req, 200, "OK", res, "application/json");
out:
	if (pol != NULL)
		policy_holder_put(s->svc.policies, pol);
	appraisal_free(a);
	free(report);
	free(certs);
	json_decref(body);
}

static void
h_metrics(attestd_server *s, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	unsigned long f = 0, ff = 0, hits = 0;

	if (b == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	collateral_stats(s->svc.coll, &f, &ff, &hits);
	(void)evbuffer_add_printf(
		b,
		"# HELP attestd_http_requests_total HTTP requests received.\n"
		"# TYPE attestd_http_requests_total counter\n"
		"attestd_http_requests_total %lu\n"
		"# HELP attestd_challenges_total Challenges requested.\n"
		"# TYPE attestd_challenges_total counter\n"
		"attestd_challenges_total %lu\n"
		"attestd_challenges_refused_total %lu\n"
		"# HELP attestd_attestations_total Attestations by verdict.\n"
		"# TYPE attestd_attestations_total counter\n"
		"attestd_attestations_total{status=\"affirming\"} %lu\n"
		"attestd_attestations_total{status=\"warning\"} %lu\n"
		"attestd_attestations_total{status=\"contraindicated\"} %lu\n"
		"attestd_attestations_total{status=\"bad_nonce\"} %lu\n"
		"attestd_attestations_total{status=\"malformed\"} %lu\n"
		"attestd_attestations_total{status=\"unavailable\"} %lu\n"
		"# TYPE attestd_appraisals_total counter\n"
		"attestd_appraisals_total %lu\n"
		"# TYPE attestd_nonces_held gauge\n"
		"attestd_nonces_held %zu\n"
		"# TYPE attestd_kds_requests_total counter\n"
		"attestd_kds_requests_total %lu\n"
		"attestd_kds_failures_total %lu\n"
		"attestd_collateral_cache_hits_total %lu\n"
		"# TYPE attestd_policy_reloads_total counter\n"
		"attestd_policy_reloads_total{result=\"ok\"} %lu\n"
		"attestd_policy_reloads_total{result=\"error\"} %lu\n"
		"# HELP attestd_attest_runs_total Where attestations were appraised: in the event loop that read them, or in the pool.\n"
		"# TYPE attestd_attest_runs_total counter\n"
		"attestd_attest_runs_total{thread=\"loop\"} %lu\n"
		"attestd_attest_runs_total{thread=\"pool\"} %lu\n",
		GET(s->m_requests), GET(s->m_challenges), GET(s->m_challenge_full), GET(s->m_attest[0]),
		GET(s->m_attest[1]), GET(s->m_attest[2]), GET(s->m_attest_nonce), GET(s->m_attest_bad),
		GET(s->m_unavailable), GET(s->m_appraise), nonce_store_count(s->svc.nonces), f, ff, hits,
		GET(s->m_reloads), GET(s->m_reload_fail), GET(s->m_run_loop), GET(s->m_run_pool));
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				"text/plain; version=0.0.4");
	http_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
dispatch(struct evhttp_request *req, void *arg)
{
	struct worker *w = arg;
	attestd_server *s = w->srv;
	const char *uri = evhttp_request_get_uri(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char path[64];
	size_t n;

	INC(s->m_requests);
	n = strcspn(uri, "?");
	if (n >= sizeof(path)) {
		problem(req, 404, "not-found", "Not found", NULL, NULL, NULL, NULL, NULL);
		return;
	}
	memcpy(path, uri, n);
	path[n] = '\0';
#define ROUTE(p, meth, fn)                                                                \
	if (strcmp(path, p) == 0) {                                                       \
		if (m != (meth)) {                                                        \
			(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", \
						(meth) == EVHTTP_REQ_GET ? "GET" : "POST"); \
			problem(req, 405, "method-not-allowed", "Method not allowed", NULL, \
				NULL, NULL, NULL, NULL);                                  \
			return;                                                           \
		}                                                                         \
		fn;                                                                       \
		return;                                                                   \
	}
	ROUTE("/v1/challenge", EVHTTP_REQ_POST, h_challenge(s, req))
	ROUTE("/v1/attest", EVHTTP_REQ_POST, h_attest(s, w, req))
	ROUTE("/v1/appraise", EVHTTP_REQ_POST, h_appraise(s, req))
	ROUTE("/v1/jwks", EVHTTP_REQ_GET,
	      send_json(req, 200, "OK", token_signer_jwks(s->svc.signer), "application/jwk-set+json"))
	ROUTE("/healthz", EVHTTP_REQ_GET,
	      send_json(req, 200, "OK", json_pack("{s:s}", "status", "ok"), "application/json"))
	ROUTE("/metrics", EVHTTP_REQ_GET, h_metrics(s, req))
#undef ROUTE
	problem(req, 404, "not-found", "Not found", NULL, NULL, NULL, NULL, NULL);
}

/* ------------------------------------------------------------ plumbing */

/*
 * Called by evhttp in the accepting loop for every new connection: pass the
 * accept turn to the next loop, then make the connection's bufferevent (TLS;
 * NULL lets evhttp make its plain socket one).
 */
static struct bufferevent *
new_connection(struct event_base *base, void *arg)
{
	struct worker *w = arg;
	attestd_server *s = w->srv;
	SSL *ssl;

	if (s->n_workers > 1) {
		/* Thread-safe listeners (LEV_OPT_THREADSAFE). */
		(void)evconnlistener_disable(w->listener);
		(void)evconnlistener_enable(s->workers[(w->index + 1) % s->n_workers].listener);
	}
	if (s->ssl == NULL)
		return NULL;
	if ((ssl = SSL_new(s->ssl)) == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	/* A loop without the accept turn and without connections has no event
	 * pending, and must still wait for both. */
	(void)event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int
attestd_server_start(const attestd_services *svc, attestd_server **out, char *bound,
		     size_t boundlen, char *err, size_t errlen)
{
	attestd_server *s;
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
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->workers = calloc(n, sizeof(*s->workers))) == NULL) {
		free(s);
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->svc = *svc;
	s->fd = -1;
	(void)pthread_mutex_init(&s->audit_lock, NULL);
	(void)pthread_mutex_init(&s->q_lock, NULL);
	if (!svc->cfg->plain_http &&
	    tls_server_ctx(svc->cfg->tls_cert, svc->cfg->tls_key, &s->ssl, err, errlen) != 0)
		goto fail;
	if (listen_tcp(svc->cfg->listen_host, svc->cfg->listen_port, !svc->cfg->plain_http,
		       &s->fd, bound, boundlen, err, errlen) != 0)
		goto fail;
	/* As many appraisal threads as event loops: a loop whose clients keep
	 * their connections open may have all the work, and the pool spreads it
	 * over every core whatever loop accepted the connections. */
	if (workq_start(n, &s->crypto) != 0) {
		(void)snprintf(err, errlen, "cannot start the appraisal threads");
		goto fail;
	}
	for (i = 0; i < n; i++) {
		struct worker *w = &s->workers[i];

		w->srv = s;
		w->index = i;
		s->n_workers = i + 1;
		if ((w->base = event_base_new()) == NULL ||
		    event_base_priority_init(w->base, LOOP_PRIORITIES) != 0 ||
		    (w->inline_ev = event_new(w->base, -1, 0, attest_inline, w)) == NULL ||
		    event_priority_set(w->inline_ev, INLINE_PRIORITY) != 0 ||
		    (w->http = evhttp_new(w->base)) == NULL ||
		    (wfd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			(void)snprintf(err, errlen, "worker %zu: cannot set up the event loop", i);
			goto fail;
		}
		/* Only the first loop starts with the accept turn (new_connection). */
		if ((w->listener = evconnlistener_new(w->base, NULL, NULL,
						      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_THREADSAFE |
							      (i > 0 ? LEV_OPT_DISABLED : 0),
						      0, wfd)) == NULL) {
			close(wfd);
			(void)snprintf(err, errlen, "worker %zu: cannot accept", i);
			goto fail;
		}
		if (evhttp_bind_listener(w->http, w->listener) == NULL) {
			evconnlistener_free(w->listener);
			w->listener = NULL;
			(void)snprintf(err, errlen, "worker %zu: cannot accept", i);
			goto fail;
		}
		evhttp_set_timeout(w->http, HTTP_TIMEOUT_S);
		evhttp_set_max_headers_size(w->http, MAX_HEADERS);
		/* Bodies up to twice the cap are read and answered with a problem document;
		 * beyond that libevent stops reading and answers its own 413. */
		evhttp_set_max_body_size(w->http, 2 * (ev_ssize_t)svc->cfg->max_body);
		/* Every common method reaches dispatch(), which answers 405 as problem+json. */
		evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
							    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
							    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
		evhttp_set_gencb(w->http, dispatch, w);
		evhttp_set_bevcb(w->http, new_connection, w);
	}
	/* Every loop exists before any runs: the first accept passes the turn to
	 * the next loop's listener. */
	for (i = 0; i < n; i++) {
		struct worker *w = &s->workers[i];

		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			(void)snprintf(err, errlen, "worker %zu: cannot start a thread", i);
			goto fail;
		}
		w->started = true;
	}
	*out = s;
	return 0;
fail:
	attestd_server_stop(s);
	return -1;
}

void
attestd_server_stop(attestd_server *s)
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
	/* The loops are stopped, so nothing new is queued; the pool finishes
	 * what it has, and one more turn of each loop delivers those answers
	 * (and frees their jobs) before the connections go. */
	workq_stop(s->crypto);
	/* Jobs still queued were never started; their requests go with the
	 * connections (evhttp_free below). */
	while (s->q_head != NULL) {
		struct attest_job *j = s->q_head;

		s->q_head = j->next;
		attest_job_free(j);
	}
	s->q_tail = NULL;
	s->q_len = 0;
	for (i = 0; i < s->n_workers; i++)
		if (s->workers[i].base)
			(void)event_base_loop(s->workers[i].base, EVLOOP_NONBLOCK);
	for (i = 0; i < s->n_workers; i++) {
		if (s->workers[i].inline_ev)
			event_free(s->workers[i].inline_ev);
		if (s->workers[i].http)
			evhttp_free(s->workers[i].http);
		if (s->workers[i].base)
			event_base_free(s->workers[i].base);
	}
	if (s->fd >= 0)
		close(s->fd);
	SSL_CTX_free(s->ssl);
	pthread_mutex_destroy(&s->audit_lock);
	pthread_mutex_destroy(&s->q_lock);
	free(s->workers);
	free(s);
}

void
attestd_server_note_reload(attestd_server *s, bool ok)
{
	if (ok)
		INC(s->m_reloads);
	else
		INC(s->m_reload_fail);
}
