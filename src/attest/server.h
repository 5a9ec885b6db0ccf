/*
 * server — attestd's HTTP(S) API v1 (docs/api-attestd.md) on libevent.
 *
 * One listening socket shared by N worker threads, each with its own
 * event_base and evhttp: verification (P-384, RSA-PSS on a cold chain) runs on
 * every core, and a slow client only holds its own connection (bodies are read
 * asynchronously, with timeouts and size caps).
 */
#ifndef NITRIDE_ATTEST_SERVER_H
#define NITRIDE_ATTEST_SERVER_H

#include <stdio.h>

#include "attest/collateral.h"
#include "attest/config.h"
#include "attest/nonce.h"
#include "attest/policy.h"
#include "attest/token.h"

typedef struct attestd_server attestd_server;

/* The shared services a server uses; all borrowed, and must outlive it. */
typedef struct attestd_services {
	const attestd_config *cfg;
	policy_holder *policies;
	nonce_store *nonces;
	collateral *coll;
	token_signer *signer;
	FILE *audit; /* one JSON line per appraisal; NULL: none */
} attestd_services;

/* Bind, set up TLS (unless plain_http) and start the workers.  `bound` gets
 * "http(s)://HOST:PORT" with the actual port.  Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int attestd_server_start(const attestd_services *svc,
							     attestd_server **out, char *bound,
							     size_t boundlen, char *err,
							     size_t errlen);
/* Stop the workers (in-flight requests finish), join and free.  NULL-safe. */
void attestd_server_stop(attestd_server *s);
/* Count a policy reload in /metrics. */
void attestd_server_note_reload(attestd_server *s, bool ok);

/* Log threshold: 0 = everything (default), 1 = warnings and errors only
 * (per-attestation "info" lines are dropped; benchmarks). */
extern int attestd_log_quiet;

/* One log line on stderr: "attestd: <level>: <message>". */
__attribute__((format(printf, 2, 3))) void attestd_log(const char *level, const char *fmt, ...);

#endif
