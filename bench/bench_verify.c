/*
 * bench_verify — what full report verification costs next to the one
 * operation it cannot avoid, a P-384 ECDSA verify.
 *
 *   bench_verify [--seconds S] [--rounds N] [--vectors DIR] [--json]
 *
 * Modes, all over the same three real reports (Milan, Genoa, Turin) in turn:
 *   bare      EVP_DigestVerifyInit_ex(SHA-384) + EVP_DigestVerify of the
 *             report's signature (DER, built once) over its first 0x2A0
 *             bytes with the VCEK's public key: the floor.
 *   cached    snp_report_parse of the raw bytes + snp_verify against one
 *             shared snp_trust (signer cache warm) with the VCEK pre-parsed:
 *             a verifier service's cost per request.
 *   uncached  a fresh snp_trust per operation, the product's ARK and ASK
 *             parsed from memory and added, the VCEK DER parsed, then the
 *             report parsed and verified: nothing reused, no file I/O.
 *
 * Each round gives every mode S seconds on 1 and on 2 threads, cut into
 * short slices that cycle through all of them so that machine noise hits
 * every mode alike.  Each round's ops/s is divided by the bare ops/s of the
 * same round and thread count; the median of those over N rounds is the
 * ratio.  Every result is checked: a failed verify stops the run.
 * docs/bench.md explains how to read the output.
 *
 * Exit status: 0 done; 1 a verification failed, vectors are missing or
 * OpenSSL broke; 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <nitride/snp.h>

#include "common/fileio.h"

#ifndef BENCH_VECTORS_DEFAULT
#define BENCH_VECTORS_DEFAULT "../shared/vectors"
#endif

#define EXIT_FAILED 1
#define EXIT_USAGE 2

#define FILE_CAP (1u << 20)
#define P384_LEN 48u
#define SIG_R_OFFSET 0x2A0u
#define SIG_S_OFFSET 0x2E8u

#define MAX_THREADS 2
#define MAX_ROUNDS 99
#define SLICE_SECONDS 0.25 /* interleaving granularity within a round */

/* One real report per product, verified with its VCEK at "now". */
static const struct {
	const char *name;
	snp_product product;
} cases[] = {
	{ "milan-v2-gosevguest", SNP_PRODUCT_MILAN },
	{ "genoa-v5-routex", SNP_PRODUCT_GENOA },
	{ "turin-v5-oak", SNP_PRODUCT_TURIN },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

enum mode { MODE_BARE, MODE_CACHED, MODE_UNCACHED, MODE_COUNT };

static const char *const mode_names[MODE_COUNT] = { "bare", "cached", "uncached" };

/* Everything one case needs, loaded before any timing starts. */
struct vec {
	const char *name;
	snp_product product;
	uint8_t *report; /* raw report file */
	size_t report_len;
	uint8_t *vcek_der;
	size_t vcek_len;
	uint8_t *ark_pem;
	size_t ark_len;
	uint8_t *ask_pem;
	size_t ask_len;
	snp_cert *vcek;       /* pre-parsed (cached mode) */
	EVP_PKEY *pkey;       /* VCEK public key (bare mode) */
	unsigned char *sig;   /* DER ECDSA-Sig-Value (bare mode) */
	size_t sig_len;
};

struct bench {
	struct vec vecs[NCASES];
	snp_trust *trust; /* shared by every cached operation */
};

/* One thread of one measurement. */
struct worker {
	const struct bench *b;
	enum mode mode;
	unsigned first; /* case to start with, so threads do not march in step */
	atomic_bool *go;   /* set once every thread exists */
	atomic_bool *stop; /* set when the time is up or an operation failed */
	pthread_t tid;
	uint64_t ops;
	snp_error err; /* err.status != 0 when an operation failed */
};

/* A (mode, threads) cell of the result table. */
struct cell {
	double ops[MAX_ROUNDS]; /* ops/s of each round */
	double median, min, max;
	double ratio;  /* median over rounds of ops / bare ops of the same round */
};

struct results {
	struct cell cells[MODE_COUNT][MAX_THREADS]; /* [mode][threads - 1] */
	double seconds;
	unsigned rounds;
};

static int
bench_fail(snp_error *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
bench_fail(snp_error *err, int status, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->status = status;
		va_start(ap, fmt);
		(void)vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
		va_end(ap);
	}
	return status;
}

static double
now_seconds(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
read_vector(const char *dir, const char *rel, uint8_t **out, size_t *len)
{
	char path[4096];
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) >= sizeof(path)) {
		fprintf(stderr, "bench_verify: path too long: %s/%s\n", dir, rel);
		return -ENAMETOOLONG;
	}
	if ((r = file_read_all(path, FILE_CAP, out, len)) != 0)
		fprintf(stderr, "bench_verify: cannot read %s: %s\n", path, strerror(-r));
	return r;
}

