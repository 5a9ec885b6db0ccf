#include "nitride/http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sink {
	char *buf;
	size_t len, cap;
	bool overflow;
};

static size_t
sink_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	char *nb;

	if (nmemb != 0 && n / nmemb != size)
		return 0;
	if (s->cap - s->len < n) {
		s->overflow = true;
		return 0; /* aborts the transfer */
	}
	if ((nb = realloc(s->buf, s->len + n + 1)) == NULL)
		return 0;
	s->buf = nb;
	memcpy(s->buf + s->len, data, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return n;
}

struct http_pool {
	pthread_mutex_t lock;
	CURL *idle[HTTP_POOL_MAX]; /* most recently used last: its connections are the warmest */
	size_t n;
};

void
http_global_init(void)
{
	(void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

int
http_pool_new(http_pool **out)
{
	http_pool *p = calloc(1, sizeof(*p));

	if (p == NULL || pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void
http_pool_free(http_pool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		curl_easy_cleanup(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* An idle handle (its options reset; connections and TLS sessions kept), or a new one. */
static CURL *
handle_take(http_pool *p)
{
	CURL *c = NULL;

	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		if (p->n > 0)
			c = p->idle[--p->n];
		pthread_mutex_unlock(&p->lock);
	}
	return c != NULL ? c : curl_easy_init();
}

/* Back into the pool after a complete exchange; after a transport error the
 * handle and its connections are dropped. */
static void
handle_give(http_pool *p, CURL *c, bool reusable)
{
	if (p != NULL && reusable) {
		/* The request's options point into the caller's stack (headers, buffers). */
		curl_easy_reset(c);
		pthread_mutex_lock(&p->lock);
		if (p->n < HTTP_POOL_MAX) {
			p->idle[p->n++] = c;
			c = NULL;
		}
		pthread_mutex_unlock(&p->lock);
	}
	curl_easy_cleanup(c);
}

void
http_response_free(struct http_response *resp)
{
	if (resp == NULL)
		return;
	free(resp->body);
	resp->body = NULL;
	resp->body_len = 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* delay * [0.5, 1.5): jitter keeps many agents from retrying in lockstep. */
static long
jitter(long delay)
{
	unsigned char b = 0;

	if (RAND_bytes(&b, 1) != 1)
		return delay;
	return delay / 2 + (delay * b) / 256;
}

static bool
transient_status(long status)
{
	return status == 429 || (status >= 500 && status <= 599);
}

int
http_request(const struct http_opts *o, const char *url, const char *bearer,
	     const char *json_body, struct http_response *resp, char *err, size_t errlen)
{
	long delay = o->backoff_ms;
	unsigned attempt;
	int ret = -1;

	memset(resp, 0, sizeof(*resp));
	for (attempt = 1; attempt <= o->attempts; attempt++) {
		struct curl_slist *headers = NULL;
		struct sink s = { .cap = o->max_body };
		char auth[8192], curl_err[CURL_ERROR_SIZE] = "";
		curl_off_t retry_after = 0;
		long connects = 0;
		CURLcode rc;
		CURL *c;

		resp->attempts = attempt;
		if ((c = handle_take(o->pool)) == NULL) {
			(void)snprintf(err, errlen, "%s: cannot start a request (out of memory)", url);
			break;
		}
		(void)curl_easy_setopt(c, CURLOPT_URL, url);
		(void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
		(void)curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
		(void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		(void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
		(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
		(void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
		(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
		(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
		(void)curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
		if (o->ca_bundle != NULL)
			(void)curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_bundle);
		if (bearer != NULL &&
		    (size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer) < sizeof(auth))
			headers = curl_slist_append(headers, auth);
		if (json_body != NULL) {
			headers = curl_slist_append(headers, "Content-Type: application/json");
			(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
		} else {
			(void)curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
		}
		(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
		rc = curl_easy_perform(c);
		OPENSSL_cleanse(auth, sizeof(auth)); /* held a bearer token */
		if (curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
			resp->connects += (unsigned)connects;
		if (rc == CURLE_OK) {
			(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
			(void)curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &retry_after);
		} else if (s.overflow) {
			(void)snprintf(err, errlen, "%s: answer larger than %zu bytes", url, o->max_body);
		} else {
			(void)snprintf(err, errlen, "%s: %s", url,
				       curl_err[0] != '\0' ? curl_err : curl_easy_strerror(rc));
		}
		handle_give(o->pool, c, rc == CURLE_OK);
		curl_slist_free_all(headers);
		free(resp->body);
		resp->body = s.buf;
		resp->body_len = s.len;
		if (rc == CURLE_OK && !transient_status(resp->status)) {
			ret = 0;
			break;
		}
		if (s.overflow)
			break; /* a server that sends too much will not send less next time */
		if (rc == CURLE_OK) {
			ret = 0; /* an answer, if the retries run out */
			(void)snprintf(err, errlen, "%s: HTTP %ld", url, resp->status);
		}
		if (attempt == o->attempts)
			break;
		if (retry_after > 0)
			delay = retry_after * 1000 > o->max_backoff_ms ? o->max_backoff_ms :
									 (long)retry_after * 1000;
		http_backoff(o, &delay);
	}
	return ret;
}

void
http_backoff(const struct http_opts *o, long *delay_ms)
{
	sleep_ms(jitter(*delay_ms));
	*delay_ms = *delay_ms * 2 > o->max_backoff_ms ? o->max_backoff_ms : *delay_ms * 2;
}
