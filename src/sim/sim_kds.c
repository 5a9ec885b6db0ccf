/* The simulated KDS (sim_kds.h). */
#include "sim/sim_kds.h"

#include "common/hex.h"
#include "sim/sim_log.h"
#include "sim/sim_num.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#define KDS_ERR_MAX 256

struct sim_kds {
	struct event_base *base;
	struct evhttp *http;
	struct sim_state *st;
	snp_product product;
	uint8_t chip_id[SNP_CHIP_ID_LEN];
	unsigned port;
	unsigned long requests;
	/* Armed faults: the next `fault_count` KDS answers get `fault_status` (0: the real
	 * answer) and wait `fault_delay_ms` first. */
	unsigned fault_count;
	int fault_status;
	unsigned fault_retry_after;
	unsigned fault_delay_ms;
};

/* An answer waiting for its delay. */
struct pending {
	struct evhttp_request *req;
	struct event *timer;
	int code;
	struct evbuffer *body;
};

static const char *
reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

static void
pending_free(struct pending *p)
{
	if (p == NULL)
		return;
	if (p->timer != NULL)
		event_free(p->timer);
	if (p->body != NULL)
		evbuffer_free(p->body);
	free(p);
}

static void
pending_conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	pending_free(arg); /* the request is gone; drop the delayed answer */
}

static void
pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(p->req);

	(void)fd;
	(void)what;
	if (evcon != NULL)
		evhttp_connection_set_closecb(evcon, NULL, NULL);
	evhttp_send_reply(p->req, p->code, reason(p->code), p->body);
	pending_free(p);
}

/* Send now, or after delay_ms.  `body` (may be NULL) is consumed. */
static void
reply(struct sim_kds *kds, struct evhttp_request *req, int code, struct evbuffer *body,
      unsigned delay_ms)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct pending *p = NULL;
	struct timeval tv;

	sim_log(SIM_LOG_INFO, "kds: %s %s -> %d%s",
		evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "GET",
		evhttp_request_get_uri(req), code, delay_ms > 0 ? " (delayed)" : "");
	if (delay_ms > 0 && evcon != NULL && (p = calloc(1, sizeof(*p))) != NULL) {
		p->req = req;
		p->code = code;
		p->body = body;
		body = NULL;
		if ((p->timer = evtimer_new(kds->base, pending_fire, p)) != NULL) {
			tv.tv_sec = delay_ms / 1000;
			tv.tv_usec = (long)(delay_ms % 1000) * 1000;
			if (evtimer_add(p->timer, &tv) == 0) {
				evhttp_connection_set_closecb(evcon, pending_conn_closed, p);
				return;
			}
		}
		body = p->body; /* could not delay: answer now */
		p->body = NULL;
		pending_free(p);
	}
	evhttp_send_reply(req, code, reason(code), body);
	if (body != NULL)
		evbuffer_free(body);
}

static void
reply_text(struct sim_kds *kds, struct evhttp_request *req, int code, const char *text,
	   unsigned delay_ms)
{
	struct evbuffer *b = evbuffer_new();

	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				"text/plain; charset=utf-8");
	if (b != NULL)
		(void)evbuffer_add_printf(b, "%s\n", text);
	reply(kds, req, code, b, delay_ms);
}

static void
reply_bytes(struct sim_kds *kds, struct evhttp_request *req, const char *ctype, const uint8_t *data,
	    size_t len, unsigned delay_ms)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL || evbuffer_add(b, data, len) != 0) {
		if (b != NULL)
			evbuffer_free(b);
		reply_text(kds, req, 500, "out of memory", delay_ms);
		return;
	}
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	reply(kds, req, 200, b, delay_ms);
}