/*
 * The report's signature as DER: R and S are stored little-endian in 72-byte
 * fields of which P-384 uses the low 48.  Done once, outside the timed loop.
 */
static int
build_der_signature(struct vec *v)
{
	uint8_t be[P384_LEN];
	BIGNUM *rbn = NULL, *sbn = NULL;
	ECDSA_SIG *sig = NULL;
	unsigned char *der = NULL;
	int derlen, r = -1;
	size_t i;

	for (i = 0; i < P384_LEN; i++)
		be[i] = v->report[SIG_R_OFFSET + P384_LEN - 1 - i];
	if ((rbn = BN_bin2bn(be, P384_LEN, NULL)) == NULL)
		goto out;
	for (i = 0; i < P384_LEN; i++)
		be[i] = v->report[SIG_S_OFFSET + P384_LEN - 1 - i];
	if ((sbn = BN_bin2bn(be, P384_LEN, NULL)) == NULL)
		goto out;
	if ((sig = ECDSA_SIG_new()) == NULL || ECDSA_SIG_set0(sig, rbn, sbn) != 1)
		goto out;
	rbn = sbn = NULL; /* owned by sig */
	if ((derlen = i2d_ECDSA_SIG(sig, &der)) <= 0)
		goto out;
	v->sig = der;
	v->sig_len = (size_t)derlen;
	der = NULL;
	r = 0;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(sig);
	BN_free(rbn);
	BN_free(sbn);
	return r;
}

/* The VCEK's public key for the bare verify, straight from its DER. */
static int
load_pkey(struct vec *v)
{
	const unsigned char *p = v->vcek_der;
	X509 *x = NULL;
	int r = -1;

	if ((x = d2i_X509(NULL, &p, (long)v->vcek_len)) == NULL)
		goto out;
	if ((v->pkey = X509_get_pubkey(x)) == NULL)
		goto out;
	r = 0;
out:
	X509_free(x);
	return r;
}

static int
vec_load(struct vec *v, const char *dir, const char *name, snp_product product)
{
	const char *p = snp_product_name(product);
	char rel[256];
	snp_error err = { 0 };
	int r;

	v->name = name;
	v->product = product;
	(void)snprintf(rel, sizeof(rel), "snp/reports/%s.bin", name);
	if ((r = read_vector(dir, rel, &v->report, &v->report_len)) != 0)
		goto out;
	(void)snprintf(rel, sizeof(rel), "snp/certs/%s.der", name);
	if ((r = read_vector(dir, rel, &v->vcek_der, &v->vcek_len)) != 0)
		goto out;
	(void)snprintf(rel, sizeof(rel), "amd/ark_%s.pem", p);
	if ((r = read_vector(dir, rel, &v->ark_pem, &v->ark_len)) != 0)
		goto out;
	(void)snprintf(rel, sizeof(rel), "amd/ask_%s.pem", p);
	if ((r = read_vector(dir, rel, &v->ask_pem, &v->ask_len)) != 0)
		goto out;
	if (v->report_len < SNP_REPORT_SIZE) {
		fprintf(stderr, "bench_verify: %s: %zu bytes, a report is %u\n", name,
			v->report_len, SNP_REPORT_SIZE);
		r = -EINVAL;
		goto out;
	}
	if ((r = snp_cert_parse(v->vcek_der, v->vcek_len, &v->vcek, &err)) != SNP_OK) {
		fprintf(stderr, "bench_verify: %s: VCEK: %s\n", name, err.detail);
		goto out;
	}
	if ((r = load_pkey(v)) != 0 || (r = build_der_signature(v)) != 0) {
		fprintf(stderr, "bench_verify: %s: OpenSSL could not load the key or signature\n",
			name);
		ERR_print_errors_fp(stderr);
		goto out;
	}
out:
	return r;
}

