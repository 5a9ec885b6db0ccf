/*
 * appraise — judge SNP evidence: libsnp's verification (chain, signature,
 * TCB and chip binding), the REPORT_DATA binding, then every rule of the
 * policy.  Each check is named ("measurement", "tcb.reported.snp",
 * "evidence.signature", "binding.report_data", …) and every failing one is
 * reported with the expected and the actual value, not just the first.
 */
#ifndef NITRIDE_ATTEST_APPRAISE_H
#define NITRIDE_ATTEST_APPRAISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <nitride/snp.h>

#include "attest/collateral.h"
#include "attest/policy.h"

#define APPRAISE_MAX_CHECKS 80u
#define APPRAISE_NAME_MAX 48u
#define APPRAISE_VALUE_MAX 200u

typedef enum ear_status {
	EAR_AFFIRMING = 0,
	EAR_WARNING = 1,
	EAR_CONTRAINDICATED = 2
} ear_status;

/* "affirming", "warning", "contraindicated" */
const char *ear_status_name(ear_status s);

typedef struct appraisal_check {
	char name[APPRAISE_NAME_MAX];
	bool ok;
	bool warn_only; /* failed, but the policy lists it in warn_rules */
	char expected[APPRAISE_VALUE_MAX];
	char actual[APPRAISE_VALUE_MAX];
} appraisal_check;

typedef struct appraisal {
	ear_status status;
	bool unavailable;     /* collateral could not be obtained now (HTTP 503), not a verdict */
	char unavailable_detail[COLL_DETAIL_MAX];
	/* With in->cached_only: the appraisal needs collateral from the KDS and
	 * stopped short (unavailable is set too); run it again without. */
	bool would_fetch;
	size_t n_checks, n_failed;
	appraisal_check checks[APPRAISE_MAX_CHECKS];
	snp_report *report;   /* NULL when the report did not parse */
	snp_product product;
	char evidence_digest[72]; /* "sha256:<hex>" of the report bytes as received */
	char policy_digest[72];
} appraisal;

typedef struct appraise_input {
	const uint8_t *report;
	size_t report_len;
	const uint8_t *certs;   /* extended report certificate table, may be NULL */
	size_t certs_len;
	const uint8_t *expected_report_data; /* 64 bytes to compare, NULL: no binding check */
	time_t at;              /* 0: now */
	snp_product product;    /* expected product; UNKNOWN: from CPUID (or the certificate, v2) */
	bool cached_only;       /* never wait for the KDS: a->would_fetch instead (see below) */
} appraise_input;

/* Appraise.  Returns 0 with *out (appraisal_free) whatever the verdict, or
 * -ENOMEM.  Bad evidence is a verdict, never an error. */
__attribute__((warn_unused_result)) int appraise(collateral *coll, const policy *pol,
						 const appraise_input *in, appraisal **out);
void appraisal_free(appraisal *a);
/* The first failing check that decides the verdict (a non-warning one first); NULL if none. */
const appraisal_check *appraisal_first_failure(const appraisal *a);
/* {"status", "policy_digest", "evidence_digest", "failed": [names], "checks": [...]}
 * (all checks when `all`, else only the failing ones).  New reference. */
json_t *appraisal_to_json(const appraisal *a, bool all);
/* The appraised report fields (measurement, host_data, TCBs, policy, product,
 * signing_key, chip_id, vmpl, report_data, …) for the token.  New reference;
 * NULL if the report did not parse. */
json_t *appraisal_report_claims(const appraisal *a);

#endif
