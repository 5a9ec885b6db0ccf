/*
 * policy — per-secret release policies: JSON conditions on a verified
 * token's claims (docs/provd.md, "Release policy language").
 *
 * An expression is a JSON object; every member must hold (AND):
 *   "all": [expr, …]            every sub-expression holds
 *   "any": [expr, …]            at least one holds
 *   "ear_status": ["affirming", …]   submods.cpu0 "ear.status" in the set
 *   "measurement": ["<96 hex>", …]   annotated evidence "measurement" in the set
 *   "host_data": ["<64 hex>", …]
 *   "product": ["milan"|"genoa"|"turin", …]
 *   "signing_key": ["vcek"|"vlek", …]
 *   "min_tcb": {"bootloader": N, "tee": N, "snp": N, "microcode": N, "fmc": N}
 *              each named component of "reported_tcb" >= N
 * Whatever the policy, a token whose ear.status is "contraindicated" is
 * never released to.
 */
#ifndef NITRIDE_PROVISION_POLICY_H
#define NITRIDE_PROVISION_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define POLICY_MAX_LEN 65536u
#define POLICY_MAX_DEPTH 8

/* Check a policy document; returns 0, or -1 with err naming the member path
 * ("all[1].measurement[0]: expected 96 hex digits"). */
__attribute__((warn_unused_result)) int release_policy_check(const json_t *policy, char *err,
							     size_t errlen);

/* Evaluate a (checked) policy against the claims of a verified token.
 * Returns true when it allows release.  *failed (always set, new reference)
 * lists each failing condition as {"condition": path, "expected": …,
 * "actual": …}; the first entry is the one to report. */
bool release_policy_eval(const json_t *policy, const json_t *claims, json_t **failed);

#endif