static void
vec_free(struct vec *v)
{
	free(v->report);
	free(v->vcek_der);
	free(v->ark_pem);
	free(v->ask_pem);
	snp_cert_free(v->vcek);
	EVP_PKEY_free(v->pkey);
	OPENSSL_free(v->sig);
	memset(v, 0, sizeof(*v));
}

/* ------------------------------------------------------------------ */
/* The three operations; each returns 0 or fills err.                  */

static int
op_bare(const struct vec *v, snp_error *err)
{
	EVP_MD_CTX *md = NULL;
	int r = SNP_E_INTERNAL, v_ok;

	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(md, NULL, "SHA384", NULL, NULL, v->pkey, NULL) != 1) {
		r = bench_fail(err, SNP_E_INTERNAL, "%s: bare: EVP_DigestVerifyInit_ex failed",
			       v->name);
		goto out;
	}
	v_ok = EVP_DigestVerify(md, v->sig, v->sig_len, v->report, SNP_REPORT_SIGNED_SIZE);
	if (v_ok != 1) {
		r = bench_fail(err, SNP_E_SIGNATURE, "%s: bare: EVP_DigestVerify returned %d",
			       v->name, v_ok);
		goto out;
	}
	r = 0;
out:
	if (r != 0)
		ERR_clear_error();
	EVP_MD_CTX_free(md);
	return r;
}

static int
check_result(const struct vec *v, const snp_verify_result *res, snp_error *err)
{
	if (res->product != v->product || res->signing_key != SNP_SIGNING_KEY_VCEK)
		return bench_fail(err, SNP_E_INTERNAL,
				  "%s: verify said ok for product %s, key %u; expected %s, VCEK",
				  v->name, snp_product_name(res->product), res->signing_key,
				  snp_product_name(v->product));
	return 0;
}

static int
op_cached(snp_trust *trust, const struct vec *v, snp_error *err)
{
	snp_verify_opts opts = { .product = v->product, .at = 0 /* now */ };
	snp_verify_result res;
	snp_report *report = NULL;
	int r;

	if ((r = snp_report_parse(v->report, v->report_len, &report, err)) != SNP_OK ||
	    (r = snp_verify(trust, report, v->vcek, &opts, &res, err)) != SNP_OK ||
	    (r = check_result(v, &res, err)) != 0)
		goto out;
out:
	snp_report_free(report);
	return r;
}

static int
op_uncached(const struct vec *v, snp_error *err)
{
	snp_verify_opts opts = { .product = v->product, .at = 0 /* now */ };
	snp_verify_result res;
	snp_trust *trust = NULL;
	snp_cert *ark = NULL, *ask = NULL, *vcek = NULL;
	snp_report *report = NULL;
	int r;

	if ((r = snp_trust_new(&trust)) != SNP_OK) {
		bench_fail(err, r, "%s: snp_trust_new: %s", v->name, snp_status_class(r));
		goto out;
	}
	if ((r = snp_cert_parse(v->ark_pem, v->ark_len, &ark, err)) != SNP_OK ||
	    (r = snp_trust_add_cert(trust, ark, err)) != SNP_OK ||
	    (r = snp_cert_parse(v->ask_pem, v->ask_len, &ask, err)) != SNP_OK ||
	    (r = snp_trust_add_cert(trust, ask, err)) != SNP_OK ||
	    (r = snp_cert_parse(v->vcek_der, v->vcek_len, &vcek, err)) != SNP_OK ||
	    (r = snp_report_parse(v->report, v->report_len, &report, err)) != SNP_OK ||
	    (r = snp_verify(trust, report, vcek, &opts, &res, err)) != SNP_OK ||
	    (r = check_result(v, &res, err)) != 0)
		goto out;
out:
	snp_report_free(report);
	snp_cert_free(vcek);
	snp_cert_free(ask);
	snp_cert_free(ark);
	snp_trust_free(trust);
	return r;
}

