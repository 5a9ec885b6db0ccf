/*
 * flow — Case B as the agent runs it (DESIGN.md §2, steps 2-5):
 *
 *   challenge (attestd) -> report binding nonce and transfer key (SNP firmware)
 *   -> attest (attestd) -> token -> release (provd) -> the secret as a JWE
 *
 * The agent only ever holds the JWE, encrypted to the transfer key whose
 * private half stays with the vHSM: it cannot read the secret.
 */
#ifndef NITRIDE_AGENT_FLOW_H
#define NITRIDE_AGENT_FLOW_H

#include <stddef.h>

#include <nitride/snp.h>

#include "nitride/guest_pool.h"
#include "nitride/http.h"

#define FLOW_ERR_MAX 1024

struct flow_config {
	const char *attestd_url;  /* e.g. https://attestd.example:8443 (no trailing slash) */
	const char *provd_url;
	const char *snp_spec;     /* libsnp guest backend; NULL = $NITRIDE_SNP or auto */
	struct guest_pool *guests; /* kept handles for snp_spec (guest_pool.h); NULL: one per report */
	struct nonce_reserve *nonces; /* nonces fetched ahead (nonce_reserve_start); NULL: none */
	/*
	 * NULL: every attest request carries the report's certificate table.
	 * Else a flag shared by the flows (atomic): set once attestd accepted a
	 * table, cleared when it answers that it lacks the collateral.  While it
	 * is set, reports are asked for without the table and attestd uses the
	 * VCEK it verified before (flow.c, "The certificate table").
	 */
	int *table_accepted;
	struct http_opts http;
};

/* What a flow cost on the wire (logged per request; bench_caseb counts the handshakes). */
struct flow_stats {
	unsigned requests;  /* HTTP attempts made */
	unsigned connects;  /* new connections among them (TLS handshakes over https) */
	unsigned long step_us[4]; /* wall time of challenge, report, attest, release (done steps) */
	bool nonce_reserved;  /* the flow started with a nonce fetched ahead */
};

/* Which step failed: tells the caller (and the application behind vhsmd) why. */
enum flow_step {
	FLOW_OK = 0,
	FLOW_CHALLENGE,
	FLOW_REPORT,
	FLOW_ATTEST,   /* attestd rejected the evidence, or was unreachable */
	FLOW_RELEASE,  /* provd denied the release, or was unreachable */
	FLOW_INPUT     /* bad arguments (transfer key, name) */
};

/*
 * Run the flow for secret `name` (optionally `version` > 0) with the transfer
 * public key `tee_pubkey_json` (an EC P-256 JWK without "d").  On success
 * returns 0 and *jwe_out (malloc'ed compact JWE; caller frees); else returns
 * the failing step and a one-line reason in err[] such as
 * "attestation rejected: check measurement failed: …".  *stats (optional,
 * may be NULL) gets the requests and new connections made, on every path.
 */
__attribute__((warn_unused_result)) enum flow_step flow_provision(const struct flow_config *cfg,
								   const char *name,
								   unsigned long version,
								   const char *tee_pubkey_json,
								   char **jwe_out,
								   struct flow_stats *stats,
								   char *err, size_t errlen);

/*
 * Steps 1-3 only (a gated key's re-attestation): on success 0 and *token_out
 * (malloc'ed compact EAR token whose cnf.jwk is the transfer key; a bearer
 * credential until it expires: wipe before free).  Errors as flow_provision.
 */
__attribute__((warn_unused_result)) enum flow_step flow_attest(const struct flow_config *cfg,
								const char *tee_pubkey_json,
								char **token_out,
								struct flow_stats *stats,
								char *err, size_t errlen);

const char *flow_step_name(enum flow_step s);

/* Nonces fetched ahead of the flows that will use them (flow.c explains). */
struct nonce_reserve;
__attribute__((warn_unused_result)) int nonce_reserve_new(struct nonce_reserve **out);
/* Start the thread that fetches, through cfg (which must outlive the
 * reserve), one nonce for each a flow took.  Returns 0 or -1. */
__attribute__((warn_unused_result)) int nonce_reserve_start(struct nonce_reserve *r,
							    const struct flow_config *cfg);
void nonce_reserve_free(struct nonce_reserve *r); /* stops the thread; NULL-safe */

#endif
