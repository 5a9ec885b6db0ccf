/*
 * caseb — vhsmd's side of Case B (docs/vhsm.md "Case B"): a key that is
 * absent but provisionable, or whose attestation is stale, is fetched through
 * nitrided.  For each such name there is at most one hand-off in flight:
 *
 *   fresh EC P-256 transfer key (private half in OpenSSL's secure heap)
 *   -> connect to nitrided's socket, check its principal (policy right "inject")
 *   -> NITRIDED_PROVISION {NAME, TEE_PUBKEY} (or NITRIDED_ATTEST for a gated key)
 *   <- the answer: a JWE to the transfer key (installed) or an EAR token
 *      (checked against the Attestation Service's JWKS), or nitrided's reason
 *   -> the transfer key is freed (wiped), the held requests are answered.
 *
 * Rotation (rotate_interval > 0): every interval, each installed key whose
 * name is provisionable is re-provisioned the same way (fresh transfer key,
 * nitrided re-attests, provd releases its latest non-retired version) with no
 * request held; a newer version is added to the key (vhsmd_inject), an equal
 * or older one changes nothing.
 *
 * Single-threaded: driven from vhsmd's poll loop.
 */
#ifndef NITRIDE_VHSM_CASEB_H
#define NITRIDE_VHSM_CASEB_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vhsmd;

#define VCASEB_MAX_PATTERNS 64
#define VCASEB_MAX_PENDING 64
#define VCASEB_MSG_MAX 512

struct vcaseb_config {
	char socket[108];      /* nitrided's socket; "" = Case B off */
	unsigned hold_ms;      /* how long a held request waits (default 30000) */
	char patterns[VCASEB_MAX_PATTERNS][129]; /* fnmatch patterns of provisionable names */
	size_t npatterns;
	char as_jwks[4096];    /* the Attestation Service's JWKS file (gated keys) */
	char as_issuer[256];   /* expected "iss" of EAR tokens ("" = not checked) */
	unsigned clock_skew;   /* seconds allowed on exp/nbf (default 60) */
	unsigned rotate_interval; /* seconds between rotation checks (0 = off) */
};

struct vcaseb;

/* Parse one key of the [caseb] section.  1 known and valid, 0 invalid value,
 * -1 unknown key. */
int vcaseb_config_key(struct vcaseb_config *c, const char *name, const char *value);

/* Set up from the configuration (loads the JWKS if given).  -1 with err. */
__attribute__((warn_unused_result)) int vcaseb_new(const struct vcaseb_config *c,
						   struct vcaseb **out, char *err, size_t errlen);
/* Free everything, wiping transfer keys; NULL-safe. */
void vcaseb_free(struct vcaseb *cb);

/* True if `name` matches a provisionable pattern. */
bool vcaseb_provisionable(const struct vcaseb *cb, const char *name);

/* Start (or join) the hand-off for `name`; kind is VHSM_OP_NITRIDED_PROVISION
 * or VHSM_OP_NITRIDED_ATTEST.  0, or -1 with the reason in msg. */
__attribute__((warn_unused_result)) int vcaseb_start(struct vhsmd *d, const char *name,
						     uint32_t kind, char *msg, size_t msglen);

/* Poll set: fills at most max entries, returns how many. */
size_t vcaseb_pollfds(const struct vcaseb *cb, struct pollfd *pfd, size_t max);
/* Milliseconds until the next deadline or connect retry (-1: none). */
int vcaseb_timeout(const struct vcaseb *cb);
/* Drive I/O and deadlines (pfd/n as filled by vcaseb_pollfds and polled). */
void vcaseb_step(struct vhsmd *d, const struct pollfd *pfd, size_t n);

/* A finished hand-off: its name, status (0 or negative vhsm_status) and
 * message.  Returns false when none is finished.  The entry is freed. */
bool vcaseb_take_done(struct vcaseb *cb, char name[129], int *status, char *msg, size_t msglen);

#endif