static int
run_op(const struct bench *b, enum mode mode, const struct vec *v, snp_error *err)
{
	switch (mode) {
	case MODE_BARE:
		return op_bare(v, err);
	case MODE_CACHED:
		return op_cached(b->trust, v, err);
	case MODE_UNCACHED:
		return op_uncached(v, err);
	case MODE_COUNT:
		break;
	}
	return bench_fail(err, SNP_E_ARGUMENT, "unknown mode %d", (int)mode);
}

/* ------------------------------------------------------------------ */
/* Measurement                                                          */

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned i = w->first;

	while (!atomic_load(w->go))
		sched_yield();
	while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
		const struct vec *v = &w->b->vecs[i];

		if (run_op(w->b, w->mode, v, &w->err) != 0) {
			if (w->err.status == 0)
				w->err.status = SNP_E_INTERNAL;
			atomic_store(w->stop, true);
			break;
		}
		w->ops++;
		i = (i + 1) % NCASES;
	}
	return NULL;
}

/*
 * Run `mode` on `nthreads` threads for `seconds`.  Adds the operations all
 * threads completed to *ops and the wall time from the start signal to the
 * last join to *elapsed.  (Not a sum of per-thread rates: a thread scheduled
 * late would inflate that.)
 */
static int
measure(const struct bench *b, enum mode mode, unsigned nthreads, double seconds, uint64_t *ops,
	double *elapsed)
{
	struct worker w[MAX_THREADS];
	atomic_bool go, stop;
	struct timespec ts;
	unsigned i, started = 0;
	double t0, t1;
	uint64_t done = 0;
	int r = 0, e;

	memset(w, 0, sizeof(w));
	atomic_init(&go, false);
	atomic_init(&stop, false);
	for (i = 0; i < nthreads; i++) {
		w[i].b = b;
		w[i].mode = mode;
		w[i].first = i % NCASES;
		w[i].go = &go;
		w[i].stop = &stop;
		if ((e = pthread_create(&w[i].tid, NULL, worker_main, &w[i])) != 0) {
			fprintf(stderr, "bench_verify: pthread_create: %s\n", strerror(e));
			atomic_store(&stop, true);
			r = -1;
			break;
		}
		started++;
	}
	t0 = now_seconds();
	atomic_store(&go, true);
	if (r == 0) {
		ts.tv_sec = (time_t)seconds;
		ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !atomic_load(&stop))
			;
	}
	atomic_store(&stop, true);
	for (i = 0; i < started; i++)
		(void)pthread_join(w[i].tid, NULL);
	t1 = now_seconds();

	for (i = 0; i < started; i++) {
		if (w[i].err.status != 0) {
			fprintf(stderr, "bench_verify: %s on %u thread(s) failed (%s): %s\n",
				mode_names[mode], nthreads, snp_status_class(w[i].err.status),
				w[i].err.detail);
			r = -1;
		}
		done += w[i].ops;
	}
	if (r == 0) {
		*ops += done;
		*elapsed += t1 - t0;
	}
	return r;
}

/*
 * One round: every mode at every thread count for `seconds` each, cut into
 * slices of about SLICE_SECONDS that cycle through all of them, so a burst of
 * load from elsewhere on the machine lands on every mode alike.  The mode
 * order rotates from slice to slice so no mode always runs first.
 */
