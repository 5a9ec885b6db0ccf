/*
 * bench_attestd — attestations per second through attestd's HTTP API
 * (POST /v1/attest: nonce, binding, chain, P-384 signature, policy, ES256
 * token) with 1, 2 and 8 concurrent clients, against the raw P-384 report
 * verification rate on every core, measured in the same run.  Goal (issue 4):
 * >= 0.8 of the raw rate with a warm cache.
 *
 * The server runs in this process (all workers), on 127.0.0.1 plain HTTP, with
 * a test AMD-like hierarchy (tests/unit/testca.c).  Clients fetch their nonces
 * and sign their reports *before* the clock starts, so client-side P-384
 * signing does not compete with the server for the CPU during the timed part.
 *
 *   bench_attestd [--seconds S] [--clients N]
 *
 * --clients N measures only N concurrent clients (for profiling one case).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "attest/appraise.h"
#include "attest/collateral.h"
#include "attest/config.h"
#include "attest/nonce.h"
#include "attest/policy.h"
#include "attest/server.h"
#include "attest/token.h"
#include "common/hex.h"
#include "common/jcs.h"
#include "../tests/unit/testca.h"

#define TEE_JWK "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"g8MMElYJEOgXsaggM3TqYL-ldI-YDW4q7E5SptbJlwI\"," \
		"\"y\":\"d4u-Jfy-dXoMqKcgp4LQ764nM2i1_rODPUnpp-uORx8\"}"

static EVP_PKEY *vcek_key;
static uint8_t *vcek_der;
static size_t vcek_len;
static char base_url[300];
static double seconds = 1.0;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
	(void)fprintf(stderr, "bench_attestd: %s\n", what);
	exit(2);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
genoa_tcb(void)
{
	snp_tcb t = { .bootloader = 3, .tee = 0, .snp = 8, .microcode = 115 };

	return snp_tcb_encode(&t, SNP_PRODUCT_GENOA);
}

/* A version-3 Genoa report carrying `rd`, signed like the firmware. */
static void
sign_report(uint8_t out[SNP_REPORT_SIZE], const uint8_t rd[SNP_REPORT_DATA_LEN])
{
	unsigned char der[128];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const BIGNUM *r, *s;
	ECDSA_SIG *sig = NULL;
	uint8_t be[48];
	uint64_t tcb = genoa_tcb();

	memset(out, 0, SNP_REPORT_SIZE);
	put_le(out + 0x000, 3, 4);
	put_le(out + 0x008, 0x30000, 8);
	put_le(out + 0x034, 1, 4);
	put_le(out + 0x038, tcb, 8);
	memcpy(out + 0x050, rd, SNP_REPORT_DATA_LEN);
	memset(out + 0x090, 0xab, SNP_MEASUREMENT_LEN);
	put_le(out + 0x180, tcb, 8);
	out[0x188] = 0x19;
	out[0x189] = 0x11;
	memcpy(out + 0x1A0, testca_default_hwid(), SNP_CHIP_ID_LEN);
	put_le(out + 0x1E0, tcb, 8);
	put_le(out + 0x1F0, tcb, 8);
	if (md == NULL || EVP_DigestSignInit_ex(md, NULL, "SHA384", NULL, NULL, vcek_key, NULL) != 1 ||
	    EVP_DigestSign(md, der, &der_len, out, SNP_REPORT_SIGNED_SIZE) != 1 ||
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL)
		die("signing failed");
	EVP_MD_CTX_free(md);
	ECDSA_SIG_get0(sig, &r, &s);
	(void)BN_bn2binpad(r, be, 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2A0 + i] = be[47 - i];
	(void)BN_bn2binpad(s, be, 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2E8 + i] = be[47 - i];
	ECDSA_SIG_free(sig);
}

/* ------------------------------------------------------------ raw verify */

struct raw_arg {
	const uint8_t *report;
	unsigned long count;
};

