/*
 * bench_caseb — complete Case B flows through the real daemons, driven through
 * libvhsm (no process start per flow), against the flow's crypto floor
 * measured in process in the same run (docs/bench.md, "bench_caseb").
 *
 * One flow = vhsm_sign on a key name vhsmd does not hold yet: vhsmd holds the
 * request, makes a transfer key, nitrided attests (challenge, report, attest)
 * and fetches the release from provd, vhsmd decrypts and installs it and
 * signs.  Every flow uses its own name, so every flow is a full Case B.  Each
 * signature is checked against the public key provd was given (outside the
 * timing): a flow that answered with the wrong key is a failed benchmark.
 *
 * bench/bench_caseb.py starts the daemons (HTTPS on loopback) and runs this.
 *
 * usage: bench_caseb --socket VHSMD_SOCK --prefix NAME_PREFIX --warmup W --flows N
 *                    --pubkey PEM --tls-cert PEM --tls-key PEM --tls-ca PEM
 *                    [--nitrided-log FILE] [--seconds S]
 * Names used: PREFIX0 … PREFIX(W-1) warm-up, then N flows on 1 client, then N
 * on 4 clients (the figures), then N on 8 clients: enough flows in
 * flight that neither vCPU waits for the other's run queue, which shows what
 * the flows cost apart from where the kernel placed them (docs/bench.md,
 * round 7).  --nitrided-log: nitrided's stderr, from which the TLS
 * handshakes the timed flows made are counted (else 3 per flow are assumed,
 * one per HTTPS request).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "nitride/vhsm.h"

#define MAX_FLOWS 10000
#define MAX_CLIENTS 16
#define NAME_MAX_LEN 128
#define REPORT_SIGNED_LEN 0x2A0 /* the report bytes the firmware signs */
#define TOKEN_LEN 900           /* about the size of an EAR token's signing input */
#define SECRET_LEN 200          /* the JWE's plaintext: a P-256 key as JSON */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------ the flows */

struct run {
	const char *sock, *prefix;
	size_t first, n;      /* names PREFIX<first> … PREFIX<first+n-1> */
	atomic_size_t next;   /* the next flow to start (0 … n-1) */
	double *lat;          /* per flow, seconds */
	uint8_t **sig;        /* per flow, DER ECDSA */
	size_t *sig_len;
	atomic_int failed;
	char why[300];
	pthread_mutex_t lock;
};

static void
flow_message(const char *name, char *msg, size_t len)
{
	(void)snprintf(msg, len, "bench_caseb: signed by %s after its Case B flow", name);
}

static void *
client_main(void *arg)
{
	struct run *r = arg;
	vhsm_client *c = NULL;
	int rc;

	if ((rc = vhsm_connect(r->sock, &c)) != VHSM_OK) {
		pthread_mutex_lock(&r->lock);
		(void)snprintf(r->why, sizeof(r->why), "connect %s: %s", r->sock, vhsm_strerror(rc));
		pthread_mutex_unlock(&r->lock);
		r->failed = 1;
		return NULL;
	}
	for (;;) {
		size_t i = atomic_fetch_add(&r->next, 1);
		char name[NAME_MAX_LEN], msg[256];
		double t0;

		if (i >= r->n || r->failed)
			break;
		(void)snprintf(name, sizeof(name), "%s%zu", r->prefix, r->first + i);
		flow_message(name, msg, sizeof(msg));
		t0 = now_s();
		rc = vhsm_sign(c, name, VHSM_ALG_ECDSA_DER, VHSM_HASH_SHA256, (const uint8_t *)msg,
			       strlen(msg), &r->sig[i], &r->sig_len[i], NULL);
		r->lat[i] = now_s() - t0;
		if (rc != VHSM_OK) {
			pthread_mutex_lock(&r->lock);
			(void)snprintf(r->why, sizeof(r->why), "flow %s: %s (%s)", name, vhsm_strerror(rc),
				       vhsm_last_message());
			pthread_mutex_unlock(&r->lock);
			r->failed = 1;
			break;
		}
	}
	vhsm_close(c);
	return NULL;
}

struct result {
	double flows_per_s, p50, p99;
	size_t n;
};