static int
run_round(const struct bench *b, struct results *res, unsigned round, double seconds)
{
	uint64_t ops[MODE_COUNT][MAX_THREADS];
	double elapsed[MODE_COUNT][MAX_THREADS];
	unsigned slices, j, t, k;

	memset(ops, 0, sizeof(ops));
	memset(elapsed, 0, sizeof(elapsed));
	slices = (unsigned)lround(seconds / SLICE_SECONDS);
	if (slices == 0)
		slices = 1;
	for (j = 0; j < slices; j++)
		for (t = 1; t <= MAX_THREADS; t++)
			for (k = 0; k < MODE_COUNT; k++) {
				enum mode m = (enum mode)((k + j + round) % MODE_COUNT);

				if (measure(b, m, t, seconds / slices, &ops[m][t - 1],
					    &elapsed[m][t - 1]) != 0)
					return -1;
			}
	for (t = 1; t <= MAX_THREADS; t++)
		for (k = 0; k < MODE_COUNT; k++) {
			double rate = elapsed[k][t - 1] > 0
					      ? (double)ops[k][t - 1] / elapsed[k][t - 1]
					      : 0;

			res->cells[k][t - 1].ops[round] = rate;
			fprintf(stderr, "round %u/%u: %-8s %u thread(s): %10.1f ops/s\n", round + 1,
				res->rounds, mode_names[k], t, rate);
		}
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v in place; returns its median. */
static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(v[0]), cmp_double);
	return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void
cell_summarise(struct cell *c, const struct cell *bare, unsigned rounds)
{
	double v[MAX_ROUNDS];
	unsigned k;

	memcpy(v, c->ops, rounds * sizeof(v[0]));
	c->median = median(v, rounds);
	c->min = v[0];
	c->max = v[rounds - 1];
	for (k = 0; k < rounds; k++)
		v[k] = bare->ops[k] > 0 ? c->ops[k] / bare->ops[k] : 0;
	c->ratio = median(v, rounds);
}

/* ------------------------------------------------------------------ */
/* Setup, output, main                                                  */

static int
bench_setup(struct bench *b, const char *dir)
{
	snp_error err = { 0 };
	size_t i;
	int r;

	if ((r = snp_trust_new(&b->trust)) != SNP_OK) {
		fprintf(stderr, "bench_verify: snp_trust_new: %s\n", snp_status_class(r));
		goto out;
	}
	{
		char amd[4096];

		(void)snprintf(amd, sizeof(amd), "%s/amd", dir);
		if ((r = snp_trust_load_dir(b->trust, amd, &err)) != SNP_OK) {
			fprintf(stderr, "bench_verify: trust %s: %s\n", amd, err.detail);
			goto out;
		}
	}
	for (i = 0; i < NCASES; i++)
		if ((r = vec_load(&b->vecs[i], dir, cases[i].name, cases[i].product)) != 0)
			goto out;
	/* Every mode must succeed on every case before anything is timed; the first
	 * cached verify also fills the trust's signer cache. */
	for (i = 0; i < NCASES; i++) {
		enum mode m;

		for (m = 0; m < MODE_COUNT; m++) {
			memset(&err, 0, sizeof(err));
			if ((r = run_op(b, m, &b->vecs[i], &err)) != 0) {
				fprintf(stderr, "bench_verify: %s: %s verify failed (%s): %s\n",
					b->vecs[i].name, mode_names[m], snp_status_class(r),
					err.detail);
				goto out;
			}
		}
	}
out:
	return r;
}

static void
bench_free(struct bench *b)
{
	size_t i;

	for (i = 0; i < NCASES; i++)
		vec_free(&b->vecs[i]);
	snp_trust_free(b->trust);
	b->trust = NULL;
}

/* The headline figure: each round's ops/s over the bare ops/s of the same
 * round (measured interleaved with it), median over the rounds.  Sturdier than
 * a ratio of medians, whose two medians may come from different rounds. */
static double
ratio(const struct results *res, enum mode m, unsigned t)
{
	return res->cells[m][t - 1].ratio;
}