static void *
raw_thread(void *p)
{
	struct raw_arg *a = p;
	snp_report *r = NULL;
	snp_cert *c = NULL;
	double end = now_s() + seconds;

	if (snp_report_parse(a->report, SNP_REPORT_SIZE, &r, NULL) != SNP_OK ||
	    snp_cert_parse(vcek_der, vcek_len, &c, NULL) != SNP_OK)
		die("raw: parse");
	while (now_s() < end) {
		if (snp_report_verify_signature(r, c, NULL) != SNP_OK)
			die("raw: verify");
		a->count++;
	}
	snp_report_free(r);
	snp_cert_free(c);
	return NULL;
}

static double
raw_rate(const uint8_t *report, unsigned threads)
{
	pthread_t th[256];
	struct raw_arg args[256];
	double t0 = now_s(), el;
	unsigned long total = 0;
	unsigned i;

	for (i = 0; i < threads; i++) {
		args[i].report = report;
		args[i].count = 0;
		(void)pthread_create(&th[i], NULL, raw_thread, &args[i]);
	}
	for (i = 0; i < threads; i++) {
		(void)pthread_join(th[i], NULL);
		total += args[i].count;
	}
	el = now_s() - t0;
	return (double)total / el;
}

/* ------------------------------------------------------------ in-process */

struct inproc_arg {
	const uint8_t *report;
	collateral *coll;
	policy_holder *holder;
	token_signer *signer;
	unsigned long count;
};

/* appraise() + token_issue() without HTTP: what one attestation costs the server. */
static void *
inproc_thread(void *p)
{
	struct inproc_arg *a = p;
	double end = now_s() + seconds;
	json_t *tee = json_loads(TEE_JWK, 0, NULL);

	while (now_s() < end) {
		appraise_input in = { 0 };
		appraisal *ap = NULL;
		const policy *pol = policy_holder_get(a->holder);
		token_params tp = { 0 };
		char *jwt = NULL, jti[TOKEN_JTI_LEN + 1];

		in.report = a->report;
		in.report_len = SNP_REPORT_SIZE;
		if (appraise(a->coll, pol, &in, &ap) != 0 || ap->status != EAR_AFFIRMING)
			die("in-process appraisal failed");
		tp.issuer = "bench";
		tp.now = time(NULL);
		tp.lifetime = 300;
		tp.tee_pubkey = tee;
		tp.appraisal = ap;
		if (token_issue(a->signer, &tp, &jwt, jti) != 0)
			die("token");
		free(jwt);
		appraisal_free(ap);
		policy_holder_put(a->holder, pol);
		a->count++;
	}
	json_decref(tee);
	return NULL;
}

static double
inproc_rate(struct inproc_arg *proto, unsigned threads)
{
	pthread_t th[256];
	struct inproc_arg args[256];
	double t0 = now_s();
	unsigned long total = 0;
	unsigned i;

	for (i = 0; i < threads; i++) {
		args[i] = *proto;
		args[i].count = 0;
		(void)pthread_create(&th[i], NULL, inproc_thread, &args[i]);
	}
	for (i = 0; i < threads; i++) {
		(void)pthread_join(th[i], NULL);
		total += args[i].count;
	}
	return (double)total / (now_s() - t0);
}

/* ------------------------------------------------------------ clients */

/*
 * The timed requests go through a minimal keep-alive HTTP/1.1 client (one
 * write, reads until the Content-Length is in), the way load generators such
 * as wrk do: libcurl's per-request work (URL parsing, handle state, poll)
 * cost 30+ us of the same two cores the server needs.  Set-up (challenges)
 * still uses libcurl.
 */
/* Sizes of the last exchange on the wire, for the round-trip floor. */
static size_t last_request_len, last_answer_len;

struct raw_conn {
	int fd;
	char buf[16384];
};

