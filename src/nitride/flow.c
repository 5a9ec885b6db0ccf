#include "nitride/flow.h"

#include "common/jcs.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NONCE_B64URL_LEN 43 /* 32 bytes, base64url without padding */
#define NONCE_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define CHALLENGE_BATCH_MAX 16u /* attestd's bound on one challenge (api-attestd.md) */

const char *
flow_step_name(enum flow_step s)
{
	switch (s) {
	case FLOW_OK: return "ok";
	case FLOW_CHALLENGE: return "challenge";
	case FLOW_REPORT: return "report";
	case FLOW_ATTEST: return "attestation";
	case FLOW_RELEASE: return "release";
	case FLOW_INPUT: return "input";
	}
	return "unknown";
}

static enum flow_step __attribute__((format(printf, 4, 5)))
fail(enum flow_step step, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return step;
}

/* The reason a service gave: RFC 7807 "detail", else the status line. */
static void
problem_detail(const struct http_response *r, char *out, size_t outlen)
{
	json_t *doc = r->body != NULL ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	const char *detail = doc != NULL ? json_string_value(json_object_get(doc, "detail")) : NULL;

	if (detail != NULL)
		(void)snprintf(out, outlen, "%s (HTTP %ld)", detail, r->status);
	else
		(void)snprintf(out, outlen, "HTTP %ld", r->status);
	json_decref(doc);
}

static char *
base64(const uint8_t *p, size_t n)
{
	char *out;

	if (n > (SIZE_MAX / 4) * 3 - 3 || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	(void)EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* REPORT_DATA = SHA-384(JCS({"nonce": nonce, "tee-pubkey": jwk})) ‖ 16 zero bytes. */
static int
binding(const char *nonce, json_t *jwk, uint8_t report_data[SNP_REPORT_DATA_LEN])
{
	json_t *obj = json_pack("{s:s,s:O}", "nonce", nonce, "tee-pubkey", jwk);
	unsigned int n = 0;
	char *canon = NULL;
	size_t len = 0;
	int r = -1;

	if (obj == NULL || jcs_serialize(obj, &canon, &len) != 0)
		goto out;
	memset(report_data, 0, SNP_REPORT_DATA_LEN);
	if (EVP_Digest(canon, len, report_data, &n, EVP_sha384(), NULL) != 1 || n != 48)
		goto out;
	r = 0;
out:
	free(canon);
	json_decref(obj);
	return r;
}

static bool
member_is(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL && strcmp(v, want) == 0;
}

/* A public EC P-256 JWK, nothing private. */
static json_t *
load_transfer_key(const char *text, char *err, size_t errlen)
{
	json_t *jwk = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

	if (jwk == NULL || !json_is_object(jwk) ||
	    !json_is_string(json_object_get(jwk, "x")) || !json_is_string(json_object_get(jwk, "y")) ||
	    json_object_get(jwk, "d") != NULL ||
	    !member_is(jwk, "kty", "EC") || !member_is(jwk, "crv", "P-256")) {
		(void)snprintf(err, errlen, "the transfer key must be a public EC P-256 JWK");
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

/*
 * The attest request {"nonce", "report", "certs"?, "tee_pubkey"}, written
 * directly: base64 and a base64url nonce need no JSON escaping, and
 * jansson's dump went through the ≈ 6 KB body a character at a time on
 * every flow.  The nonce comes from the network, so its alphabet is checked
 * again here (flow_run refuses a challenge whose nonce is not 43 base64url
 * characters).  NULL when out of memory or when the nonce is not base64url.
 */
static char *
attest_body(const char *nonce, const char *report_b64, const char *certs_b64, const json_t *jwk)
{
	char *key = NULL, *out = NULL;
	size_t n;

	if (strspn(nonce, NONCE_ALPHABET) != strlen(nonce) ||
	    (key = json_dumps(jwk, JSON_COMPACT)) == NULL)
		return NULL;
	n = strlen(nonce) + strlen(report_b64) + (certs_b64 ? strlen(certs_b64) : 0) + strlen(key) +
	    64;
	if ((out = malloc(n)) != NULL)
		(void)snprintf(out, n, "{\"nonce\":\"%s\",\"report\":\"%s\",%s%s%s\"tee_pubkey\":%s}",
			       nonce, report_b64, certs_b64 ? "\"certs\":\"" : "",
			       certs_b64 ? certs_b64 : "", certs_b64 ? "\"," : "", key);
	free(key);
	return out;
}

static bool
valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 128)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return name[0] != '.';
}

/* The flow; attest_only (name NULL) stops after step 3 and hands out the token. */
static unsigned long
mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long)ts.tv_sec * 1000000ul + (unsigned long)ts.tv_nsec / 1000ul;
}

