/*
 * nonce — the attestation service's single-use challenge store.
 *
 * A nonce is 32 random bytes, handed out as base64url without padding (43
 * characters).  It is valid for `ttl` seconds and can be consumed once.  The
 * store holds at most `cap` entries (issued or consumed-but-not-yet-expired,
 * so that a replay is reported as such); when it is full, expired entries are
 * swept and, if it is still full, issuing fails: flooding the challenge
 * endpoint costs the attacker their own nonces, never the service's memory.
 * All functions are thread-safe.
 */
#ifndef NITRIDE_ATTEST_NONCE_H
#define NITRIDE_ATTEST_NONCE_H

#include "common/b64url.h" /* b64url_encode/decode, used with nonces */
#include <stddef.h>
#include <time.h>

#define NONCE_BYTES 32u
#define NONCE_TEXT_LEN 43u /* base64url, no padding */

typedef struct nonce_store nonce_store;

enum nonce_status {
	NONCE_OK = 0,
	NONCE_MALFORMED = -1, /* not 43 base64url characters */
	NONCE_UNKNOWN = -2,   /* never issued here (or swept long ago) */
	NONCE_REUSED = -3,    /* issued and already consumed */
	NONCE_EXPIRED = -4,   /* issued, never consumed, past its expiry */
	NONCE_FULL = -5,      /* issue: the store is full of live nonces */
	NONCE_NOMEM = -6,
	NONCE_RANDOM = -7     /* issue: no randomness */
};

/* "ok", "malformed", "unknown", "reused", "expired", "full", … */
const char *nonce_status_name(int status);

/* cap >= 1, ttl >= 1.  Returns 0 or NONCE_NOMEM; *out written only on success. */
__attribute__((warn_unused_result)) int nonce_store_new(size_t cap, unsigned ttl, nonce_store **out);
void nonce_store_free(nonce_store *s);

/* Issue a fresh nonce at `now`: text[NONCE_TEXT_LEN+1] gets it, *expires its expiry.
 * Returns NONCE_OK, NONCE_FULL or NONCE_RANDOM. */
__attribute__((warn_unused_result)) int nonce_store_issue(nonce_store *s, time_t now,
							  char text[NONCE_TEXT_LEN + 1],
							  time_t *expires);
/* Consume `text` at `now`.  Whatever the answer, the nonce cannot be consumed
 * successfully afterwards.  Returns NONCE_OK or a negative nonce_status. */
__attribute__((warn_unused_result)) int nonce_store_consume(nonce_store *s, const char *text,
							    time_t now);
/* Entries held (issued or consumed, not yet swept). */
size_t nonce_store_count(nonce_store *s);

#endif