static int
raw_connect(struct raw_conn *c)
{
	struct sockaddr_in sa = { 0 };
	const char *colon = strrchr(base_url, ':');
	char *end = NULL;
	unsigned long port;
	int one = 1;

	c->fd = -1;
	if (colon == NULL || (port = strtoul(colon + 1, &end, 10)) == 0 || port > 65535 ||
	    end == colon + 1)
		return -1;
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	return 0;
}

/* POST `body` to `path`; the status, or -1.  *resp_body points into c->buf. */
static int
raw_post(struct raw_conn *c, const char *path, const char *body, const char **resp_body)
{
	char head[256];
	size_t blen = strlen(body), have = 0, need = 0, hl;
	int n = snprintf(head, sizeof(head),
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
			 "Content-Length: %zu\r\n\r\n",
			 path, blen);
	struct iovec iov[2] = { { head, (size_t)n }, { (void *)(uintptr_t)body, blen } };
	char *eoh = NULL, *cl, *end = NULL;
	long status;

	if (n <= 0 || (size_t)n >= sizeof(head) || writev(c->fd, iov, 2) != (ssize_t)(n + (int)blen))
		return -1;
	for (;;) {
		ssize_t r = read(c->fd, c->buf + have, sizeof(c->buf) - 1 - have);

		if (r <= 0)
			return -1;
		have += (size_t)r;
		c->buf[have] = '\0';
		if (eoh == NULL && (eoh = strstr(c->buf, "\r\n\r\n")) != NULL) {
			if ((cl = strcasestr(c->buf, "\r\nContent-Length:")) == NULL || cl > eoh)
				return -1;
			hl = (size_t)(eoh + 4 - c->buf);
			need = hl + strtoul(cl + 17, NULL, 10);
			if (need >= sizeof(c->buf))
				return -1;
		}
		if (eoh != NULL && have >= need)
			break;
		if (have >= sizeof(c->buf) - 1)
			return -1;
	}
	if (have != need || strncmp(c->buf, "HTTP/1.1 ", 9) != 0 ||
	    (status = strtol(c->buf + 9, &end, 10)) < 100 || status > 599 || end != c->buf + 12)
		return -1;
	*resp_body = eoh + 4;
	last_request_len = (size_t)n + blen;
	last_answer_len = have;
	return (int)status;
}

/* ------------------------------------------------------------ round trip */

/*
 * The round trip that one client cannot avoid: a request of the size of an
 * attestation and an answer of the size of a token, exchanged between two
 * threads over loopback TCP with blocking calls and no processing at all.  Per
 * attestation, 1 client waits for the server's work plus at least this, so
 * its ratio to the raw verify rate is bounded by in-process / (in-process +
 * round trip) whatever the HTTP layer does.
 */
struct echo_arg {
	int lfd;
	size_t req, ans;
	unsigned rounds;
	double work_s; /* CPU kept busy before each answer, as the server would */
};

static int
full_io(int fd, char *buf, size_t n, bool out)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = out ? write(fd, buf + done, n - done) : read(fd, buf + done, n - done);

		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void *
