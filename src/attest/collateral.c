/*
 * Collateral: trust store, disk cache, KDS client (contract in collateral.h).
 */
#include "attest/collateral.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/hex.h"

#define BACKOFF_BASE_MS 200u
#define BACKOFF_MAX_MS 5000u
#define RETRY_AFTER_MAX_S 10u
#define KNOWN_MAX 64u

struct collateral {
	pthread_rwlock_t lock; /* trust: read for verify, write for updates */
	pthread_mutex_t state_lock; /* have_chain, crl_next */
	snp_trust *trust;
	char *kds_url, *cache_dir;
	bool offline;
	unsigned timeout, retries;
	bool have_chain[SNP_PRODUCT_COUNT][2];
	time_t crl_next[SNP_PRODUCT_COUNT]; /* 0: none loaded */
	uint8_t known[KNOWN_MAX][32]; /* fingerprints of intermediates already accepted */
	size_t n_known;
	struct {
		uint8_t fp[32]; /* SHA-256 of the DER (or PEM) bytes as received */
		snp_cert *cert;
		/* Set when the KDS or the disk cache gave this VCEK for a chip
		 * and TCB, or it verified a report of them from a certificate
		 * table: the next report of that chip and TCB needs neither. */
		bool by_chip;
		snp_product product;
		uint64_t tcb;
		uint8_t chip[SNP_CHIP_ID_LEN];
	} *certs;           /* parsed signer certificates, never evicted */
	size_t n_certs;
	unsigned long fetches, failures, hits;
};

static int
mkdir_p(const char *path)
{
	char tmp[1024];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (tmp[i] == '/' || tmp[i] == '\0') {
			char c = tmp[i];

			tmp[i] = '\0';
			if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
				return -errno;
			tmp[i] = c;
		}
	}
	return 0;
}

static int
add_ark_pin_from(snp_trust *t, const char *dir, const char *pname, snp_product p, char *err,
		 size_t errlen)
{
	char path[1200];
	uint8_t *buf = NULL, pin[32];
	size_t len = 0;
	snp_cert *c = NULL;
	snp_error e = { 0 };
	int r = 0;

	(void)snprintf(path, sizeof(path), "%s/ark_%s.pem", dir, pname);
	if (access(path, F_OK) != 0)
		return 0;
	if (file_read_all(path, SNP_CERT_MAX_SIZE, &buf, &len) != 0 ||
	    snp_cert_parse(buf, len, &c, &e) != SNP_OK || snp_cert_get_role(c) != SNP_ROLE_ARK ||
	    snp_cert_product(c) != p) {
		(void)snprintf(err, errlen, "%s: not an ARK for %s%s%s", path, pname,
			       e.detail[0] ? ": " : "", e.detail);
		r = -1;
		goto out;
	}
	snp_cert_spki_sha256(c, pin);
	if (snp_trust_pin(t, p, pin) != SNP_OK) {
		(void)snprintf(err, errlen, "%s: cannot pin", path);
		r = -1;
	}
out:
	snp_cert_free(c);
	free(buf);
	return r;
}

static void
note_dir(collateral *c, const char *dir)
{
	char path[1200];
	snp_product p;

	for (p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++) {
		(void)snprintf(path, sizeof(path), "%s/ask_%s.pem", dir, snp_product_name(p));
		if (access(path, F_OK) == 0)
			c->have_chain[p][0] = true;
		(void)snprintf(path, sizeof(path), "%s/asvk_%s.pem", dir, snp_product_name(p));
		if (access(path, F_OK) == 0)
			c->have_chain[p][1] = true;
	}
}

