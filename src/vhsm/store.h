/*
 * store — vhsmd's sealed key store: an SQLite file (WAL, synchronous=FULL)
 * whose records are AES-256-GCM under a key derived from the SEV-SNP
 * firmware (snp_guest_derive_key) with the configured sealing policy.
 * docs/vhsm.md, "Sealing".
 *
 * Every change is one transaction, committed before the caller acknowledges
 * it; a crash leaves the last committed state.
 */
#ifndef NITRIDE_VHSM_STORE_H
#define NITRIDE_VHSM_STORE_H

#include <stddef.h>
#include <stdint.h>

struct vstore;

struct vstore_seal {
	uint32_t root_key;    /* SNP_KEY_ROOT_VCEK or _VMRK */
	uint64_t fields;      /* SNP_KEY_FIELD_* */
	uint32_t vmpl;
	uint32_t guest_svn;
	uint64_t tcb_version;
};

/* The attributes bound into each record's AAD. */
struct vstore_attrs {
	uint32_t type, usages, flags, origin, max_age, retired;
};

/* Parse "measurement,policy,…" into SNP_KEY_FIELD_* bits; -1 on an unknown word. */
int vstore_parse_fields(const char *s, uint64_t *fields);
/* The canonical text of a sealing policy, as written into the store header. */
void vstore_seal_text(const struct vstore_seal *s, char *out, size_t outlen);

/*
 * Open (or create) the store at `path`, deriving the sealing key through
 * `snp_spec` (snp_guest_open syntax).  An existing store is only read until
 * its check record decrypts: if it does not (another measurement or chip),
 * this fails with a message saying so and the file is not modified.
 * Returns 0, or -1 with err set.
 */
__attribute__((warn_unused_result)) int vstore_open(const char *path, const char *snp_spec,
						    const struct vstore_seal *seal,
						    struct vstore **out, char *err, size_t errlen);
void vstore_close(struct vstore *s);

/* Called by vstore_load for each record, in (name, version) order.  `material`
 * is in the secure heap and wiped after the call (copy it). */
typedef int (*vstore_load_cb)(void *arg, const char *name, uint32_t version,
			      const struct vstore_attrs *a, const uint8_t *material, size_t len);
/* Decrypt every record; a record that does not authenticate is an error. */
__attribute__((warn_unused_result)) int vstore_load(struct vstore *s, vstore_load_cb cb,
						    void *arg, char *err, size_t errlen);

/* Transactions: every put/delete between begin and commit is atomic. */
__attribute__((warn_unused_result)) int vstore_begin(struct vstore *s);
__attribute__((warn_unused_result)) int vstore_commit(struct vstore *s);
void vstore_rollback(struct vstore *s);
/* Insert or replace record (name, version). */
__attribute__((warn_unused_result)) int vstore_put(struct vstore *s, const char *name,
						   uint32_t version, const struct vstore_attrs *a,
						   const uint8_t *material, size_t len);
/* Delete every version of `name`. */
__attribute__((warn_unused_result)) int vstore_delete(struct vstore *s, const char *name);
/* Number of records (for tests and the startup log). */
int vstore_count(struct vstore *s);

#endif