/* Every signature must verify with the key provd released. */
static int
check_signatures(const struct run *r, EVP_PKEY *pub)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		char name[NAME_MAX_LEN], msg[256];
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		int ok;

		(void)snprintf(name, sizeof(name), "%s%zu", r->prefix, r->first + i);
		flow_message(name, msg, sizeof(msg));
		ok = ctx != NULL && EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pub, NULL) == 1 &&
		     EVP_DigestVerify(ctx, r->sig[i], r->sig_len[i], (const uint8_t *)msg, strlen(msg)) == 1;
		EVP_MD_CTX_free(ctx);
		if (!ok) {
			fprintf(stderr, "bench_caseb: the signature of flow %s does not verify with the provisioned key\n",
				name);
			return -1;
		}
	}
	return 0;
}

static int
run_flows(const char *sock, const char *prefix, size_t first, size_t n, unsigned clients,
	  EVP_PKEY *pub, struct result *res)
{
	struct run r = { .sock = sock, .prefix = prefix, .first = first, .n = n };
	pthread_t th[MAX_CLIENTS];
	unsigned started = 0, k;
	double t0, wall;
	int ret = -1;
	size_t i;

	pthread_mutex_init(&r.lock, NULL);
	r.lat = calloc(n, sizeof(*r.lat));
	r.sig = calloc(n, sizeof(*r.sig));
	r.sig_len = calloc(n, sizeof(*r.sig_len));
	if (r.lat == NULL || r.sig == NULL || r.sig_len == NULL)
		goto out;
	t0 = now_s();
	for (k = 0; k < clients; k++) {
		if (pthread_create(&th[k], NULL, client_main, &r) != 0) {
			r.failed = 1;
			(void)snprintf(r.why, sizeof(r.why), "cannot start a client thread");
			break;
		}
		started++;
	}
	for (k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	wall = now_s() - t0;
	if (r.failed) {
		fprintf(stderr, "bench_caseb: %s\n", r.why);
		goto out;
	}
	if (pub != NULL && check_signatures(&r, pub) != 0)
		goto out;
	qsort(r.lat, n, sizeof(double), cmp_d);
	res->n = n;
	res->flows_per_s = (double)n / wall;
	res->p50 = r.lat[n / 2];
	res->p99 = r.lat[n - 1 - n / 100];
	ret = 0;
out:
	for (i = 0; r.sig != NULL && i < n; i++)
		vhsm_buf_free(r.sig[i], r.sig_len[i]);
	free(r.sig);
	free(r.sig_len);
	free(r.lat);
	pthread_mutex_destroy(&r.lock);
	return ret;
}

/* ------------------------------------------------------------ the floor */

struct floor_keys {
	EVP_PKEY *p384, *p256, *peer256;
	uint8_t report[REPORT_SIGNED_LEN], report_sig[120];
	size_t report_sig_len;
	uint8_t token[TOKEN_LEN], token_sig[80];
	size_t token_sig_len;
	uint8_t cek_in[SECRET_LEN];
	SSL_CTX *sctx, *cctx;
};

static int
sign(EVP_PKEY *k, const char *md, const uint8_t *m, size_t ml, uint8_t *sig, size_t *sl)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = ctx != NULL && EVP_DigestSignInit_ex(ctx, NULL, md, NULL, NULL, k, NULL) == 1 &&
		EVP_DigestSign(ctx, sig, sl, m, ml) == 1 ? 0 : -1;

	EVP_MD_CTX_free(ctx);
	return r;
}

static int
verify(EVP_PKEY *k, const char *md, const uint8_t *m, size_t ml, const uint8_t *sig, size_t sl)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = ctx != NULL && EVP_DigestVerifyInit_ex(ctx, NULL, md, NULL, NULL, k, NULL) == 1 &&
		EVP_DigestVerify(ctx, sig, sl, m, ml) == 1 ? 0 : -1;

	EVP_MD_CTX_free(ctx);
	return r;
}

/* The firmware signs the report (P-384, SHA-384). */
static int
op_report_sign(struct floor_keys *f)
{
	uint8_t sig[120];
	size_t sl = sizeof(sig);

	return sign(f->p384, "SHA384", f->report, sizeof(f->report), sig, &sl);
}

/* attestd verifies it (the VCEK chain is cached: not counted). */
static int
op_report_verify(struct floor_keys *f)
{
	return verify(f->p384, "SHA384", f->report, sizeof(f->report), f->report_sig, f->report_sig_len);
}

/* attestd signs the EAR token; vhsmd signs for the application (the held request). */
static int
op_es256_sign(struct floor_keys *f)
{
	uint8_t sig[80];
	size_t sl = sizeof(sig);

	return sign(f->p256, "SHA256", f->token, sizeof(f->token), sig, &sl);
}