echo_thread(void *p)
{
	struct echo_arg *a = p;
	static char buf[16384];
	int fd = accept(a->lfd, NULL, NULL), one = 1;

	if (fd < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
		die("round trip: accept");
	for (unsigned i = 0; i < a->rounds; i++) {
		double t0;

		if (full_io(fd, buf, a->req, false) != 0)
			die("round trip: echo");
		for (t0 = now_s(); now_s() - t0 < a->work_s;)
			;
		if (full_io(fd, buf, a->ans, true) != 0)
			die("round trip: echo");
	}
	close(fd);
	return NULL;
}

/* Median round trip in seconds over `rounds` exchanges, less `work_s`. */
static double
round_trip_s(size_t req, size_t ans, unsigned rounds, double work_s)
{
	struct sockaddr_in sa = { 0 };
	socklen_t sl = sizeof(sa);
	struct echo_arg a = { -1, req, ans, rounds, work_s };
	static char buf[16384];
	static double t[20000];
	pthread_t th;
	int fd, one = 1;

	if (req > sizeof(buf) || ans > sizeof(buf) || rounds == 0 || rounds > 20000)
		die("round trip: sizes");
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((a.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(a.lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(a.lfd, 1) != 0 ||
	    getsockname(a.lfd, (struct sockaddr *)&sa, &sl) != 0 ||
	    pthread_create(&th, NULL, echo_thread, &a) != 0)
		die("round trip: listen");
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		die("round trip: connect");
	memset(buf, 'x', sizeof(buf));
	for (unsigned i = 0; i < rounds; i++) {
		double t0 = now_s();

		if (full_io(fd, buf, req, true) != 0 || full_io(fd, buf, ans, false) != 0)
			die("round trip: exchange");
		t[i] = now_s() - t0;
	}
	close(fd);
	(void)pthread_join(th, NULL);
	close(a.lfd);
	qsort(t, rounds, sizeof(t[0]), cmp_double);
	return t[rounds / 2] - work_s;
}

struct resp {
	char buf[8192];
	size_t len;
};

static size_t
on_body(char *d, size_t sz, size_t n, void *u)
{
	struct resp *r = u;
	size_t k = sz * n;

	if (k > sizeof(r->buf) - 1 - r->len)
		k = sizeof(r->buf) - 1 - r->len;
	memcpy(r->buf + r->len, d, k);
	r->len += k;
	r->buf[r->len] = 0;
	return sz * n;
}

static long
post(CURL *h, const char *path, const char *body, struct resp *r)
{
	char url[400];
	long code = 0;

	(void)snprintf(url, sizeof(url), "%s%s", base_url, path);
	r->len = 0;
	r->buf[0] = 0;
	(void)curl_easy_setopt(h, CURLOPT_URL, url);
	(void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
	(void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	(void)curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(h) != CURLE_OK)
		return -1;
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

struct client {
	pthread_t th;
	size_t jobs;
	char **bodies;
	unsigned long ok, bad;
	double cpu; /* CPU seconds this client used in the timed part */
	pthread_barrier_t *start;
};

static double
thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
prepare(struct client *c, CURL *h)
{
	json_t *tee = json_loads(TEE_JWK, 0, NULL);
	struct resp r;
	size_t i;

	if ((c->bodies = calloc(c->jobs, sizeof(char *))) == NULL || tee == NULL)
		die("out of memory");
	for (i = 0; i < c->jobs; i++) {
		json_t *ch, *bind, *body;
		const char *nonce;
		char *canon = NULL, b64[2 * SNP_REPORT_SIZE];
		size_t clen;
		uint8_t rd[SNP_REPORT_DATA_LEN] = { 0 }, rep[SNP_REPORT_SIZE];
		unsigned n = 0;

		if (post(h, "/v1/challenge", NULL, &r) != 200 ||
		    (ch = json_loads(r.buf, 0, NULL)) == NULL ||
		    (nonce = json_string_value(json_object_get(ch, "nonce"))) == NULL)
			die("challenge failed");
		bind = json_pack("{s:s, s:O}", "nonce", nonce, "tee-pubkey", tee);
		if (bind == NULL || jcs_serialize(bind, &canon, &clen) != 0 ||
		    EVP_Digest(canon, clen, rd, &n, EVP_sha384(), NULL) != 1)
			die("binding failed");
		sign_report(rep, rd);
		(void)EVP_EncodeBlock((unsigned char *)b64, rep, SNP_REPORT_SIZE);
		body = json_pack("{s:s, s:s, s:O}", "nonce", nonce, "report", b64, "tee_pubkey", tee);
		if (body == NULL || (c->bodies[i] = json_dumps(body, JSON_COMPACT)) == NULL)
			die("body failed");
		json_decref(body);
		json_decref(bind);
		json_decref(ch);
		free(canon);
	}
	json_decref(tee);
}

static void *
client_thread(void *p)
{
	struct client *c = p;
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	struct raw_conn *rc = calloc(1, sizeof(*rc));
	const char *answer;
	size_t i;

	if (h == NULL || rc == NULL)
		die("out of memory");
	(void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	(void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	prepare(c, h);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	if (raw_connect(rc) != 0)
		die("connect");
	(void)pthread_barrier_wait(c->start); /* everyone prepared */
	(void)pthread_barrier_wait(c->start); /* clock started */
	c->cpu = thread_cpu_s();
	for (i = 0; i < c->jobs; i++) {
		if (raw_post(rc, "/v1/attest", c->bodies[i], &answer) == 200 &&
		    strncmp(answer, "{\"token\":\"ey", 12) == 0)
			c->ok++;
		else
			c->bad++;
		free(c->bodies[i]);
	}
	c->cpu = thread_cpu_s() - c->cpu;
	free(c->bodies);
	close(rc->fd);
	free(rc);
	return NULL;
}

/* Attestations per second; *elapsed and *client_cpu (seconds) for the
 * CPU-share figure. */
static double
process_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
attest_rate(unsigned clients, size_t total_jobs, unsigned long *bad, double *elapsed,
	    double *client_cpu, double *proc_cpu)
{
	double p0;
	struct client cs[16];
	pthread_barrier_t b;
	double t0, el;
	unsigned long ok = 0;
	unsigned i;

	(void)pthread_barrier_init(&b, NULL, clients + 1);
	for (i = 0; i < clients; i++) {
		memset(&cs[i], 0, sizeof(cs[i]));
		cs[i].jobs = total_jobs / clients;
		cs[i].start = &b;
		(void)pthread_create(&cs[i].th, NULL, client_thread, &cs[i]);
	}
	(void)pthread_barrier_wait(&b);
	t0 = now_s();
	p0 = process_cpu_s();
	(void)pthread_barrier_wait(&b);
	*bad = 0;
	*client_cpu = 0;
	for (i = 0; i < clients; i++) {
		(void)pthread_join(cs[i].th, NULL);
		ok += cs[i].ok;
		*bad += cs[i].bad;
		*client_cpu += cs[i].cpu;
	}
	el = now_s() - t0;
	*elapsed = el;
	*proc_cpu = process_cpu_s() - p0;
	(void)pthread_barrier_destroy(&b);
	return (double)ok / el;
}

static void
write_pem(const char *dir, const char *name, X509 *x)
{
	char path[1024];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((f = fopen(path, "w")) == NULL || PEM_write_X509(f, x) != 1 || fclose(f) != 0)
		die("cannot write roots");
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/bench-attestd-XXXXXX", roots[600], state[600], polpath[600];
	char err[1024], meas[2 * SNP_MEASUREMENT_LEN + 1], poltext[512];
	uint8_t m[SNP_MEASUREMENT_LEN], rd[SNP_REPORT_DATA_LEN] = { 0 }, rep[SNP_REPORT_SIZE];
	static unsigned client_counts[] = { 1, 2, 8 };
	size_t n_counts = sizeof(client_counts) / sizeof(client_counts[0]);
	attestd_config cfg;
	attestd_services svc = { 0 };
	collateral_opts co = { 0 };
	attestd_server *srv = NULL;
	policy *pol = NULL;
	policy_holder *holder = NULL;
	nonce_store *nonces = NULL;
	collateral *coll = NULL;
	token_signer *signer = NULL;
	testca *ca = NULL;
	testca_leaf o;
	double raw1, rawn, inproc1, rate, el, ccpu, pcpu, left, rtt;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long bad;
	size_t i, jobs;
	FILE *f;

	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--seconds") == 0 && a + 1 < argc) {
			char *end = NULL;

			seconds = strtod(argv[++a], &end);
			if (end == NULL || *end != '\0' || seconds <= 0 || seconds > 60)
				die("--seconds: expected 0 < S <= 60");
		} else if (strcmp(argv[a], "--clients") == 0 && a + 1 < argc) {
			char *end = NULL;
			unsigned long n = strtoul(argv[++a], &end, 10);

			if (end == NULL || *end != '\0' || n < 1 || n > 16)
				die("--clients: expected 1 <= N <= 16");
			client_counts[0] = (unsigned)n;
			n_counts = 1;
		} else {
			(void)fprintf(stderr, "usage: bench_attestd [--seconds S] [--clients N]\n");
			return 2;
		}
	}
	if (cpus < 1)
		cpus = 1;
	if (cpus > 64)
		cpus = 64;
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	(void)snprintf(roots, sizeof(roots), "%s/roots", dir);
	(void)snprintf(state, sizeof(state), "%s/state", dir);
	(void)snprintf(polpath, sizeof(polpath), "%s/policy.json", dir);
	if (mkdir(roots, 0700) != 0 || mkdir(state, 0700) != 0)
		die("mkdir");
	if (testca_new("Genoa", time(NULL) - 86400, time(NULL) + 86400 * 30, &ca) != 0)
		die("testca");
	testca_leaf_defaults(&o, ca, SNP_ROLE_VCEK);
	if (testca_issue_leaf(&o, &vcek_der, &vcek_len, &vcek_key) != 0)
		die("VCEK");
	write_pem(roots, "ark_genoa.pem", ca->ark);
	write_pem(roots, "ask_genoa.pem", ca->ask);
	memset(m, 0xab, sizeof(m));
	hex_encode(m, sizeof(m), meas);
	(void)snprintf(poltext, sizeof(poltext),
		       "{\"measurements\":[\"%s\"],\"min_tcb\":{\"genoa\":{\"snp\":8}}}", meas);
	if ((f = fopen(polpath, "w")) == NULL || fputs(poltext, f) < 0 || fclose(f) != 0)
		die("policy");
	/* The VCEK is pre-cached as the KDS would have delivered it (warm cache). */
	{
		char vdir[900], hw[2 * SNP_CHIP_ID_LEN + 1], vpath[1200];

		hex_encode(testca_default_hwid(), SNP_CHIP_ID_LEN, hw);
		(void)snprintf(vdir, sizeof(vdir), "%s/cache/vcek/genoa/%s", state, hw);
		(void)snprintf(vpath, sizeof(vpath), "mkdir -p '%s'", vdir);
		if (system(vpath) != 0)
			die("mkdir cache");
		(void)snprintf(vpath, sizeof(vpath), "%s/%016llx.der", vdir,
			       (unsigned long long)genoa_tcb());
		if ((f = fopen(vpath, "wb")) == NULL || fwrite(vcek_der, 1, vcek_len, f) != vcek_len ||
		    fclose(f) != 0)
			die("cache");
	}
	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.listen_host, sizeof(cfg.listen_host), "127.0.0.1");
	cfg.plain_http = true;
	(void)snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", state);
	(void)snprintf(cfg.issuer, sizeof(cfg.issuer), "bench");
	cfg.token_lifetime = 300;
	cfg.nonce_ttl = 600;
	cfg.nonce_cap = 1000000;
	cfg.workers = 0;
	cfg.max_body = 262144;
	co.offline = true;
	co.extra_roots_dir = roots;
	co.no_builtin_pins = true;
	(void)snprintf(cfg.cache_dir, sizeof(cfg.cache_dir), "%s/cache", state);
	co.cache_dir = cfg.cache_dir;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    policy_load(polpath, &pol, err, sizeof(err)) != 0 ||
	    policy_holder_new(pol, &holder) != 0 ||
	    nonce_store_new(cfg.nonce_cap, cfg.nonce_ttl, &nonces) != NONCE_OK ||
	    collateral_new(&co, &coll, err, sizeof(err)) != 0 ||
	    token_signer_open(state, 600, &signer, err, sizeof(err)) != 0)
		die(err[0] ? err : "setup");
	attestd_log_quiet = 1;
	svc.cfg = &cfg;
	svc.policies = holder;
	svc.nonces = nonces;
	svc.coll = coll;
	svc.signer = signer;
	if (attestd_server_start(&svc, &srv, base_url, sizeof(base_url), err, sizeof(err)) != 0)
		die(err);

	sign_report(rep, rd);
	raw1 = raw_rate(rep, 1);
	rawn = raw_rate(rep, (unsigned)cpus);
	(void)printf("raw P-384 report verify: %.0f/s on 1 thread, %.0f/s on %ld threads (all cores)\n",
		     raw1, rawn, cpus);
	{
		struct inproc_arg ia = { rep, coll, holder, signer, 0 };
		double rn;

		inproc1 = inproc_rate(&ia, 1);
		rn = inproc_rate(&ia, (unsigned)cpus);

		(void)printf("in-process appraisal + token (no HTTP): %.0f/s on 1 thread = %.2f of raw; "
			     "%.0f/s on %ld threads = %.2f of raw x all cores\n",
			     inproc1, inproc1 / raw1, rn, cpus, rn / rawn);
	}
	for (i = 0; i < n_counts; i++) {
		unsigned c = client_counts[i];
		double expect = raw1 * (double)(c < (unsigned)cpus ? c : (unsigned)cpus);

		/* Enough jobs for about `seconds` at the raw rate of the cores in use. */
		jobs = (size_t)(expect * seconds);
		if (jobs < 50u * c)
			jobs = 50u * c;
		rate = attest_rate(c, jobs, &bad, &el, &ccpu, &pcpu);
		/* The clients (libcurl, TCP, JSON) run on the same cores as the
		 * server: what is left for it is wall x cores - their CPU time. */
		left = el * (double)cpus - ccpu;
		(void)printf("attestd /v1/attest, %u client%s: %.0f attestations/s = %.2f of raw x %u "
			     "core%s, %.2f of raw x all %ld cores; clients used %.2f of %ld cores, "
			     "%.2f of raw x the CPU left to the server; the process used %.2f cores%s\n",
			     c, c == 1 ? "" : "s", rate, rate / expect,
			     c < (unsigned)cpus ? c : (unsigned)cpus, c == 1 ? "" : "s", rate / rawn, cpus,
			     ccpu / el, cpus, left > 0 ? rate * el / (raw1 * left) : 0.0, pcpu / el,
			     bad ? " (FAILED REQUESTS)" : "");
		if (bad)
			(void)fprintf(stderr, "bench_attestd: %lu attestations failed\n", bad);
		if (c == 1 && last_request_len > 0) {
			double rtt0 = round_trip_s(last_request_len, last_answer_len, 2000, 0);

			rtt = round_trip_s(last_request_len, last_answer_len, 1000, 1.0 / inproc1);
			(void)printf("  loopback round trip alone (%zu-byte request, %zu-byte answer, "
				     "blocking TCP): %.0f us back to back, %.0f us beyond the wait when "
				     "the answer takes as long as an in-process attestation; so 1 client "
				     "can reach at most %.2f of raw x 1 core (in-process cost + round "
				     "trip, nothing for HTTP)\n",
				     last_request_len, last_answer_len, rtt0 * 1e6, rtt * 1e6,
				     1.0 / (1.0 / inproc1 + rtt) / raw1);
		}
	}
	attestd_server_stop(srv);
	token_signer_free(signer);
	collateral_free(coll);
	nonce_store_free(nonces);
	policy_holder_free(holder);
	testca_free(ca);
	EVP_PKEY_free(vcek_key);
	free(vcek_der);
	curl_global_cleanup();
	{
		char cmd[700];

		(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			(void)fprintf(stderr, "bench_attestd: could not remove %s\n", dir);
	}
	return 0;
}