/* Close step s (0-based) of the flow in *st; *t0 becomes the next step's start. */
static void
step_done(struct flow_stats *st, unsigned s, unsigned long *t0)
{
	unsigned long t = mono_us();

	st->step_us[s] = t - *t0;
	*t0 = t;
}

/* One request of the flow, counted in *st. */
static int
request(const struct flow_config *cfg, const char *url, const char *bearer, const char *body,
	struct http_response *resp, struct flow_stats *st, char *err, size_t errlen)
{
	int r = http_request(&cfg->http, url, bearer, body, resp, err, errlen);

	st->requests += resp->attempts;
	st->connects += resp->connects;
	return r;
}

/* Whether an RFC 7807 answer names `check` as the failing check. */
static bool
problem_check_is(const struct http_response *r, const char *check)
{
	json_t *doc = r->body != NULL ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	const char *c = doc != NULL ? json_string_value(json_object_get(doc, "check")) : NULL;
	bool is = c != NULL && strcmp(c, check) == 0;

	json_decref(doc);
	return is;
}

static bool
nonce_text_ok(const json_t *v)
{
	return json_string_length(v) == NONCE_B64URL_LEN &&
	       strspn(json_string_value(v), NONCE_ALPHABET) == NONCE_B64URL_LEN;
}

/*
 * POST /v1/challenge for up to `want` nonces (1 to CHALLENGE_BATCH_MAX):
 * out[0 .. *got) gets them, and ttl_s, if given, the lifetime attestd gave
 * them (0 if it did not say).  An attestation service that gives fewer than
 * asked for (its nonce store is nearly full, or it does not batch and
 * answers with "nonce" alone) is fine; one that gives more, or anything that
 * is not 43 base64url characters, is refused.
 */
