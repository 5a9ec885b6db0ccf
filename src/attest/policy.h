/*
 * policy — the attestation service's appraisal policy (a JSON document).
 *
 * A policy is immutable once parsed and reference counted, so the server can
 * swap in a new one on SIGHUP while requests still appraise against the old
 * one (policy_holder).  docs/attestd.md describes every key; unknown keys are
 * errors, so a typo never silently weakens the policy.
 */
#ifndef NITRIDE_ATTEST_POLICY_H
#define NITRIDE_ATTEST_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nitride/snp.h>

#define POLICY_MAX_SIZE (256u * 1024u)
#define POLICY_MAX_LIST 1024u
#define POLICY_ERR_MAX 384u

/* Which TCB fields min_tcb applies to */
#define POLICY_TCB_REPORTED 1u
#define POLICY_TCB_COMMITTED 2u
#define POLICY_TCB_LAUNCH 4u
#define POLICY_TCB_CURRENT 8u

typedef struct policy_min_tcb {
	bool set;
	int fmc, bootloader, tee, snp, microcode; /* -1: not constrained */
} policy_min_tcb;

typedef struct policy {
	/* Lists of allowed values; n_* == 0 means "any" except for measurements,
	 * which must list at least one value. */
	size_t n_measurements;
	uint8_t (*measurements)[SNP_MEASUREMENT_LEN];
	size_t n_host_data;
	uint8_t (*host_data)[SNP_HOST_DATA_LEN];
	size_t n_id_key_digests;
	uint8_t (*id_key_digests)[SNP_KEY_DIGEST_LEN];
	size_t n_author_key_digests;
	uint8_t (*author_key_digests)[SNP_KEY_DIGEST_LEN];
	bool has_family_id, has_image_id;
	uint8_t family_id[SNP_ID_LEN], image_id[SNP_ID_LEN];
	uint32_t min_guest_svn;
	unsigned vmpls;          /* bit v: VMPL v allowed; default {0} */
	bool allow_debug;        /* default false */
	bool allow_migration_agent; /* default false */
	bool allow_smt;          /* default true */
	bool require_single_socket; /* default false */
	int min_abi_major, min_abi_minor; /* default 0.0 */
	policy_min_tcb min_tcb[SNP_PRODUCT_COUNT];
	unsigned tcb_apply;      /* POLICY_TCB_*; default reported|committed */
	bool has_min_firmware;
	int fw_major, fw_minor, fw_build; /* against CURRENT and COMMITTED version */
	uint64_t platform_info_required, platform_info_forbidden;
	unsigned signing_keys;   /* bit SNP_SIGNING_KEY_VCEK / _VLEK; default VCEK only */
	unsigned products;       /* bit snp_product; default all three */
	unsigned report_versions; /* bit v; default 2, 3, 5 */
	bool require_crl;        /* default false */
	size_t n_warn;
	char **warn_rules;       /* rule names (or "prefix.") that give "warning", not "contraindicated" */
	char digest[72];         /* "sha256:" + hex of the JCS of the document */
	int refs;                /* owned by policy_holder: readers plus the holder itself */
} policy;

/*
 * Parse a policy from `text` (`len` bytes, at most POLICY_MAX_SIZE).  `name`
 * names the source in errors (a file name).  On failure returns -1 and writes
 * into err[POLICY_ERR_MAX] a message naming the file, the line (syntax errors)
 * or the key path ("min_tcb.genoa.snp") and what was expected.
 */
__attribute__((warn_unused_result)) int policy_parse(const char *text, size_t len, const char *name,
						     policy **out, char *err, size_t errlen);
/* Read and parse a file (same error contract). */
__attribute__((warn_unused_result)) int policy_load(const char *path, policy **out, char *err,
						    size_t errlen);
void policy_free(policy *p);
/* Does the named failing rule only warn under this policy? */
bool policy_rule_warns(const policy *p, const char *rule);

/*
 * A holder for the current policy: readers take a reference (policy_holder_get,
 * released by policy_holder_put), the reloader swaps it (the old policy is
 * freed when its last reader is done).  Thread-safe.
 */
typedef struct policy_holder policy_holder;

__attribute__((warn_unused_result)) int policy_holder_new(policy *initial, policy_holder **out);
void policy_holder_free(policy_holder *h);
const policy *policy_holder_get(policy_holder *h);
void policy_holder_put(policy_holder *h, const policy *p);
/* Takes ownership of `p`. */
void policy_holder_swap(policy_holder *h, policy *p);

#endif