/* provd verifies the token. */
static int
op_es256_verify(struct floor_keys *f)
{
	return verify(f->p256, "SHA256", f->token, sizeof(f->token), f->token_sig, f->token_sig_len);
}

/* vhsmd makes the transfer key. */
static int
op_keygen(struct floor_keys *f)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	(void)f;
	EVP_PKEY_free(k);
	return k != NULL ? 0 : -1;
}

static int
ecdh(EVP_PKEY *mine, EVP_PKEY *peer, uint8_t z[32])
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
	size_t zl = 32;
	int r = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
		EVP_PKEY_derive(ctx, z, &zl) == 1 && zl == 32 ? 0 : -1;

	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* ECDH-ES's Concat KDF (one SHA-256 block) and A256GCM over the secret. */
static int
kdf_gcm(const uint8_t z[32], const uint8_t *in, uint8_t *out, int enc)
{
	uint8_t buf[4 + 32 + 64], cek[32], iv[12] = { 0 }, tag[16] = { 0 };
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	unsigned int kl = 0;
	int n = 0, r = -1;

	memset(buf, 0, sizeof(buf));
	buf[3] = 1;
	memcpy(buf + 4, z, 32);
	if (c == NULL || EVP_Digest(buf, sizeof(buf), cek, &kl, EVP_sha256(), NULL) != 1 ||
	    EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, cek, iv, enc) != 1 ||
	    EVP_CipherUpdate(c, out, &n, in, SECRET_LEN) != 1)
		goto out;
	if (enc)
		r = EVP_CipherFinal_ex(c, out + n, &n) == 1 &&
		    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1 ? 0 : -1;
	else
		r = 0; /* the tag would not match this synthetic ciphertext; the work is the same */
out:
	OPENSSL_cleanse(cek, sizeof(cek));
	EVP_CIPHER_CTX_free(c);
	return r;
}

/* provd: ephemeral key, ECDH with the transfer key, KDF, encrypt. */
static int
op_jwe_encrypt(struct floor_keys *f)
{
	EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	uint8_t z[32], out[SECRET_LEN + 16];
	int r = eph != NULL && ecdh(eph, f->peer256, z) == 0 && kdf_gcm(z, f->cek_in, out, 1) == 0 ? 0 : -1;

	EVP_PKEY_free(eph);
	return r;
}

/* vhsmd: ECDH with the ephemeral key, KDF, decrypt. */
static int
op_jwe_decrypt(struct floor_keys *f)
{
	uint8_t z[32], out[SECRET_LEN + 16];

	return ecdh(f->p256, f->peer256, z) == 0 && kdf_gcm(z, f->cek_in, out, 0) == 0 ? 0 : -1;
}

/* One full TLS handshake as nitrided and the services make it: the services'
 * certificate and key, the client verifying the chain and the IP address,
 * OpenSSL's default groups and suites on both sides, over a memory BIO pair. */
static int
op_tls_handshake(struct floor_keys *f)
{
	SSL *c = SSL_new(f->cctx), *s = SSL_new(f->sctx);
	BIO *cb = NULL, *sb = NULL;
	int i, cd = 0, sd = 0, r = -1;

	if (c == NULL || s == NULL || BIO_new_bio_pair(&cb, 0, &sb, 0) != 1)
		goto out;
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	for (i = 0; i < 16 && !(cd && sd); i++) {
		int rc = SSL_do_handshake(c), rs = SSL_do_handshake(s);

		cd = rc == 1;
		sd = rs == 1;
		if ((rc != 1 && SSL_get_error(c, rc) != SSL_ERROR_WANT_READ) ||
		    (rs != 1 && SSL_get_error(s, rs) != SSL_ERROR_WANT_READ))
			goto out;
	}
	if (cd && sd && SSL_get_verify_result(c) == X509_V_OK && !SSL_session_reused(c))
		r = 0;
out:
	SSL_free(c);
	SSL_free(s);
	return r;
}