static enum flow_step
challenge(const struct flow_config *cfg, unsigned want, char out[][NONCE_B64URL_LEN + 1],
	  size_t *got, unsigned long *ttl_s, struct flow_stats *st, char *err, size_t errlen)
{
	struct http_response resp = { 0 };
	char url[2048], body[32] = "{}", why[FLOW_ERR_MAX], herr[HTTP_ERR_MAX] = "";
	json_t *doc = NULL, *list, *v;
	json_int_t ttl;
	enum flow_step ret = FLOW_OK;
	size_t i, n;

	*got = 0;
	if (want < 1 || want > CHALLENGE_BATCH_MAX)
		return fail(FLOW_CHALLENGE, err, errlen, "internal error: %u nonces asked for", want);
	(void)snprintf(url, sizeof(url), "%s/v1/challenge", cfg->attestd_url);
	if (want > 1)
		(void)snprintf(body, sizeof(body), "{\"count\":%u}", want);
	if (request(cfg, url, NULL, body, &resp, st, herr, sizeof(herr)) != 0) {
		ret = fail(FLOW_CHALLENGE, err, errlen, "attestation service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || (doc = json_loadb(resp.body, resp.body_len, 0, NULL)) == NULL ||
	    !nonce_text_ok(json_object_get(doc, "nonce"))) {
		problem_detail(&resp, why, sizeof(why));
		ret = fail(FLOW_CHALLENGE, err, errlen, "no challenge from the attestation service: %s", why);
		goto out;
	}
	list = json_object_get(doc, "nonces");
	n = list != NULL ? json_array_size(list) : 1;
	if (list != NULL && (!json_is_array(list) || n < 1 || n > want ||
			     !json_equal(json_array_get(list, 0), json_object_get(doc, "nonce")))) {
		ret = fail(FLOW_CHALLENGE, err, errlen, "no challenge from the attestation service: "
			   "\"nonces\" is not a list of 1 to %u nonces that starts with \"nonce\"", want);
		goto out;
	}
	for (i = 0; i < n; i++) {
		v = list != NULL ? json_array_get(list, i) : json_object_get(doc, "nonce");
		if (!nonce_text_ok(v)) {
			ret = fail(FLOW_CHALLENGE, err, errlen, "no challenge from the attestation "
				   "service: nonce %zu is not 43 base64url characters", i);
			goto out;
		}
		memcpy(out[i], json_string_value(v), NONCE_B64URL_LEN + 1);
	}
	*got = n;
	if (ttl_s != NULL) {
		ttl = json_integer_value(json_object_get(doc, "ttl"));
		*ttl_s = ttl > 0 ? (unsigned long)ttl : 0;
	}
out:
	json_decref(doc);
	http_response_free(&resp);
	return ret;
}

/*
 * Nonces fetched ahead.  The challenge is a round trip to attestd (0.15 ms on
 * loopback, more across a network) on the critical path of every flow, and
 * an HTTPS exchange that costs both sides CPU.  A thread of the daemon keeps
 * a stock of up to NONCE_RESERVE_MAX nonces for the flows to take: once
 * flows have taken it down to NONCE_RESERVE_LOW, it refills the stock with
 * one batched challenge (api-attestd.md), so a busy agent makes one challenge
 * request per eight flows or so instead of one per flow.  When no flow runs,
 * nothing is fetched.  A nonce is kept for at most half the lifetime attestd
 * gave it (and NONCE_RESERVE_MAX_S), so it is still live when used; attestd
 * checks freshness and single use exactly as for any other.  One that
 * attestd refuses anyway (it restarted and forgot it) costs the flow one
 * more attempt with a fresh challenge (flow_provision).
 */
#define NONCE_RESERVE_MAX CHALLENGE_BATCH_MAX
#define NONCE_RESERVE_LOW (NONCE_RESERVE_MAX / 2)
#define NONCE_RESERVE_MAX_S 60u
#define NONCE_RESERVE_RETRY_S 1 /* after a failed challenge: attestd may be down */
#define NONCE_RESERVE_TIMEOUT_MS 2000

struct nonce_reserve {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool running, stop;
	const struct flow_config *cfg;
	http_pool *pool; /* its own kept connection: the flows' stay theirs */
	bool wanted;     /* a flow took a nonce (or found none) since the last refill */
	size_t n;        /* the stock: e[0 .. n), taken from the end */
	struct {
		char nonce[NONCE_B64URL_LEN + 1];
		unsigned long until_us; /* mono_us() */
	} e[NONCE_RESERVE_MAX];
};

int
nonce_reserve_new(struct nonce_reserve **out)
{
	struct nonce_reserve *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (r == NULL)
		return -1;
	if (http_pool_new(&r->pool) != 0) {
		free(r);
		return -1;
	}
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		http_pool_free(r->pool);
		free(r);
		return -1;
	}
	if (pthread_cond_init(&r->wake, NULL) != 0) {
		pthread_mutex_destroy(&r->lock);
		http_pool_free(r->pool);
		free(r);
		return -1;
	}
	*out = r;
	return 0;
}

