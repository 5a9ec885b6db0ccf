/*
 * sim_kds — a loopback imitation of AMD's Key Distribution Service on
 * libevent's evhttp (docs/snpsim.md "KDS"):
 *
 *   GET /vcek/v1/{P}/{hwid}?blSPL=&teeSPL=&snpSPL=&ucodeSPL=[&fmcSPL=]  DER VCEK
 *   GET /vcek/v1/{P}/cert_chain, /vlek/v1/{P}/cert_chain              PEM ASK|ASVK, ARK
 *   GET /vcek/v1/{P}/crl, /vlek/v1/{P}/crl                            DER CRL by the ARK
 *   POST /_sim/faults?status=429|503&count=N&retry_after=S&delay_ms=D  arm faults
 *   GET /_sim/requests                                                {"requests": N}
 *
 * Runs in the caller's event_base thread.
 */
#ifndef NITRIDE_SIM_KDS_H
#define NITRIDE_SIM_KDS_H

#include <stddef.h>

#include <event2/event.h>

#include "sim/sim_firmware.h"
#include "sim/sim_state.h"

#define SIM_KDS_MAX_HEADERS 8192
#define SIM_KDS_MAX_BODY 4096
#define SIM_KDS_MAX_FAULTS 1000
#define SIM_KDS_MAX_DELAY_MS 60000
#define SIM_KDS_MAX_RETRY_AFTER 3600

struct sim_kds;

/* Listen on `listen` ("127.0.0.1:PORT"; NULL: 127.0.0.1 on an ephemeral port; the
 * address must be IPv4 loopback).  The simulated chip (product and chip id) comes
 * from fw; st issues certificates.  Both are borrowed. */
__attribute__((warn_unused_result)) int sim_kds_start(struct event_base *base, const char *listen,
						      struct sim_state *st, const struct sim_fw *fw,
						      struct sim_kds **out, char *err, size_t errlen);
/* The bound port. */
unsigned sim_kds_port(const struct sim_kds *kds);
/* KDS requests answered (paths under /vcek and /vlek), faults included. */
unsigned long sim_kds_requests(const struct sim_kds *kds);
void sim_kds_free(struct sim_kds *kds);

#endif