/* Parse the VCEK query into a TCB.  Returns 0, or -1 with a message. */
static int
parse_spl_query(const char *query, snp_product p, uint64_t *tcb, char *msg, size_t msglen)
{
	static const char *const names[] = { "fmcSPL", "blSPL", "teeSPL", "snpSPL", "ucodeSPL" };
	struct evkeyvalq q;
	struct evkeyval *kv;
	uint64_t v[5] = { 0 };
	unsigned seen = 0;
	snp_tcb t;
	int i, r = -1;

	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
		(void)sim_fail(msg, msglen, "malformed query string");
		goto out;
	}
	TAILQ_FOREACH(kv, &q, next) {
		for (i = 0; i < 5 && strcmp(kv->key, names[i]) != 0; i++)
			;
		if (i == 5) {
			(void)sim_fail(msg, msglen, "unknown query parameter '%.32s'", kv->key);
			goto out;
		}
		if (i == 0 && p != SNP_PRODUCT_TURIN) {
			(void)sim_fail(msg, msglen, "fmcSPL is for Turin only");
			goto out;
		}
		if (seen & (1u << i)) {
			(void)sim_fail(msg, msglen, "%s given twice", names[i]);
			goto out;
		}
		if (sim_parse_dec(kv->value, 255, &v[i]) != 0) {
			(void)sim_fail(msg, msglen, "%s must be a decimal 0..255", names[i]);
			goto out;
		}
		seen |= 1u << i;
	}
	for (i = p == SNP_PRODUCT_TURIN ? 0 : 1; i < 5; i++) {
		if (!(seen & (1u << i))) {
			(void)sim_fail(msg, msglen, "%s is missing", names[i]);
			goto out;
		}
	}
	memset(&t, 0, sizeof(t));
	t.fmc = (uint8_t)v[0], t.bootloader = (uint8_t)v[1], t.tee = (uint8_t)v[2];
	t.snp = (uint8_t)v[3], t.microcode = (uint8_t)v[4];
	*tcb = snp_tcb_encode(&t, p);
	r = 0;
out:
	evhttp_clear_headers(&q);
	return r;
}

static void
serve_vcek(struct sim_kds *kds, struct evhttp_request *req, const char *hwid_hex, const char *query,
	   unsigned delay)
{
	size_t want = kds->product == SNP_PRODUCT_TURIN ? SNP_HWID_LEN_TURIN : SNP_CHIP_ID_LEN;
	uint8_t hwid[SNP_CHIP_ID_LEN], *der = NULL;
	char msg[KDS_ERR_MAX];
	uint64_t tcb = 0;
	size_t len = 0;

	if (strlen(hwid_hex) != 2 * want || sim_parse_hex(hwid_hex, hwid, want) != 0) {
		(void)snprintf(msg, sizeof(msg), "hwid must be %zu hex digits for %s", 2 * want,
			       snp_product_kds_name(kds->product));
		reply_text(kds, req, 400, msg, delay);
		return;
	}
	if (parse_spl_query(query, kds->product, &tcb, msg, sizeof(msg)) != 0) {
		reply_text(kds, req, 400, msg, delay);
		return;
	}
	if (CRYPTO_memcmp(hwid, kds->chip_id, want) != 0) {
		reply_text(kds, req, 404, "unknown hwid (not the simulated chip)", delay);
		return;
	}
	if (sim_state_leaf(kds->st, kds->product, SNP_ROLE_VCEK, kds->chip_id, tcb, &der, &len, NULL,
			   msg, sizeof(msg)) != 0) {
		sim_log(SIM_LOG_ERROR, "kds: %s", msg);
		reply_text(kds, req, 500, "cannot issue the VCEK", delay);
		return;
	}
	reply_bytes(kds, req, "application/pkix-cert", der, len, delay);
	free(der);
}

static void
serve_chain(struct sim_kds *kds, struct evhttp_request *req, bool vlek, unsigned delay)
{
	uint8_t *a = NULL, *b = NULL, *both = NULL;
	size_t alen = 0, blen = 0;
	char msg[KDS_ERR_MAX];

	if (sim_state_ca_cert(kds->st, kds->product, vlek ? SNP_ROLE_ASVK : SNP_ROLE_ASK, true, &a,
			      &alen, msg, sizeof(msg)) != 0 ||
	    sim_state_ca_cert(kds->st, kds->product, SNP_ROLE_ARK, true, &b, &blen, msg, sizeof(msg)) != 0 ||
	    (both = malloc(alen + blen)) == NULL) {
		reply_text(kds, req, 500, "cannot read the certificate chain", delay);
		goto out;
	}
	memcpy(both, a, alen);
	memcpy(both + alen, b, blen);
	reply_bytes(kds, req, "application/x-pem-file", both, alen + blen, delay);
out:
	free(a);
	free(b);
	free(both);
}

static void
serve_crl(struct sim_kds *kds, struct evhttp_request *req, unsigned delay)
{
	uint8_t *der = NULL;
	size_t len = 0;
	char msg[KDS_ERR_MAX];

	if (sim_state_crl(kds->st, kds->product, &der, &len, msg, sizeof(msg)) != 0) {
		sim_log(SIM_LOG_ERROR, "kds: %s", msg);
		reply_text(kds, req, 500, "cannot issue the CRL", delay);
		return;
	}
	reply_bytes(kds, req, "application/pkix-crl", der, len, delay);
	free(der);
}