static int
tls_contexts(struct floor_keys *f, const char *cert, const char *key, const char *ca)
{
	X509_VERIFY_PARAM *vp;

	if ((f->sctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(f->sctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(f->sctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(f->sctx, key, SSL_FILETYPE_PEM) != 1 ||
	    (f->cctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(f->cctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(f->cctx, ca, NULL) != 1 ||
	    (vp = SSL_CTX_get0_param(f->cctx)) == NULL || X509_VERIFY_PARAM_set1_ip_asc(vp, "127.0.0.1") != 1)
		return -1;
	(void)SSL_CTX_set_options(f->sctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_verify(f->cctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(f->cctx, SSL_SESS_CACHE_OFF);
	return 0;
}

/*
 * Seconds per call: five slices of seconds/5, each a loop openssl-speed style;
 * the fastest slice counts.  The machine is shared: load from elsewhere only
 * ever adds time, and the floor is what the work costs at least.
 */
static int
per_op(int (*fn)(struct floor_keys *), struct floor_keys *f, double seconds, double *out)
{
	double best = 0;
	int slice;

	if (fn(f) != 0)
		return -1;
	for (slice = 0; slice < 5; slice++) {
		double t0 = now_s(), t;
		size_t n = 0;

		do {
			if (fn(f) != 0)
				return -1;
			n++;
		} while ((t = now_s()) - t0 < seconds / 5);
		if (slice == 0 || (t - t0) / (double)n < best)
			best = (t - t0) / (double)n;
	}
	*out = best;
	return 0;
}

/* ------------------------------------------------------------ handshakes */

/*
 * nitrided logs "provision NAME: done (R requests, C new connections;
 * challenge A us, report B us, attest C us, release D us)"; every new
 * connection to an https URL is one TLS handshake.  Sums C over names
 * PREFIX<first> … PREFIX<first+n-1> and gives the median of each step's time
 * (steps_us[4]); -1 when the file or a flow's line is missing.
 */
static long
read_nitrided_log(const char *log, const char *prefix, size_t first, size_t n, double steps_us[4])
{
	static const char *const step_names[4] = { "challenge ", "report ", "attest ", "release " };
	FILE *f = fopen(log, "r");
	double *st[4] = { NULL, NULL, NULL, NULL };
	char line[1024];
	size_t found = 0, k;
	long sum = 0;

	for (k = 0; k < 4; k++)
		if ((st[k] = calloc(n, sizeof(double))) == NULL)
			found = n + 1;
	while (f != NULL && found <= n && fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "provision "), *q;
		unsigned long idx, conns;
		size_t pl = strlen(prefix);
		char *end;

		if (p == NULL || strncmp(p + 10, prefix, pl) != 0)
			continue;
		idx = strtoul(p + 10 + pl, &end, 10);
		if (end == p + 10 + pl || strncmp(end, ": done", 6) != 0 || idx < first || idx >= first + n ||
		    (q = strstr(end, " requests, ")) == NULL)
			continue;
		conns = strtoul(q + 11, &end, 10);
		if (strncmp(end, " new connection", 15) != 0 || found == n)
			continue;
		for (k = 0; k < 4; k++) {
			const char *s = strstr(end, step_names[k]);

			st[k][found] = s != NULL ? strtod(s + strlen(step_names[k]), NULL) : 0;
		}
		sum += (long)conns;
		found++;
	}
	if (f != NULL)
		fclose(f);
	for (k = 0; k < 4; k++) {
		if (found == n) {
			qsort(st[k], n, sizeof(double), cmp_d);
			steps_us[k] = st[k][n / 2];
		}
		free(st[k]);
	}
	return f != NULL && found == n ? sum : -1;
}

/* ------------------------------------------------------------ main */

static const char usage[] =
	"usage: bench_caseb --socket VHSMD_SOCK --prefix P --warmup W --flows N --pubkey PEM\n"
	"                   --tls-cert PEM --tls-key PEM --tls-ca PEM [--nitrided-log FILE]\n"
	"                   [--seconds S]\n";

int
main(int argc, char **argv)
{
	const char *sock = NULL, *prefix = NULL, *pubkey = NULL, *cert = NULL, *key = NULL, *ca = NULL,
		   *nlog = NULL;
	size_t warmup = 2, flows = 24;
	double seconds = 0.3;
	struct floor_keys f = { 0 };
	struct result r1 = { 0 }, r4 = { 0 }, r8 = { 0 };
	EVP_PKEY *pub = NULL;
	FILE *pf = NULL;
	double steps1[4] = { 0 }, steps4[4] = { 0 }, steps8[4] = { 0 };
	long hs1, hs4, hs8;
	int i, ret = 1;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			goto usage;
		i++;
		if (strcmp(a, "--socket") == 0) sock = v;
		else if (strcmp(a, "--prefix") == 0) prefix = v;
		else if (strcmp(a, "--warmup") == 0) warmup = strtoul(v, NULL, 10);
		else if (strcmp(a, "--flows") == 0) flows = strtoul(v, NULL, 10);
		else if (strcmp(a, "--pubkey") == 0) pubkey = v;
		else if (strcmp(a, "--tls-cert") == 0) cert = v;
		else if (strcmp(a, "--tls-key") == 0) key = v;
		else if (strcmp(a, "--tls-ca") == 0) ca = v;
		else if (strcmp(a, "--nitrided-log") == 0) nlog = v;
		else if (strcmp(a, "--seconds") == 0) seconds = strtod(v, NULL);
		else goto usage;
	}
	if (sock == NULL || prefix == NULL || pubkey == NULL || cert == NULL || key == NULL || ca == NULL ||
	    flows < 4 || flows > MAX_FLOWS || warmup > MAX_FLOWS || !(seconds > 0 && seconds < 60) ||
	    strlen(prefix) > 64)
		goto usage;
	if ((pf = fopen(pubkey, "r")) == NULL || (pub = PEM_read_PUBKEY(pf, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "bench_caseb: %s: not a PEM public key\n", pubkey);
		goto out;
	}

	/* The flows first (the floor's loops would otherwise share the cores with them). */
	if (warmup > 0 && run_flows(sock, prefix, 0, warmup, 1, pub, &r1) != 0)
		goto out;
	if (run_flows(sock, prefix, warmup, flows, 1, pub, &r1) != 0 ||
	    run_flows(sock, prefix, warmup + flows, flows, 4, pub, &r4) != 0 ||
	    run_flows(sock, prefix, warmup + 2 * flows, flows, 8, pub, &r8) != 0)
		goto out;
	hs1 = nlog != NULL ? read_nitrided_log(nlog, prefix, warmup, flows, steps1) : -1;
	hs4 = nlog != NULL ? read_nitrided_log(nlog, prefix, warmup + flows, flows, steps4) : -1;
	hs8 = nlog != NULL ? read_nitrided_log(nlog, prefix, warmup + 2 * flows, flows, steps8) : -1;
	if (nlog != NULL && (hs1 < 0 || hs4 < 0 || hs8 < 0)) {
		fprintf(stderr, "bench_caseb: %s: no \"done (… new connections)\" line for every flow\n", nlog);
		goto out;
	}

	/* The floor, in process. */
	{
		double c_rsign, c_rver, c_sign, c_ver, c_kg, c_enc, c_dec, c_tls, base, hs_per_flow, fl1, fl4,
			fl8;
		size_t sl;

		if ((f.p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384")) == NULL ||
		    (f.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
		    (f.peer256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
		    RAND_bytes(f.report, sizeof(f.report)) != 1 || RAND_bytes(f.token, sizeof(f.token)) != 1 ||
		    RAND_bytes(f.cek_in, sizeof(f.cek_in)) != 1)
			goto crypto_fail;
		sl = sizeof(f.report_sig);
		if (sign(f.p384, "SHA384", f.report, sizeof(f.report), f.report_sig, &sl) != 0)
			goto crypto_fail;
		f.report_sig_len = sl;
		sl = sizeof(f.token_sig);
		if (sign(f.p256, "SHA256", f.token, sizeof(f.token), f.token_sig, &sl) != 0)
			goto crypto_fail;
		f.token_sig_len = sl;
		if (tls_contexts(&f, cert, key, ca) != 0)
			goto crypto_fail;
		if (per_op(op_report_sign, &f, seconds, &c_rsign) != 0 ||
		    per_op(op_report_verify, &f, seconds, &c_rver) != 0 ||
		    per_op(op_es256_sign, &f, seconds, &c_sign) != 0 ||
		    per_op(op_es256_verify, &f, seconds, &c_ver) != 0 ||
		    per_op(op_keygen, &f, seconds, &c_kg) != 0 ||
		    per_op(op_jwe_encrypt, &f, seconds, &c_enc) != 0 ||
		    per_op(op_jwe_decrypt, &f, seconds, &c_dec) != 0 ||
		    per_op(op_tls_handshake, &f, seconds, &c_tls) != 0)
			goto crypto_fail;
		/* Per flow: report sign + verify, token sign + verify, the application's
		 * sign, transfer key, JWE encrypt + decrypt, then the handshakes. */
		base = c_rsign + c_rver + 2 * c_sign + c_ver + c_kg + c_enc + c_dec;
		printf("floor  report P-384 ECDSA sign (firmware)     %8.3f ms\n", c_rsign * 1e3);
		printf("floor  report P-384 ECDSA verify (attestd)    %8.3f ms\n", c_rver * 1e3);
		printf("floor  ES256 sign x2 (EAR token, app's sign)  %8.3f ms\n", 2 * c_sign * 1e3);
		printf("floor  ES256 verify (token, provd)            %8.3f ms\n", c_ver * 1e3);
		printf("floor  P-256 keygen (transfer key, vhsmd)     %8.3f ms\n", c_kg * 1e3);
		printf("floor  JWE ECDH-ES+A256GCM encrypt (provd)    %8.3f ms\n", c_enc * 1e3);
		printf("floor  JWE ECDH-ES+A256GCM decrypt (vhsmd)    %8.3f ms\n", c_dec * 1e3);
		printf("floor  TLS full handshake (each)              %8.3f ms\n", c_tls * 1e3);
		if (nlog == NULL) {
			hs1 = hs4 = hs8 = 3 * (long)flows;
			printf("floor  (no nitrided log: 3 handshakes per flow assumed)\n");
		}
		hs_per_flow = (double)hs1 / (double)flows;
		fl1 = base + hs_per_flow * c_tls;
		fl4 = base + (double)hs4 / (double)flows * c_tls;
		fl8 = base + (double)hs8 / (double)flows * c_tls;
		printf("floor  without TLS                            %8.3f ms\n", base * 1e3);
		printf("caseb  TLS handshakes per flow: %.2f (1 client), %.2f (4 clients)\n", hs_per_flow,
		       (double)hs4 / (double)flows);
		printf("caseb  1 client : %7.1f flows/s  p50 %7.2f ms  p99 %7.2f ms  floor %.3f ms  "
		       "p50/floor %5.2fx (goal <= 2)  throughput/(2/floor) %.3f (goal >= 0.5)\n",
		       r1.flows_per_s, r1.p50 * 1e3, r1.p99 * 1e3, fl1 * 1e3, r1.p50 / fl1,
		       r1.flows_per_s * fl1 / 2);
		printf("caseb  4 clients: %7.1f flows/s  p50 %7.2f ms  p99 %7.2f ms  floor %.3f ms  "
		       "p50/floor %5.2fx             throughput/(2/floor) %.3f (goal >= 0.5)\n",
		       r4.flows_per_s, r4.p50 * 1e3, r4.p99 * 1e3, fl4 * 1e3, r4.p50 / fl4,
		       r4.flows_per_s * fl4 / 2);
		printf("caseb  8 clients: %7.1f flows/s  p50 %7.2f ms  p99 %7.2f ms  floor %.3f ms  "
		       "p50/floor %5.2fx             throughput/(2/floor) %.3f (no vCPU left idle)\n",
		       r8.flows_per_s, r8.p50 * 1e3, r8.p99 * 1e3, fl8 * 1e3, r8.p50 / fl8,
		       r8.flows_per_s * fl8 / 2);
		if (nlog != NULL)
			for (i = 0; i < 3; i++) {
				static const char *const label[3] = { "1 client ", "4 clients", "8 clients" };
				const double *sp = i == 0 ? steps1 : i == 1 ? steps4 : steps8;
				const struct result *rr = i == 0 ? &r1 : i == 1 ? &r4 : &r8;

				printf("hops   %s, nitrided's medians: challenge %.2f ms, report %.2f ms, attest "
				       "%.2f ms, release %.2f ms; the rest of the p50 (vhsmd, client) %.2f ms\n",
				       label[i], sp[0] / 1e3, sp[1] / 1e3, sp[2] / 1e3, sp[3] / 1e3,
				       (rr->p50 * 1e6 - sp[0] - sp[1] - sp[2] - sp[3]) / 1e3);
			}
		printf("caseb  %zu flows each; every signature verified with the provisioned key\n", flows);
	}
	ret = 0;
	goto out;
crypto_fail:
	fprintf(stderr, "bench_caseb: floor measurement failed: %s\n",
		ERR_reason_error_string(ERR_get_error()));
	goto out;
usage:
	fputs(usage, stderr);
	ret = 2;
out:
	if (pf != NULL)
		fclose(pf);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(f.p384);
	EVP_PKEY_free(f.p256);
	EVP_PKEY_free(f.peer256);
	SSL_CTX_free(f.sctx);
	SSL_CTX_free(f.cctx);
	return ret;
}