static double
ratio_of_medians(const struct results *res, enum mode m, unsigned t)
{
	double base = res->cells[MODE_BARE][t - 1].median;

	return base > 0 ? res->cells[m][t - 1].median / base : 0;
}

static void
print_text(const struct results *res)
{
	unsigned t;
	enum mode m;

	printf("bench_verify: %u rounds of %.2f s per mode and thread count; "
	       "median ops/s (min - max over rounds);\n"
	       "ratio = median over rounds of ops/s / bare ops/s of the same round and thread count;\n"
	       "med/med = median ops/s / median bare ops/s (differs from ratio when the machine was busy)\n\n",
	       res->rounds, res->seconds);
	printf("%-9s %7s %12s %25s %8s %8s\n", "mode", "threads", "ops/s", "min - max", "ratio",
	       "med/med");
	for (t = 1; t <= MAX_THREADS; t++)
		for (m = 0; m < MODE_COUNT; m++) {
			const struct cell *c = &res->cells[m][t - 1];
			char range[64];

			(void)snprintf(range, sizeof(range), "%.1f - %.1f", c->min, c->max);
			printf("%-9s %7u %12.1f %25s %8.2f %8.2f\n", mode_names[m], t, c->median,
			       range, ratio(res, m, t), ratio_of_medians(res, m, t));
		}
	printf("\n");
	printf("ratio cached/bare 1 thread: %.2f\n", ratio(res, MODE_CACHED, 1));
	printf("ratio cached/bare 2 threads: %.2f\n", ratio(res, MODE_CACHED, 2));
	printf("ratio uncached/bare 1 thread: %.2f\n", ratio(res, MODE_UNCACHED, 1));
	printf("ratio uncached/bare 2 threads: %.2f\n", ratio(res, MODE_UNCACHED, 2));
}

static void
print_json(const struct results *res)
{
	unsigned t, k;
	enum mode m;
	size_t i;
	bool first = true;

	printf("{\n  \"benchmark\": \"verify\",\n  \"seconds\": %.3f,\n  \"rounds\": %u,\n",
	       res->seconds, res->rounds);
	printf("  \"cases\": [");
	for (i = 0; i < NCASES; i++)
		printf("%s\"%s\"", i > 0 ? ", " : "", cases[i].name);
	printf("],\n  \"results\": [\n");
	for (t = 1; t <= MAX_THREADS; t++)
		for (m = 0; m < MODE_COUNT; m++) {
			const struct cell *c = &res->cells[m][t - 1];

			printf("%s    {\"mode\": \"%s\", \"threads\": %u, \"ops_per_sec\": %.1f, "
			       "\"min\": %.1f, \"max\": %.1f, \"ratio\": %.4f, \"ratio_of_medians\": %.4f, \"rounds\": [",
			       first ? "" : ",\n", mode_names[m], t, c->median, c->min, c->max,
			       ratio(res, m, t), ratio_of_medians(res, m, t));
			for (k = 0; k < res->rounds; k++)
				printf("%s%.1f", k > 0 ? ", " : "", c->ops[k]);
			printf("]}");
			first = false;
		}
	printf("\n  ],\n  \"ratios\": {\n");
	printf("    \"cached_bare_1\": %.4f,\n", ratio(res, MODE_CACHED, 1));
	printf("    \"cached_bare_2\": %.4f,\n", ratio(res, MODE_CACHED, 2));
	printf("    \"uncached_bare_1\": %.4f,\n", ratio(res, MODE_UNCACHED, 1));
	printf("    \"uncached_bare_2\": %.4f\n", ratio(res, MODE_UNCACHED, 2));
	printf("  }\n}\n");
}

static void
usage(FILE *f)
{
	fputs("usage: bench_verify [--seconds S] [--rounds N] [--vectors DIR] [--json]\n"
	      "       bench_verify --profile MODE [--threads N] [--seconds S] [--vectors DIR]\n"
	      "  --seconds S    time per mode, thread count and round (default 2)\n"
	      "  --rounds N     rounds; the median is reported (default 3, at most 99)\n"
	      "  --vectors DIR  vectors directory (default $NITRIDE_VECTORS, else the build's)\n"
	      "  --json         print the results as JSON\n"
	      "  --profile MODE run only MODE (bare, cached, uncached) once, for perf\n"
	      "  --threads N    threads of the --profile run (1 or 2, default 1)\n",
	      f);
}