/* POST /_sim/faults?status=&count=&retry_after=&delay_ms= */
static void
serve_faults(struct sim_kds *kds, struct evhttp_request *req, const char *query)
{
	struct evkeyvalq q;
	struct evkeyval *kv;
	uint64_t status = 0, count = 1, retry = 1, delay = 0, v;
	bool has_status = false, has_delay = false;
	char msg[KDS_ERR_MAX];
	struct evbuffer *b;

	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0) {
		reply_text(kds, req, 400, "malformed query string", 0);
		goto out;
	}
	TAILQ_FOREACH(kv, &q, next) {
		if (strcmp(kv->key, "status") == 0 && sim_parse_dec(kv->value, 999, &v) == 0 &&
		    (v == 429 || v == 503)) {
			status = v, has_status = true;
		} else if (strcmp(kv->key, "count") == 0 &&
			   sim_parse_dec(kv->value, SIM_KDS_MAX_FAULTS, &v) == 0) {
			count = v;
		} else if (strcmp(kv->key, "retry_after") == 0 &&
			   sim_parse_dec(kv->value, SIM_KDS_MAX_RETRY_AFTER, &v) == 0) {
			retry = v;
		} else if (strcmp(kv->key, "delay_ms") == 0 &&
			   sim_parse_dec(kv->value, SIM_KDS_MAX_DELAY_MS, &v) == 0) {
			delay = v, has_delay = true;
		} else {
			(void)snprintf(msg, sizeof(msg),
				       "bad parameter '%.32s': status=429|503, count=0..%d, "
				       "retry_after=0..%d, delay_ms=0..%d",
				       kv->key, SIM_KDS_MAX_FAULTS, SIM_KDS_MAX_RETRY_AFTER,
				       SIM_KDS_MAX_DELAY_MS);
			reply_text(kds, req, 400, msg, 0);
			goto out;
		}
	}
	if (!has_status && !has_delay && count != 0) {
		reply_text(kds, req, 400, "give status and/or delay_ms (or count=0 to disarm)", 0);
		goto out;
	}
	kds->fault_count = (unsigned)count;
	kds->fault_status = (int)status;
	kds->fault_retry_after = (unsigned)retry;
	kds->fault_delay_ms = (unsigned)delay;
	sim_log(SIM_LOG_INFO, "kds: faults armed: next %u answers status %d delay %u ms",
		kds->fault_count, kds->fault_status, kds->fault_delay_ms);
	(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	if ((b = evbuffer_new()) != NULL)
		(void)evbuffer_add_printf(b, "{\"armed\": %u, \"status\": %d, \"delay_ms\": %u}\n",
					  kds->fault_count, kds->fault_status, kds->fault_delay_ms);
	reply(kds, req, 200, b, 0);
out:
	evhttp_clear_headers(&q);
}

static void
handle(struct evhttp_request *req, void *arg)
{
	struct sim_kds *kds = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char seg[3][160], msg[KDS_ERR_MAX];
	const char *p, *slash;
	unsigned delay = 0;
	int nseg = 0, status = 0;
	bool vlek;
	snp_product prod;

	if (path == NULL) {
		reply_text(kds, req, 400, "no path", 0);
		return;
	}
	if (strcmp(path, "/_sim/faults") == 0) {
		if (cmd != EVHTTP_REQ_POST)
			reply_text(kds, req, 405, "use POST", 0);
		else
			serve_faults(kds, req, query);
		return;
	}
	if (strcmp(path, "/_sim/requests") == 0) {
		struct evbuffer *b = evbuffer_new();

		(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
					"application/json");
		if (b != NULL)
			(void)evbuffer_add_printf(b, "{\"requests\": %lu}\n", kds->requests);
		reply(kds, req, 200, b, 0);
		return;
	}
	if (strncmp(path, "/vcek/v1/", 9) != 0 && strncmp(path, "/vlek/v1/", 9) != 0) {
		reply_text(kds, req, 404, "not found", 0);
		return;
	}
	/* A KDS request: counted, and subject to armed faults. */
	kds->requests++;
	if (kds->fault_count > 0) {
		kds->fault_count--;
		status = kds->fault_status;
		delay = kds->fault_delay_ms;
	}
	if (cmd != EVHTTP_REQ_GET) {
		reply_text(kds, req, 405, "use GET", delay);
		return;
	}
	if (status != 0) {
		if (status == 429) {
			(void)snprintf(msg, sizeof(msg), "%u", kds->fault_retry_after);
			(void)evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", msg);
		}
		reply_text(kds, req, status, status == 429 ? "rate limited (simulated)"
							   : "unavailable (simulated)", delay);
		return;
	}
	vlek = path[2] == 'l';
	/* Split what follows "/v?ek/v1/" into at most three segments. */
	for (p = path + 9; *p != '\0' && nseg < 3; nseg++) {
		size_t n;

		slash = strchr(p, '/');
		n = slash != NULL ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || n >= sizeof(seg[0]))
			break;
		memcpy(seg[nseg], p, n);
		seg[nseg][n] = '\0';
		p = slash != NULL ? slash + 1 : p + n;
	}
	if (nseg != 2 || *p != '\0') {
		reply_text(kds, req, 404, "not found", delay);
		return;
	}
	prod = SNP_PRODUCT_UNKNOWN;
	for (int i = SNP_PRODUCT_MILAN; i < SNP_PRODUCT_COUNT; i++) {
		if (strcmp(seg[0], snp_product_kds_name((snp_product)i)) == 0)
			prod = (snp_product)i;
	}
	if (prod == SNP_PRODUCT_UNKNOWN || prod != kds->product) {
		(void)snprintf(msg, sizeof(msg), "unknown product '%.32s' (this KDS simulates %s)",
			       seg[0], snp_product_kds_name(kds->product));
		reply_text(kds, req, 404, msg, delay);
		return;
	}
	if (strcmp(seg[1], "cert_chain") == 0)
		serve_chain(kds, req, vlek, delay);
	else if (strcmp(seg[1], "crl") == 0)
		serve_crl(kds, req, delay);
	else if (!vlek)
		serve_vcek(kds, req, seg[1], query, delay);
	else
		reply_text(kds, req, 404, "not found (VLEKs come from the certificate table)", delay);
}

