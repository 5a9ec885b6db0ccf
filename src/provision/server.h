/*
 * server — provd's HTTP(S) API (docs/provd.md): release of secrets to
 * attested vHSMs, the admin API, /healthz and /metrics.
 *
 * One listening socket shared by N worker threads, each with its own
 * event_base and evhttp (HTTPS through OpenSSL bufferevents).
 */
#ifndef NITRIDE_PROVISION_SERVER_H
#define NITRIDE_PROVISION_SERVER_H

#include <stddef.h>

#include "provision/audit.h"
#include "provision/config.h"
#include "provision/store.h"
#include "provision/token.h"

typedef struct provd_server provd_server;

/* cfg, st and audit are borrowed and must outlive the server; jwks and
 * admins are owned by the server once it started (freed by stop or reload). */
typedef struct provd_services {
	const provd_config *cfg;
	store *st;
	audit_log *audit;
	prov_jwks *jwks;
	provd_admins *admins;
} provd_services;

/* Bind, set up TLS (unless plain_http) and start the workers.  `bound` gets
 * "http(s)://HOST:PORT".  Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int provd_server_start(const provd_services *svc,
							   provd_server **out, char *bound,
							   size_t boundlen, char *err, size_t errlen);
/* Swap in a new key set and token list (takes ownership; the old ones are
 * freed once no request uses them). */
void provd_server_reload(provd_server *s, prov_jwks *jwks, provd_admins *admins);
/* Stop, join and free (also the jwks/admins it owns).  NULL-safe. */
void provd_server_stop(provd_server *s);

#endif
