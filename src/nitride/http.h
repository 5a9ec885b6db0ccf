/*
 * http — the agent's HTTPS client (libcurl): bounded bodies, timeouts on every
 * request, and retries with exponential backoff and jitter for transient
 * failures only (connection errors, 429 and 5xx, honouring Retry-After).  A
 * definite answer (2xx, or a 4xx such as a policy denial) is never retried.
 *
 * With an http_pool, connections are kept open between requests (HTTP
 * keep-alive): a long-lived agent verifies each service's certificate once per
 * connection instead of once per request.  libcurl reuses a connection only
 * for the same scheme, host, port and TLS settings (CA bundle, verification),
 * and opens a new one (a full handshake, or a resumed TLS session) when the
 * server has closed it.
 */
#ifndef NITRIDE_AGENT_HTTP_H
#define NITRIDE_AGENT_HTTP_H

#include <stddef.h>

#define HTTP_ERR_MAX 512
#define HTTP_POOL_MAX 8 /* idle handles kept; more concurrent requests get their own */

/* Idle libcurl handles with their open connections, shared by threads. */
typedef struct http_pool http_pool;

struct http_opts {
	long timeout_ms;        /* whole request, per attempt */
	unsigned attempts;      /* >= 1 */
	long backoff_ms;        /* first retry delay; doubled each time, with jitter */
	long max_backoff_ms;    /* cap for one delay (also caps Retry-After) */
	size_t max_body;        /* larger answers are an error */
	const char *ca_bundle;  /* PEM file for HTTPS, NULL: the system store */
	http_pool *pool;        /* keep connections open between requests; NULL: one per request */
};

struct http_response {
	long status;            /* HTTP status of the last attempt, 0 if none completed */
	char *body;             /* malloc'ed, NUL-terminated; caller frees */
	size_t body_len;
	unsigned attempts;      /* how many were made */
	unsigned connects;      /* new connections opened (each a TLS handshake over https) */
};

void http_global_init(void);

/* A pool for struct http_opts.pool.  Returns 0, or -1 when out of memory. */
__attribute__((warn_unused_result)) int http_pool_new(http_pool **out);

/* Closes the idle connections.  No request may be using the pool.  NULL-safe. */
void http_pool_free(http_pool *p);

/*
 * One request with the retry policy above.  `bearer` (optional) becomes an
 * Authorization header; `json_body` (optional) is POSTed as application/json.
 * Returns 0 when a response arrived (any status; see resp->status), -1 when
 * none did after every attempt (transport error in err[]).  resp->body is
 * set in both cases when a body arrived.
 */
__attribute__((warn_unused_result)) int http_request(const struct http_opts *o, const char *url,
						     const char *bearer, const char *json_body,
						     struct http_response *resp, char *err,
						     size_t errlen);

void http_response_free(struct http_response *resp);

/* Sleep *delay_ms with jitter ([0.5, 1.5) of it), then double *delay_ms up
 * to o->max_backoff_ms: the pause between two attempts of anything. */
void http_backoff(const struct http_opts *o, long *delay_ms);

#endif
