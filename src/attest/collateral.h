/*
 * collateral — the trust store and the certificates and CRLs that evidence
 * needs: pinned roots, AMD (or simulator) intermediates, VCEKs, CRLs.
 *
 * Sources, in order: the extended report's certificate table (accepted only
 * when it chains to a pinned root), the on-disk cache (keyed by product, hwID
 * and TCB), then the KDS over libcurl with bounded retries, exponential backoff
 * with jitter and Retry-After on 429/5xx.  A KDS outage with a warm cache
 * changes nothing; without one the caller gets COLL_UNAVAILABLE (HTTP 503).
 * Thread-safe: verifications share a read lock, trust-store updates take the
 * write lock.
 */
#ifndef NITRIDE_ATTEST_COLLATERAL_H
#define NITRIDE_ATTEST_COLLATERAL_H

#include <stdbool.h>
#include <stddef.h>

#include <nitride/snp.h>

#define COLL_DETAIL_MAX 320u
#define COLL_KDS_MAX_BODY (256u * 1024u)

enum coll_status {
	COLL_OK = 0,
	COLL_EVIDENCE = -1,    /* the evidence's own certificates are unusable (detail says why) */
	COLL_UNAVAILABLE = -2, /* needed collateral is neither cached nor fetchable now */
	COLL_INTERNAL = -3,
	COLL_WOULD_FETCH = -4  /* cached_only was asked and something must come from the KDS */
};

typedef struct collateral_opts {
	const char *kds_url;         /* base URL, no trailing slash needed */
	bool offline;                /* never contact the KDS */
	unsigned timeout;            /* seconds per request */
	unsigned retries;            /* extra attempts after the first */
	const char *cache_dir;       /* created 0700 if missing; NULL: no cache */
	const char *roots_dir;       /* ark_/ask_/asvk_<p>.pem checked against AMD's pins; may be NULL */
	const char *extra_roots_dir; /* ARKs here are pinned explicitly (the simulator); may be NULL */
	bool no_builtin_pins;        /* tests: trust only extra_roots_dir */
} collateral_opts;

typedef struct collateral collateral;

/* Returns 0, or -1 with a message in err (a root file rejected, …). */
__attribute__((warn_unused_result)) int collateral_new(const collateral_opts *o, collateral **out,
						       char *err, size_t errlen);
void collateral_free(collateral *c);

/*
 * Find the certificate that signed `report` (VCEK or VLEK per KEY_INFO) for
 * `product`: from `table` when it has one (its ASK/ARK/CRL are offered to the
 * trust store too), else the cache, else the KDS (VCEK only).  Also makes sure
 * the product's intermediate and, when `want_crl`, a current CRL are loaded.
 * *out gets the certificate: parsed certificates are kept (by SHA-256 of their
 * DER, up to COLL_CERT_CACHE_MAX) for the life of `c`, so *out is usually
 * borrowed (*owned false: do not free; valid until collateral_free) and owned
 * by the caller only when the cache is full (*owned true: snp_cert_free).
 * With `cached_only`, anything that would need the KDS returns COLL_WOULD_FETCH
 * at once instead (attestd's event loops appraise inline only what needs no
 * network, and hand the rest to its pool).
 * Returns a coll_status; detail says what failed.
 */
#define COLL_CERT_CACHE_MAX 1024u
__attribute__((warn_unused_result)) int collateral_signer(collateral *c, const snp_report *report,
							  snp_product product,
							  const snp_certtable *table, bool want_crl,
							  bool cached_only,
							  snp_cert **out, bool *owned, char *detail,
							  size_t dlen);

/* snp_verify() against the shared trust store (under the read lock). */
__attribute__((warn_unused_result)) int collateral_verify(collateral *c, const snp_report *report,
							  const snp_cert *signer,
							  const snp_verify_opts *opts,
							  snp_verify_result *result, snp_error *err);

/*
 * `signer` (as collateral_signer gave it, from the DER `der`) has just
 * verified `report`: if it is a kept VCEK, later reports of the same chip and
 * reported TCB find it without a certificate table (a client may then omit
 * the table), and the first time it is also written to the disk cache where
 * a KDS fetch would have put it.  Only a verified signer is remembered: an
 * unverified table must not decide which certificate a chip's reports are
 * checked against.
 */
void collateral_note_verified_vcek(collateral *c, const snp_report *report, snp_product product,
				   const snp_cert *signer, const uint8_t *der, size_t der_len);

/* KDS requests made and failed since start (for /metrics). */
void collateral_stats(collateral *c, unsigned long *fetches, unsigned long *failures,
		      unsigned long *cache_hits);

#endif