/* "127.0.0.1:PORT" (IPv4 loopback only). */
static int
parse_listen(const char *s, char addr[INET_ADDRSTRLEN], unsigned *port)
{
	const char *colon = strrchr(s, ':');
	struct in_addr in;
	uint64_t v;
	size_t n;

	if (colon == NULL || (n = (size_t)(colon - s)) == 0 || n >= INET_ADDRSTRLEN)
		return -1;
	memcpy(addr, s, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1 || (ntohl(in.s_addr) >> 24) != 127 ||
	    sim_parse_dec(colon + 1, 65535, &v) != 0)
		return -1;
	*port = (unsigned)v;
	return 0;
}

int
sim_kds_start(struct event_base *base, const char *listen, struct sim_state *st,
	      const struct sim_fw *fw, struct sim_kds **out, char *err, size_t errlen)
{
	struct sim_kds *kds = NULL;
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	char addr[INET_ADDRSTRLEN] = "127.0.0.1";
	unsigned port = 0;
	int r = -1;

	if (listen != NULL && parse_listen(listen, addr, &port) != 0)
		return sim_fail(err, errlen, "--kds-listen %s: expected 127.x.x.x:PORT (loopback only)", listen);
	if ((kds = calloc(1, sizeof(*kds))) == NULL)
		return sim_fail(err, errlen, "out of memory");
	kds->base = base;
	kds->st = st;
	kds->product = sim_fw_launch(fw)->product;
	memcpy(kds->chip_id, sim_fw_launch(fw)->chip_id, SNP_CHIP_ID_LEN);
	if ((kds->http = evhttp_new(base)) == NULL) {
		(void)sim_fail(err, errlen, "evhttp_new failed");
		goto out;
	}
	evhttp_set_max_headers_size(kds->http, SIM_KDS_MAX_HEADERS);
	evhttp_set_max_body_size(kds->http, SIM_KDS_MAX_BODY);
	evhttp_set_timeout(kds->http, 30);
	evhttp_set_allowed_methods(kds->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(kds->http, handle, kds);
	if ((bs = evhttp_bind_socket_with_handle(kds->http, addr, (ev_uint16_t)port)) == NULL) {
		(void)sim_fail(err, errlen, "KDS: cannot listen on %s:%u", addr, port);
		goto out;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &salen) != 0) {
		(void)sim_fail(err, errlen, "KDS: getsockname failed");
		goto out;
	}
	kds->port = ntohs(sa.sin_port);
	*out = kds;
	kds = NULL;
	r = 0;
out:
	sim_kds_free(kds);
	return r;
}

unsigned
sim_kds_port(const struct sim_kds *kds)
{
	return kds->port;
}

unsigned long
sim_kds_requests(const struct sim_kds *kds)
{
	return kds->requests;
}

void
sim_kds_free(struct sim_kds *kds)
{
	if (kds == NULL)
		return;
	if (kds->http != NULL)
		evhttp_free(kds->http);
	free(kds);
}