int
collateral_new(const collateral_opts *o, collateral **out, char *err, size_t errlen)
{
	collateral *c = NULL;
	snp_error e = { 0 };
	snp_product p;
	int r = -1;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->certs = calloc(COLL_CERT_CACHE_MAX, sizeof(*c->certs))) == NULL) {
		if (c != NULL)
			free(c);
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (pthread_rwlock_init(&c->lock, NULL) != 0 || pthread_mutex_init(&c->state_lock, NULL) != 0) {
		free(c);
		(void)snprintf(err, errlen, "cannot create locks");
		return -1;
	}
	c->offline = o->offline;
	c->timeout = o->timeout ? o->timeout : 10;
	c->retries = o->retries;
	if ((c->kds_url = strdup(o->kds_url ? o->kds_url : SNP_KDS_BASE_URL)) == NULL ||
	    (o->cache_dir && (c->cache_dir = strdup(o->cache_dir)) == NULL)) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (c->cache_dir && mkdir_p(c->cache_dir) != 0) {
		(void)snprintf(err, errlen, "cache_dir %s: cannot create: %s", c->cache_dir,
			       strerror(errno));
		goto out;
	}
	if (snp_trust_new(&c->trust) != SNP_OK) {
		(void)snprintf(err, errlen, "cannot create the trust store");
		goto out;
	}
	if (o->no_builtin_pins)
		snp_trust_clear_pins(c->trust);
	if (o->extra_roots_dir && o->extra_roots_dir[0]) {
		for (p = SNP_PRODUCT_MILAN; p <= SNP_PRODUCT_TURIN; p++)
			if (add_ark_pin_from(c->trust, o->extra_roots_dir, snp_product_name(p), p, err,
					     errlen) != 0)
				goto out;
		if (snp_trust_load_dir(c->trust, o->extra_roots_dir, &e) != SNP_OK) {
			(void)snprintf(err, errlen, "extra_roots_dir %s: %s", o->extra_roots_dir,
				       e.detail);
			goto out;
		}
		note_dir(c, o->extra_roots_dir);
	}
	if (o->roots_dir && o->roots_dir[0]) {
		if (snp_trust_load_dir(c->trust, o->roots_dir, &e) != SNP_OK) {
			(void)snprintf(err, errlen, "roots_dir %s: %s", o->roots_dir, e.detail);
			goto out;
		}
		note_dir(c, o->roots_dir);
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	collateral_free(c);
	return r;
}

void
collateral_free(collateral *c)
{
	if (c == NULL)
		return;
	snp_trust_free(c->trust);
	pthread_rwlock_destroy(&c->lock);
	pthread_mutex_destroy(&c->state_lock);
	for (size_t i = 0; i < c->n_certs; i++)
		snp_cert_free(c->certs[i].cert);
	free(c->certs);
	free(c->kds_url);
	free(c->cache_dir);
	free(c);
}

void
collateral_stats(collateral *c, unsigned long *fetches, unsigned long *failures,
		 unsigned long *cache_hits)
{
	*fetches = __atomic_load_n(&c->fetches, __ATOMIC_RELAXED);
	*failures = __atomic_load_n(&c->failures, __ATOMIC_RELAXED);
	*cache_hits = __atomic_load_n(&c->hits, __ATOMIC_RELAXED);
}

/* ---------------------------------------------------------------- KDS */

struct body {
	uint8_t *p;
	size_t len;
	bool overflow;
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *user)
{
	struct body *b = user;
	size_t n = size * nmemb;
	uint8_t *np;

	if (n > COLL_KDS_MAX_BODY - b->len) {
		b->overflow = true;
		return 0;
	}
	if ((np = realloc(b->p, b->len + n + 1)) == NULL)
		return 0;
	b->p = np;
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = 0;
	return n;
}

static unsigned
jitter_ms(unsigned max)
{
	unsigned v = 0;

	if (max == 0 || RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		return max / 2;
	return v % (max + 1);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/*
 * GET base+path.  Returns 0 with *buf (caller frees) on HTTP 200, -ENOENT on
 * 404, -EAGAIN when retries are exhausted on 429/5xx/transport errors.
 */
static int
kds_get(collateral *c, const char *path, uint8_t **buf, size_t *len, char *detail, size_t dlen)
{
	char url[1200];
	struct body b = { 0 };
	CURL *h = NULL;
	long status = 0;
	curl_off_t retry_after = 0;
	unsigned attempt, wait;
	CURLcode cr;
	int r = -EAGAIN;

	if (c->offline) {
		(void)snprintf(detail, dlen, "KDS disabled (kds_offline) and %s not cached", path);
		return -EAGAIN;
	}
	/* libsnp's builders give AMD's full URL: keep the path, use the configured base. */
	if (strncmp(path, SNP_KDS_BASE_URL, strlen(SNP_KDS_BASE_URL)) == 0)
		path += strlen(SNP_KDS_BASE_URL);
	(void)snprintf(url, sizeof(url), "%s%s", c->kds_url, path);
	for (attempt = 0; attempt <= c->retries; attempt++) {
		free(b.p);
		memset(&b, 0, sizeof(b));
		status = 0;
		retry_after = 0;
		__atomic_add_fetch(&c->fetches, 1, __ATOMIC_RELAXED);
		if ((h = curl_easy_init()) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		(void)curl_easy_setopt(h, CURLOPT_URL, url);
		(void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		(void)curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
		(void)curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->timeout);
		(void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)c->timeout);
		(void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		(void)curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		(void)curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		cr = curl_easy_perform(h);
		if (cr == CURLE_OK) {
			(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
			(void)curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after);
		}
		curl_easy_cleanup(h);
		h = NULL;
		if (cr == CURLE_OK && status == 200 && !b.overflow) {
			*buf = b.p;
			*len = b.len;
			b.p = NULL;
			r = 0;
			goto out;
		}
		__atomic_add_fetch(&c->failures, 1, __ATOMIC_RELAXED);
		if (cr != CURLE_OK)
			(void)snprintf(detail, dlen, "KDS %s: %s", path, curl_easy_strerror(cr));
		else
			(void)snprintf(detail, dlen, "KDS %s: HTTP %ld%s", path, status,
				       b.overflow ? " (body too large)" : "");
		if (cr == CURLE_OK && status == 404) {
			r = -ENOENT;
			goto out;
		}
		if (cr == CURLE_OK && status != 429 && status < 500) {
			r = -EPROTO;
			goto out;
		}
		if (attempt == c->retries)
			break;
		wait = BACKOFF_BASE_MS << (attempt < 5 ? attempt : 5);
		if (wait > BACKOFF_MAX_MS)
			wait = BACKOFF_MAX_MS;
		wait = wait / 2 + jitter_ms(wait / 2);
		if (retry_after > 0)
			wait = (unsigned)(retry_after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S
									   : retry_after) * 1000u;
		sleep_ms(wait);
	}
out:
	free(b.p);
	return r;
}

/* ---------------------------------------------------------------- cache */

/* <cache_dir>/<a>/<b><c> into out; out[0] = 0 when there is no cache. */
static int
cache_path(collateral *c, char *out, size_t n, const char *a, const char *b, const char *d)
{
	int w;

	out[0] = '\0';
	if (c->cache_dir == NULL)
		return -1;
	w = snprintf(out, n, "%s/%s/%s%s", c->cache_dir, a, b, d);
	if (w < 0 || (size_t)w >= n) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

static void
cache_store(collateral *c, const char *path, const uint8_t *buf, size_t len)
{
	char dir[1200];
	char *slash;
	size_t n = strlen(path);

	if (n >= sizeof(dir))
		return;
	memcpy(dir, path, n + 1);
	if ((slash = strrchr(dir, '/')) != NULL) {
		*slash = '\0';
		if (mkdir_p(dir) != 0)
			return;
	}
	if (atomic_write_file(path, buf, len, 0600) != 0)
		__atomic_add_fetch(&c->failures, 1, __ATOMIC_RELAXED);
}

/* Cache first, then KDS (stored in the cache on success).  Returns 0, -ENOENT, -EAGAIN, … */
static int
fetch_cached(collateral *c, const char *cpath, const char *kpath, bool fresh_only,
	     bool cached_only, uint8_t **buf, size_t *len, char *detail, size_t dlen)
{
	int r;

	if (!fresh_only && cpath[0] && file_read_all(cpath, COLL_KDS_MAX_BODY, buf, len) == 0) {
		__atomic_add_fetch(&c->hits, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (cached_only)
		return 1; /* the caller asked not to wait for the network */
	if ((r = kds_get(c, kpath, buf, len, detail, dlen)) != 0)
		return r;
	if (cpath[0])
		cache_store(c, cpath, *buf, *len);
	return 0;
}

/*
 * One DER certificate accepted before, recognised by the SHA-256 of its bytes
 * (snp_cert's fingerprint: the exact DER, nothing trailing).  The certificate
 * table of every attestation carries the same ARK and ASK; parsing them again
 * costs OpenSSL 3.0 a key decoder each, a quarter of an attestation's CPU.
 */
static bool
known_der(collateral *c, const uint8_t *buf, size_t len)
{
	static const char pem[] = "-----BEGIN";
	uint8_t fp[32];
	unsigned n = 0;
	bool known = false;
	size_t k;

	if ((len >= sizeof(pem) - 1 && memcmp(buf, pem, sizeof(pem) - 1) == 0) ||
	    EVP_Digest(buf, len, fp, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return false;
	(void)pthread_mutex_lock(&c->state_lock);
	for (k = 0; k < c->n_known && !known; k++)
		known = memcmp(c->known[k], fp, 32) == 0;
	(void)pthread_mutex_unlock(&c->state_lock);
	return known;
}

/* Add every certificate of a PEM bundle (or one DER) to the trust store, ARKs first. */
static int
add_bundle(collateral *c, const uint8_t *buf, size_t len, char *detail, size_t dlen)
{
	BIO *bio = NULL;
	X509 *x = NULL;
	snp_cert *certs[8] = { 0 };
	size_t n = 0, i;
	int pass, r = 0;
	snp_error e = { 0 };

	if (known_der(c, buf, len))
		return 0;
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL)
		return -1;
	while (n < 8 && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int dl = i2d_X509(x, &der);

		X509_free(x);
		if (dl <= 0 || snp_cert_parse(der, (size_t)dl, &certs[n], &e) != SNP_OK) {
			OPENSSL_free(der);
			(void)snprintf(detail, dlen, "certificate chain: %s", e.detail);
			r = -1;
			goto out;
		}
		OPENSSL_free(der);
		n++;
	}
	if (n == 0 && snp_cert_parse(buf, len, &certs[n++], &e) != SNP_OK) {
		n = 0;
		(void)snprintf(detail, dlen, "certificate chain: %s", e.detail);
		r = -1;
		goto out;
	}
	/* Certificates accepted before are skipped: no write lock, no RSA work, on the
	 * hot path of every attestation that carries a certificate table. */
	{
		uint8_t fp[8][32];
		bool fresh[8] = { false }, any = false;
		size_t k;

		(void)pthread_mutex_lock(&c->state_lock);
		for (i = 0; i < n; i++) {
			snp_cert_fingerprint(certs[i], fp[i]);
			fresh[i] = true;
			for (k = 0; k < c->n_known; k++)
				if (memcmp(c->known[k], fp[i], 32) == 0)
					fresh[i] = false;
			any = any || fresh[i];
		}
		(void)pthread_mutex_unlock(&c->state_lock);
		if (!any)
			goto out;
		(void)pthread_rwlock_wrlock(&c->lock);
		for (pass = 0; pass < 2 && r == 0; pass++)
			for (i = 0; i < n; i++) {
				bool ark = snp_cert_get_role(certs[i]) == SNP_ROLE_ARK;

				if (ark != (pass == 0) || !fresh[i])
					continue;
				if (snp_trust_add_cert(c->trust, certs[i], &e) != SNP_OK) {
					(void)snprintf(detail, dlen, "%s", e.detail);
					r = -1;
					break;
				}
			}
		(void)pthread_rwlock_unlock(&c->lock);
		if (r == 0) {
			(void)pthread_mutex_lock(&c->state_lock);
			for (i = 0; i < n; i++)
				if (fresh[i] && c->n_known < KNOWN_MAX)
					memcpy(c->known[c->n_known++], fp[i], 32);
			(void)pthread_mutex_unlock(&c->state_lock);
		}
	}
out:
	BIO_free(bio);
	for (i = 0; i < n; i++)
		snp_cert_free(certs[i]);
	return r;
}

static int
ensure_chain(collateral *c, snp_product p, bool vlek, bool cached_only, char *detail, size_t dlen)
{
	char cpath[1200] = "", kpath[SNP_URL_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	bool have;
	int r;

	(void)pthread_mutex_lock(&c->state_lock);
	have = c->have_chain[p][vlek];
	(void)pthread_mutex_unlock(&c->state_lock);
	if (have)
		return COLL_OK;
	if (snp_kds_chain_url(p, vlek, kpath, sizeof(kpath)) != SNP_OK)
		return COLL_INTERNAL;
	(void)cache_path(c, cpath, sizeof(cpath), "chain", snp_product_name(p),
			 vlek ? "_vlek.pem" : "_vcek.pem");
	if ((r = fetch_cached(c, cpath, kpath, false, cached_only, &buf, &len, detail, dlen)) != 0)
		return r == 1 ? COLL_WOULD_FETCH : COLL_UNAVAILABLE;
	r = add_bundle(c, buf, len, detail, dlen);
	free(buf);
	if (r != 0)
		return COLL_EVIDENCE;
	(void)pthread_mutex_lock(&c->state_lock);
	c->have_chain[p][vlek] = true;
	(void)pthread_mutex_unlock(&c->state_lock);
	return COLL_OK;
}

static time_t
crl_next_update(const uint8_t *buf, size_t len)
{
	BIO *bio = BIO_new_mem_buf(buf, (int)len);
	X509_CRL *crl = NULL;
	const ASN1_TIME *nu;
	struct tm tm;
	time_t t = 0;

	if (bio == NULL)
		return 0;
	crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
	if (crl == NULL) {
		const unsigned char *p = buf;

		crl = d2i_X509_CRL(NULL, &p, (long)len);
	}
	if (crl != NULL && (nu = X509_CRL_get0_nextUpdate(crl)) != NULL &&
	    ASN1_TIME_to_tm(nu, &tm) == 1)
		t = timegm(&tm);
	X509_CRL_free(crl);
	BIO_free(bio);
	return t;
}

static int
ensure_crl(collateral *c, snp_product p, bool cached_only, char *detail, size_t dlen)
{
	char cpath[1200] = "", kpath[SNP_URL_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	time_t now = time(NULL), next;
	snp_error e = { 0 };
	int r, pass;

	(void)pthread_mutex_lock(&c->state_lock);
	next = c->crl_next[p];
	(void)pthread_mutex_unlock(&c->state_lock);
	if (next > now)
		return COLL_OK;
	if (snp_kds_crl_url(p, false, kpath, sizeof(kpath)) != SNP_OK)
		return COLL_INTERNAL;
	(void)cache_path(c, cpath, sizeof(cpath), "crl", snp_product_name(p), ".crl");
	/* Pass 0: the cache (if still current); pass 1: a fresh one from the KDS. */
	for (pass = 0; pass < 2; pass++) {
		free(buf);
		buf = NULL;
		r = fetch_cached(c, cpath, kpath, pass == 1, cached_only, &buf, &len, detail, dlen);
		if (r == 1)
			return COLL_WOULD_FETCH; /* buf is NULL */
		if (r != 0)
			continue;
		next = crl_next_update(buf, len);
		if (pass == 0 && next != 0 && next <= now)
			continue; /* stale: refresh */
		(void)pthread_rwlock_wrlock(&c->lock);
		r = snp_trust_add_crl(c->trust, buf, len, &e);
		(void)pthread_rwlock_unlock(&c->lock);
		if (r != SNP_OK) {
			(void)snprintf(detail, dlen, "CRL: %s", e.detail);
			continue;
		}
		(void)pthread_mutex_lock(&c->state_lock);
		c->crl_next[p] = next ? next : now + 3600;
		(void)pthread_mutex_unlock(&c->state_lock);
		free(buf);
		return COLL_OK;
	}
	free(buf);
	/* A CRL already loaded stays in force; snp_verify judges its freshness. */
	(void)pthread_mutex_lock(&c->state_lock);
	next = c->crl_next[p];
	(void)pthread_mutex_unlock(&c->state_lock);
	return next != 0 ? COLL_OK : COLL_UNAVAILABLE;
}

/* Parse a signer certificate, or find it parsed already (see collateral.h). */
static int
parse_cached(collateral *c, const uint8_t *der, size_t len, snp_cert **out, bool *owned,
	     snp_error *e)
{
	uint8_t fp[32];
	unsigned n = 0;
	snp_cert *cert = NULL;
	size_t i;
	int r;

	if (EVP_Digest(der, len, fp, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return snp_cert_parse(der, len, out, e) == SNP_OK ? (*owned = true, SNP_OK)
								 : SNP_E_FORMAT;
	(void)pthread_mutex_lock(&c->state_lock);
	for (i = 0; i < c->n_certs; i++)
		if (memcmp(c->certs[i].fp, fp, 32) == 0) {
			*out = c->certs[i].cert;
			*owned = false;
			(void)pthread_mutex_unlock(&c->state_lock);
			return SNP_OK;
		}
	(void)pthread_mutex_unlock(&c->state_lock);
	if ((r = snp_cert_parse(der, len, &cert, e)) != SNP_OK)
		return r;
	(void)pthread_mutex_lock(&c->state_lock);
	if (c->n_certs < COLL_CERT_CACHE_MAX) {
		memcpy(c->certs[c->n_certs].fp, fp, 32);
		c->certs[c->n_certs++].cert = cert;
		*owned = false;
	} else {
		*owned = true;
	}
	(void)pthread_mutex_unlock(&c->state_lock);
	*out = cert;
	return SNP_OK;
}

/* <cache_dir>/vcek/<product>/<hwID hex>/<reported TCB, 16 hex>.der: what the
 * KDS URL is built from.  cpath[0] = 0 when there is no cache. */
static void
vcek_cache_file(collateral *c, const snp_report *report, snp_product product, char *cpath,
		size_t n)
{
	char hwhex[2 * SNP_CHIP_ID_LEN + 1], sub[200], tail[24];

	hex_encode(snp_report_chip_id(report),
		   product == SNP_PRODUCT_TURIN ? SNP_HWID_LEN_TURIN : SNP_CHIP_ID_LEN, hwhex);
	(void)snprintf(sub, sizeof(sub), "vcek/%s", snp_product_name(product));
	(void)snprintf(tail, sizeof(tail), "/%016llx.der",
		       (unsigned long long)snp_report_reported_tcb(report));
	if (cache_path(c, cpath, n, sub, hwhex, tail) != 0)
		cpath[0] = '\0';
}

/*
 * The VCEK the KDS (or its disk cache) gave for this chip and reported TCB,
 * if one was parsed before.  A VCEK is derived from the chip and the TCB, so
 * the pair names it for good; revocation is judged by the CRL at every
 * verification, not here.  Without this, every report without a certificate
 * table re-read and re-hashed the cached file.
 */
static snp_cert *
vcek_by_chip(collateral *c, snp_product product, const uint8_t *chip, uint64_t tcb)
{
	snp_cert *found = NULL;

	(void)pthread_mutex_lock(&c->state_lock);
	for (size_t i = 0; i < c->n_certs && found == NULL; i++)
		if (c->certs[i].by_chip && c->certs[i].product == product &&
		    c->certs[i].tcb == tcb && memcmp(c->certs[i].chip, chip, SNP_CHIP_ID_LEN) == 0)
			found = c->certs[i].cert;
	(void)pthread_mutex_unlock(&c->state_lock);
	return found;
}

/* Whether `cert` was not known by chip before (and now is). */
static bool
vcek_note_chip(collateral *c, const snp_cert *cert, snp_product product, const uint8_t *chip,
	       uint64_t tcb)
{
	bool noted = false;

	(void)pthread_mutex_lock(&c->state_lock);
	for (size_t i = 0; i < c->n_certs; i++) {
		if (c->certs[i].cert != cert)
			continue;
		if (!c->certs[i].by_chip) {
			c->certs[i].by_chip = true;
			c->certs[i].product = product;
			c->certs[i].tcb = tcb;
			memcpy(c->certs[i].chip, chip, SNP_CHIP_ID_LEN);
			noted = true;
		}
		break; /* every verified table calls this: stop at its certificate */
	}
	(void)pthread_mutex_unlock(&c->state_lock);
	return noted;
}

void
collateral_note_verified_vcek(collateral *c, const snp_report *report, snp_product product,
			       const snp_cert *signer, const uint8_t *der, size_t der_len)
{
	char cpath[1200];

	if (c == NULL || report == NULL || signer == NULL ||
	    snp_report_signing_key(report) != SNP_SIGNING_KEY_VCEK ||
	    !vcek_note_chip(c, signer, product, snp_report_chip_id(report),
			    snp_report_reported_tcb(report)))
		return;
	/* First time for this chip and TCB: keep it on disk too, as if the KDS
	 * had given it, so a restarted attestd needs neither table nor KDS. */
	vcek_cache_file(c, report, product, cpath, sizeof(cpath));
	if (der != NULL && der_len > 0 && cpath[0] != '\0' && access(cpath, F_OK) != 0)
		cache_store(c, cpath, der, der_len);
}

int
collateral_signer(collateral *c, const snp_report *report, snp_product product,
		  const snp_certtable *table, bool want_crl, bool cached_only, snp_cert **out,
		  bool *owned, char *detail, size_t dlen)
{
	bool cert_owned = false;
	unsigned sk = snp_report_signing_key(report);
	bool vlek = sk == SNP_SIGNING_KEY_VLEK;
	const uint8_t *blob;
	size_t blen = 0, i;
	snp_cert *cert = NULL;
	snp_error e = { 0 };
	char cpath[1200] = "", kpath[SNP_URL_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	snp_tcb tcb;
	int r;

	if (product <= SNP_PRODUCT_UNKNOWN || product >= SNP_PRODUCT_COUNT) {
		(void)snprintf(detail, dlen, "unknown product");
		return COLL_EVIDENCE;
	}
	if (sk != SNP_SIGNING_KEY_VCEK && sk != SNP_SIGNING_KEY_VLEK) {
		(void)snprintf(detail, dlen, "report is not signed (SIGNING_KEY %u)", sk);
		return COLL_EVIDENCE;
	}
	if (table != NULL) {
		/* Intermediates first (they must chain to a pinned ARK to be accepted). */
		for (i = 0; i < snp_certtable_count(table); i++) {
			snp_cert_kind kind;
			const uint8_t *guid;

			if (snp_certtable_entry(table, i, &kind, &guid, &blob, &blen) != SNP_OK)
				continue;
			if (kind == SNP_CERT_KIND_ARK || kind == SNP_CERT_KIND_ASK) {
				if (add_bundle(c, blob, blen, detail, dlen) != 0)
					return COLL_EVIDENCE;
				if (kind == SNP_CERT_KIND_ASK) {
					(void)pthread_mutex_lock(&c->state_lock);
					c->have_chain[product][vlek] = true;
					(void)pthread_mutex_unlock(&c->state_lock);
				}
			} else if (kind == SNP_CERT_KIND_CRL) {
				(void)pthread_rwlock_wrlock(&c->lock);
				r = snp_trust_add_crl(c->trust, blob, blen, &e);
				(void)pthread_rwlock_unlock(&c->lock);
				if (r != SNP_OK) {
					(void)snprintf(detail, dlen, "CRL in the certificate table: %s",
						       e.detail);
					return COLL_EVIDENCE;
				}
				/* Loaded: no fetch needed until its nextUpdate. */
				{
					time_t nu = crl_next_update(blob, blen);

					(void)pthread_mutex_lock(&c->state_lock);
					if (nu > c->crl_next[product])
						c->crl_next[product] = nu;
					(void)pthread_mutex_unlock(&c->state_lock);
				}
			}
		}
		if (snp_certtable_find(table, vlek ? SNP_CERT_KIND_VLEK : SNP_CERT_KIND_VCEK, &blob,
				       &blen) == SNP_OK) {
			if (parse_cached(c, blob, blen, &cert, &cert_owned, &e) != SNP_OK) {
				(void)snprintf(detail, dlen, "%s in the certificate table: %s",
					       vlek ? "VLEK" : "VCEK", e.detail);
				return COLL_EVIDENCE;
			}
		}
	}
	if ((r = ensure_chain(c, product, vlek, cached_only, detail, dlen)) != COLL_OK)
		goto fail;
	if (want_crl && (r = ensure_crl(c, product, cached_only, detail, dlen)) != COLL_OK)
		goto fail;
	if (cert == NULL) {
		if (vlek) {
			(void)snprintf(detail, dlen,
				       "VLEK-signed report without the VLEK in its certificate table");
			return COLL_EVIDENCE;
		}
		if ((cert = vcek_by_chip(c, product, snp_report_chip_id(report),
					 snp_report_reported_tcb(report))) != NULL) {
			__atomic_add_fetch(&c->hits, 1, __ATOMIC_RELAXED);
			*out = cert;
			*owned = false;
			return COLL_OK;
		}
		snp_tcb_decode(snp_report_reported_tcb(report), product, &tcb);
		if (snp_kds_vcek_url(product, snp_report_chip_id(report), &tcb, kpath,
				     sizeof(kpath)) != SNP_OK) {
			(void)snprintf(detail, dlen, "CHIP_ID is masked: the VCEK cannot be fetched");
			return COLL_EVIDENCE;
		}
		vcek_cache_file(c, report, product, cpath, sizeof(cpath));
		if ((r = fetch_cached(c, cpath, kpath, false, cached_only, &buf, &len, detail,
				      dlen)) != 0) {
			if (r == 1) {
				r = COLL_WOULD_FETCH;
			} else if (r == -ENOENT) {
				r = COLL_EVIDENCE;
				(void)snprintf(detail, dlen, "the KDS knows no VCEK for this chip and TCB");
			} else {
				r = COLL_UNAVAILABLE;
			}
			goto fail;
		}
		r = parse_cached(c, buf, len, &cert, &cert_owned, &e);
		free(buf);
		if (r != SNP_OK) {
			(void)snprintf(detail, dlen, "VCEK from the KDS/cache: %s", e.detail);
			if (cpath[0])
				(void)unlink(cpath);
			return COLL_EVIDENCE;
		}
		if (!cert_owned)
			vcek_note_chip(c, cert, product, snp_report_chip_id(report),
				       snp_report_reported_tcb(report));
	}
	*out = cert;
	*owned = cert_owned;
	return COLL_OK;
fail:
	if (cert_owned)
		snp_cert_free(cert);
	return r;
}

int
collateral_verify(collateral *c, const snp_report *report, const snp_cert *signer,
		  const snp_verify_opts *opts, snp_verify_result *result, snp_error *err)
{
	int r;

	(void)pthread_rwlock_rdlock(&c->lock);
	r = snp_verify(c->trust, report, signer, opts, result, err);
	(void)pthread_rwlock_unlock(&c->lock);
	return r;
}
