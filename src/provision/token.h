/*
 * token — verification of the Attestation Service's EAR tokens (compact JWS).
 *
 * Order of checks (the first failure is the answer): size and shape (three
 * base64url parts); the protected header must say "alg":"ES256" — "none",
 * HS256 and every other algorithm are refused here, before any key is looked
 * at; no "crit"; "kid" found in the configured JWKS (or, with no "kid", a
 * JWKS of exactly one key); the ES256 signature (cjose); then the claims:
 * "iss" equal to the configured issuer, "exp" (required) and "nbf"/"iat"
 * (when present) with the configured clock skew, "cnf.jwk" an EC P-256 public
 * JWK (no "d"), "submods.cpu0" with an "ear.status".
 */
#ifndef NITRIDE_PROVISION_TOKEN_H
#define NITRIDE_PROVISION_TOKEN_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#define TOKEN_MAX_LEN 16384u /* bytes of a compact JWS we accept */
#define TOKEN_WHY_MAX 256u

typedef struct prov_jwks prov_jwks;

/* Load a JWKS file ({"keys":[…]}); every key must be EC P-256 public with a
 * "kid" unless it is the only key.  Returns 0 or -1 with err naming the file
 * and the key. */
__attribute__((warn_unused_result)) int prov_jwks_load(const char *path, prov_jwks **out,
						       char *err, size_t errlen);
void prov_jwks_free(prov_jwks *k);

/* A verified token. */
typedef struct prov_token {
	json_t *claims;           /* the whole claims set (owned) */
	const json_t *cnf_jwk;    /* borrowed from claims */
	EVP_PKEY *cnf_key;        /* cnf_jwk as checked and imported (owned) */
	const json_t *cpu0;       /* submods.cpu0, borrowed */
	const char *jti;          /* "" when absent */
	const char *ear_status;   /* submods.cpu0 "ear.status" */
	const char *evidence_digest; /* "nitride.evidence-digest", "" when absent */
	const char *policy_id;    /* "ear.appraisal-policy-id", "" when absent */
} prov_token;

void prov_token_free(prov_token *t);

/* Verify `compact` (len bytes, not necessarily NUL-terminated) at `now`.
 * Returns 0 and *out, or -1 with a reason in why (e.g. "alg HS256 not
 * accepted (ES256 only)", "expired at 2026-11-18T…Z", "signature invalid"),
 * naming no secret. */
__attribute__((warn_unused_result)) int prov_token_verify(const prov_jwks *keys,
							  const char *issuer, unsigned skew,
							  time_t now, const char *compact,
							  size_t len, prov_token **out, char *why,
							  size_t whylen);

/* RFC 7638 thumbprint (base64url SHA-256) of an EC public JWK into out[44]. */
__attribute__((warn_unused_result)) int prov_jwk_thumbprint(const json_t *jwk, char out[44]);

/* Is jwk an EC P-256 public key (kty, crv, 32-byte x and y on the curve, no d)?
 * prov_p256_public_key also gives it as a key (*key, the caller frees it). */
__attribute__((warn_unused_result)) int prov_p256_public_key(const json_t *jwk, EVP_PKEY **key,
							     char *why, size_t whylen);
__attribute__((warn_unused_result)) int prov_check_p256_public(const json_t *jwk, char *why,
							       size_t whylen);

#endif