static void *
reserve_main(void *arg)
{
	struct nonce_reserve *r = arg;
	char got[NONCE_RESERVE_MAX][NONCE_B64URL_LEN + 1], err[FLOW_ERR_MAX];
	unsigned long ttl, keep, until_us;
	struct flow_stats st;
	struct timespec until;
	size_t i, n;
	unsigned want;
	/* One short attempt per refill: a flow that finds no nonce asks for its
	 * own, and stopping the daemon waits for at most this request. */
	struct flow_config once = *r->cfg;

	once.http.attempts = 1;
	once.http.pool = r->pool;
	if (once.http.timeout_ms <= 0 || once.http.timeout_ms > NONCE_RESERVE_TIMEOUT_MS)
		once.http.timeout_ms = NONCE_RESERVE_TIMEOUT_MS;

	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		if (!r->wanted || r->n > NONCE_RESERVE_LOW) {
			pthread_cond_wait(&r->wake, &r->lock);
			continue;
		}
		r->wanted = false;
		want = (unsigned)(NONCE_RESERVE_MAX - r->n);
		pthread_mutex_unlock(&r->lock);
		memset(&st, 0, sizeof(st));
		ttl = 0;
		if (challenge(&once, want, got, &n, &ttl, &st, err, sizeof(err)) != FLOW_OK) {
			pthread_mutex_lock(&r->lock);
			/* The flows ask for their own meanwhile; try again later. */
			(void)clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += NONCE_RESERVE_RETRY_S;
			while (!r->stop &&
			       pthread_cond_timedwait(&r->wake, &r->lock, &until) == 0)
				;
			continue;
		}
		keep = ttl / 2 < NONCE_RESERVE_MAX_S ? ttl / 2 : NONCE_RESERVE_MAX_S;
		until_us = mono_us() + keep * 1000000ul;
		pthread_mutex_lock(&r->lock);
		/* Flows took from the stock meanwhile, never added to it: all fit. */
		for (i = 0; keep > 0 && i < n && r->n < NONCE_RESERVE_MAX; i++, r->n++) {
			memcpy(r->e[r->n].nonce, got[i], sizeof(r->e[r->n].nonce));
			r->e[r->n].until_us = until_us;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int
nonce_reserve_start(struct nonce_reserve *r, const struct flow_config *cfg)
{
	if (r == NULL || r->running)
		return -1;
	r->cfg = cfg;
	if (pthread_create(&r->thread, NULL, reserve_main, r) != 0)
		return -1;
	r->running = true;
	return 0;
}

void
nonce_reserve_free(struct nonce_reserve *r)
{
	if (r == NULL)
		return;
	if (r->running) {
		pthread_mutex_lock(&r->lock);
		r->stop = true;
		pthread_cond_broadcast(&r->wake);
		pthread_mutex_unlock(&r->lock);
		(void)pthread_join(r->thread, NULL);
	}
	OPENSSL_cleanse(r->e, sizeof(r->e));
	http_pool_free(r->pool);
	pthread_cond_destroy(&r->wake);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/* Drops the stock: attestd refused a nonce from it as unknown. */
static void
nonce_reserve_flush(struct nonce_reserve *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->n = 0;
	pthread_mutex_unlock(&r->lock);
}

/* A live nonce from the stock (malloc'ed), or NULL; either way the thread
 * learns that flows are running (it refills once the stock is low). */
static char *
nonce_reserve_take(struct nonce_reserve *r)
{
	unsigned long now = mono_us();
	char *nonce = NULL;

	if (r == NULL)
		return NULL;
	pthread_mutex_lock(&r->lock);
	while (r->n > 0 && nonce == NULL) {
		r->n--;
		if (r->e[r->n].until_us > now)
			nonce = strdup(r->e[r->n].nonce);
	}
	r->wanted = true;
	if (r->running && r->n <= NONCE_RESERVE_LOW)
		pthread_cond_signal(&r->wake);
	pthread_mutex_unlock(&r->lock);
	return nonce;
}

/*
 * The certificate table.  An extended report carries the VCEK, ASK and ARK
 * (≈ 4 KB, 5.4 KB in base64): a third of the attest request, and most of
 * what attestd parses.  attestd remembers a VCEK by chip and TCB once it has
 * verified a report with it, so with cfg->table_accepted the daemon sends the
 * table until attestd has accepted one, then asks for plain reports.  When
 * attestd answers 503 "collateral" to a report without a table (it lost its
 * cache, or the TCB changed and its KDS is out of reach), the flag is cleared
 * and the flow runs again at once with the table.
 *
 * Retries.  attestd spends the nonce on every answer, so an attest request is
 * never repeated as it was: a transient failure (no connection, 429, 5xx)
 * makes the whole flow run again, with a new nonce and a new report, after
 * the usual backoff.
 */
enum flow_again {
	AGAIN_NO = 0,
	AGAIN_NOW,   /* nonce unknown to attestd, or attestd needs the table */
	AGAIN_LATER  /* attestd unreachable or transiently failing */
};

/*
 * Steps of a flow.  use_reserve: take a nonce fetched ahead if there is one
 * (*reserved tells whether it did); *again: whether a failure of the attest
 * step is worth a new run, and when.
 */
static enum flow_step
flow_run(const struct flow_config *cfg, const char *name, unsigned long version,
	 const char *tee_pubkey_json, bool attest_only, bool use_reserve, bool *reserved,
	 enum flow_again *again, char **jwe_out, struct flow_stats *st, char *err, size_t errlen)
{
	struct flow_config one = *cfg;
	bool send_table = cfg->table_accepted == NULL ||
			  !__atomic_load_n(cfg->table_accepted, __ATOMIC_ACQUIRE);
	struct http_response resp = { 0 };
	uint8_t report_data[SNP_REPORT_DATA_LEN];
	uint8_t *report = NULL, *certs = NULL;
	size_t report_len = 0, certs_len = 0;
	char *report_b64 = NULL, *certs_b64 = NULL, *body = NULL, *nonce = NULL, *token = NULL;
	char url[2048], why[FLOW_ERR_MAX], herr[HTTP_ERR_MAX] = "";
	json_t *jwk = NULL, *doc = NULL;
	snp_error serr = { 0 };
	snp_guest *guest = NULL;
	unsigned long t0;
	enum flow_step ret;

	*reserved = false;
	*again = AGAIN_NO;
	one.http.attempts = 1; /* the attest request: see "Retries" above */
	if (!attest_only && !valid_name(name))
		return fail(FLOW_INPUT, err, errlen, "'%s' is not a secret name ([A-Za-z0-9._-], 1-128)", name);
	if ((jwk = load_transfer_key(tee_pubkey_json, err, errlen)) == NULL)
		return FLOW_INPUT;

	/* 1. A fresh, single-use nonce: one fetched ahead (nonce_reserve_take),
	 * else a challenge now. */
	t0 = mono_us();
	if (use_reserve && (nonce = nonce_reserve_take(cfg->nonces)) != NULL) {
		*reserved = true;
	} else {
		char fresh[1][NONCE_B64URL_LEN + 1];
		size_t got = 0;

		if ((ret = challenge(cfg, 1, fresh, &got, NULL, st, err, errlen)) != FLOW_OK)
			goto out;
		if ((nonce = strdup(fresh[0])) == NULL) {
			ret = fail(FLOW_CHALLENGE, err, errlen, "out of memory");
			goto out;
		}
	}
	step_done(st, 0, &t0);

	/* 2. Evidence binding that nonce and the transfer key. */
	if (nonce == NULL || binding(nonce, jwk, report_data) != 0) {
		ret = fail(FLOW_REPORT, err, errlen, "cannot compute the REPORT_DATA binding");
		goto out;
	}
	if (cfg->guests != NULL ? guest_pool_report(cfg->guests, report_data, 0, &report, &report_len,
						    send_table ? &certs : NULL,
						    send_table ? &certs_len : NULL, NULL, &serr) != SNP_OK
				: (snp_guest_open(cfg->snp_spec, &guest, &serr) != SNP_OK ||
				   snp_guest_get_report(guest, report_data, 0, &report, &report_len,
							send_table ? &certs : NULL,
							send_table ? &certs_len : NULL, &serr) != SNP_OK)) {
		ret = fail(FLOW_REPORT, err, errlen, "no attestation report: %s", serr.detail);
		goto out;
	}
	if ((report_b64 = base64(report, report_len)) == NULL ||
	    (certs_len > 0 && (certs_b64 = base64(certs, certs_len)) == NULL) ||
	    (body = attest_body(nonce, report_b64, certs_b64, jwk)) == NULL) {
		ret = fail(FLOW_REPORT, err, errlen, "cannot build the attest request (out of memory, "
						   "or the nonce is not base64url)");
		goto out;
	}
	step_done(st, 1, &t0);

	/* 3. Appraisal: a token, or the reason there is none. */
	(void)snprintf(url, sizeof(url), "%s/v1/attest", cfg->attestd_url);
	if (request(&one, url, NULL, body, &resp, st, herr, sizeof(herr)) != 0) {
		*again = AGAIN_LATER;
		ret = fail(FLOW_ATTEST, err, errlen, "attestation service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || (doc = json_loadb(resp.body, resp.body_len, 0, NULL)) == NULL ||
	    !json_is_string(json_object_get(doc, "token"))) {
		problem_detail(&resp, why, sizeof(why));
		if (*reserved && resp.status == 403 && problem_check_is(&resp, "nonce")) {
			/* attestd no longer knows it (it restarted): the rest of the
			 * stock came from the same attestd and is as stale. */
			nonce_reserve_flush(cfg->nonces);
			*again = AGAIN_NOW;
		} else if (!send_table && resp.status == 503 &&
			   problem_check_is(&resp, "collateral")) {
			__atomic_store_n(cfg->table_accepted, 0, __ATOMIC_RELEASE);
			*again = AGAIN_NOW;
		} else if (resp.status == 429 || (resp.status >= 500 && resp.status <= 599)) {
			*again = AGAIN_LATER;
		}
		ret = fail(FLOW_ATTEST, err, errlen, "attestation rejected: %s", why);
		goto out;
	}
	if (send_table && certs_len > 0 && cfg->table_accepted != NULL)
		__atomic_store_n(cfg->table_accepted, 1, __ATOMIC_RELEASE);
	token = strdup(json_string_value(json_object_get(doc, "token")));
	http_response_free(&resp);
	step_done(st, 2, &t0);
	if (attest_only) {
		if (token == NULL) {
			ret = fail(FLOW_ATTEST, err, errlen, "out of memory");
			goto out;
		}
		*jwe_out = token;
		token = NULL;
		ret = FLOW_OK;
		goto out;
	}

	/* 4. Release: the secret, encrypted to the transfer key. */
	if (version > 0)
		(void)snprintf(url, sizeof(url), "%s/v1/secrets/%s?version=%lu", cfg->provd_url, name, version);
	else
		(void)snprintf(url, sizeof(url), "%s/v1/secrets/%s", cfg->provd_url, name);
	if (token == NULL || request(cfg, url, token, NULL, &resp, st, herr, sizeof(herr)) != 0) {
		ret = fail(FLOW_RELEASE, err, errlen, "provisioning service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || resp.body == NULL || resp.body_len == 0 ||
	    strspn(resp.body, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != resp.body_len) {
		problem_detail(&resp, why, sizeof(why));
		ret = fail(FLOW_RELEASE, err, errlen, "release refused: %s", why);
		goto out;
	}
	*jwe_out = resp.body;
	resp.body = NULL;
	step_done(st, 3, &t0);
	ret = FLOW_OK;
out:
	if (token != NULL)
		OPENSSL_cleanse(token, strlen(token)); /* a bearer credential until it expires */
	free(token);
	free(nonce);
	free(body);
	free(report_b64);
	free(certs_b64);
	free(report);
	free(certs);
	json_decref(doc);
	json_decref(jwk);
	http_response_free(&resp);
	snp_guest_close(guest);
	return ret;
}

/*
 * A flow that starts with a nonce fetched ahead if there is one.  When the
 * attest step fails in a way worth another run (flow_run's *again), the flow
 * runs again from a fresh challenge: at once for a stale nonce or a missing
 * table (at most FLOW_RERUNS_NOW times), after the backoff for a transient
 * failure (cfg->http.attempts runs in all, as for any request).
 */
#define FLOW_RERUNS_NOW 2u
static enum flow_step
flow_run_fresh(const struct flow_config *cfg, const char *name, unsigned long version,
	       const char *tee_pubkey_json, bool attest_only, char **out,
	       struct flow_stats *stats, char *err, size_t errlen)
{
	struct flow_stats st = { 0 }, run;
	bool reserved = false, any_reserved = false, use_reserve = true;
	enum flow_again again = AGAIN_NO;
	unsigned now_runs = 0, later_runs = 1;
	long delay = cfg->http.backoff_ms > 0 ? cfg->http.backoff_ms : 1;
	enum flow_step r;

	for (;;) {
		memset(&run, 0, sizeof(run));
		r = flow_run(cfg, name, version, tee_pubkey_json, attest_only, use_reserve,
			     &reserved, &again, out, &run, err, errlen);
		any_reserved |= reserved;
		st.requests += run.requests;
		st.connects += run.connects;
		memcpy(st.step_us, run.step_us, sizeof(st.step_us));
		if (r != FLOW_ATTEST)
			break;
		if (again == AGAIN_NOW && now_runs < FLOW_RERUNS_NOW) {
			now_runs++;
		} else if (again == AGAIN_LATER && later_runs < cfg->http.attempts) {
			later_runs++;
			http_backoff(&cfg->http, &delay);
		} else {
			break;
		}
		use_reserve = false;
	}
	st.nonce_reserved = any_reserved;
	if (stats != NULL)
		*stats = st;
	return r;
}

enum flow_step
flow_provision(const struct flow_config *cfg, const char *name, unsigned long version,
	       const char *tee_pubkey_json, char **jwe_out, struct flow_stats *stats, char *err,
	       size_t errlen)
{
	return flow_run_fresh(cfg, name, version, tee_pubkey_json, false, jwe_out, stats, err,
			      errlen);
}

enum flow_step
flow_attest(const struct flow_config *cfg, const char *tee_pubkey_json, char **token_out,
	    struct flow_stats *stats, char *err, size_t errlen)
{
	return flow_run_fresh(cfg, NULL, 0, tee_pubkey_json, true, token_out, stats, err, errlen);
}
