/*
 * token — the EAR attestation-result JWT (draft-ietf-rats-ear), ES256 with
 * cjose, and the signing key it is made with.
 *
 * The key (EC P-256) lives in <state_dir>/signing-key.jwk (mode 0600, written
 * atomically) and is created on first start; its kid is the RFC 7638 JWK
 * thumbprint (base64url SHA-256 of the canonical public JWK).  Older keys kept
 * as <state_dir>/retired-keys/NAME.jwk (public halves) stay in the JWKS so tokens
 * they signed can still be verified until they expire.
 */
#ifndef NITRIDE_ATTEST_TOKEN_H
#define NITRIDE_ATTEST_TOKEN_H

#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "attest/appraise.h"

#define TOKEN_EAT_PROFILE "tag:github.com,2023:veraison/ear"
#define TOKEN_JTI_LEN 32u /* hex characters */

typedef struct token_signer token_signer;

/* Load or create the signing key in state_dir.  Retired keys older than
 * `keep_retired` seconds (the token lifetime: their tokens have expired) are
 * deleted, the others published.  Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int token_signer_open(const char *state_dir,
							  unsigned keep_retired,
							  token_signer **out, char *err,
							  size_t errlen);
/* Retire the current key: its public half goes to retired-keys/<kid>.jwk (0600,
 * atomic), the private key file is removed; the next start creates a new key.
 * Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int token_signer_retire(const char *state_dir, char *err,
							    size_t errlen);
void token_signer_free(token_signer *s);
const char *token_signer_kid(const token_signer *s);
/* {"keys": [current public JWK, retired ones…]} (new reference). */
json_t *token_signer_jwks(const token_signer *s);

typedef struct token_params {
	const char *issuer;
	time_t now;
	unsigned lifetime;
	const char *nonce;          /* eat_nonce; NULL omits it */
	const json_t *tee_pubkey;   /* cnf.jwk */
	const appraisal *appraisal;
} token_params;

/* Sign a token.  *jwt: malloc'ed compact JWS (caller frees); jti gets the token
 * id.  Returns 0 or -1. */
__attribute__((warn_unused_result)) int token_issue(token_signer *s, const token_params *p,
						    char **jwt, char jti[TOKEN_JTI_LEN + 1]);

/* Check that `jwk` is a public EC P-256 key (kty, crv, x, y of 32 bytes, on
 * the curve; no "d").  Returns 0 or -1 with a reason in why. */
__attribute__((warn_unused_result)) int token_check_tee_pubkey(const json_t *jwk, char *why,
								size_t whylen);

/* RFC 7638 thumbprint of an EC public JWK, base64url (43 chars + NUL). */
__attribute__((warn_unused_result)) int token_jwk_thumbprint(const json_t *jwk, char out[44]);

#endif