static int
parse_double(const char *s, double lo, double hi, double *out)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	struct bench b;
	struct results res;
	const char *dir = NULL;
	double seconds = 2, rounds_d = 3, threads_d = 1;
	unsigned rounds, round, t, k;
	bool json = false;
	int i, profile = -1, r = EXIT_USAGE;

	memset(&b, 0, sizeof(b));
	memset(&res, 0, sizeof(res));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			r = 0;
			goto out;
		} else if (i + 1 < argc && strcmp(a, "--seconds") == 0) {
			if (parse_double(argv[++i], 0.01, 3600, &seconds) != 0) {
				fprintf(stderr, "bench_verify: --seconds wants 0.01 to 3600\n");
				goto out;
			}
		} else if (i + 1 < argc && strcmp(a, "--rounds") == 0) {
			if (parse_double(argv[++i], 1, MAX_ROUNDS, &rounds_d) != 0 ||
			    rounds_d != floor(rounds_d)) {
				fprintf(stderr, "bench_verify: --rounds wants 1 to %d\n", MAX_ROUNDS);
				goto out;
			}
		} else if (i + 1 < argc && strcmp(a, "--profile") == 0) {
			for (k = 0; k < MODE_COUNT; k++)
				if (strcmp(argv[i + 1], mode_names[k]) == 0)
					profile = (int)k;
			if (profile < 0) {
				fprintf(stderr, "bench_verify: --profile wants bare, cached or uncached\n");
				goto out;
			}
			i++;
		} else if (i + 1 < argc && strcmp(a, "--threads") == 0) {
			if (parse_double(argv[++i], 1, MAX_THREADS, &threads_d) != 0 ||
			    threads_d != floor(threads_d)) {
				fprintf(stderr, "bench_verify: --threads wants 1 to %d\n", MAX_THREADS);
				goto out;
			}
		} else if (i + 1 < argc && strcmp(a, "--vectors") == 0) {
			dir = argv[++i];
		} else {
			usage(stderr);
			goto out;
		}
	}
	rounds = (unsigned)rounds_d;
	if (dir == NULL || *dir == '\0')
		dir = getenv("NITRIDE_VECTORS");
	if (dir == NULL || *dir == '\0')
		dir = BENCH_VECTORS_DEFAULT;

	if (bench_setup(&b, dir) != 0) {
		fprintf(stderr, "bench_verify: setup failed (vectors: %s)\n", dir);
		r = EXIT_FAILED;
		goto out;
	}

	if (profile >= 0) {
		uint64_t ops = 0;
		double elapsed = 0;

		t = (unsigned)threads_d;
		if (measure(&b, (enum mode)profile, t, seconds, &ops, &elapsed) != 0) {
			r = EXIT_FAILED;
			goto out;
		}
		printf("%s %u thread(s): %.1f ops/s (profile run, no baseline)\n",
		       mode_names[profile], t, elapsed > 0 ? (double)ops / elapsed : 0);
		r = fflush(stdout) == 0 ? 0 : EXIT_FAILED;
		goto out;
	}

	res.seconds = seconds;
	res.rounds = rounds;
	for (round = 0; round < rounds; round++)
		if (run_round(&b, &res, round, seconds) != 0) {
			r = EXIT_FAILED;
			goto out;
		}
	for (t = 0; t < MAX_THREADS; t++)
		for (k = 0; k < MODE_COUNT; k++)
			cell_summarise(&res.cells[k][t], &res.cells[MODE_BARE][t], rounds);
	if (json)
		print_json(&res);
	else
		print_text(&res);
	r = fflush(stdout) == 0 ? 0 : EXIT_FAILED;
out:
	bench_free(&b);
	return r;
}
