/*
 * Guest backends of libsnp (internal): the snp_guest object, the per-backend
 * operations and the helpers they share.  docs/guest-backends.md describes
 * the selection rules, the error mapping and the retry bounds.
 */
#ifndef NITRIDE_SNP_GUEST_INTERNAL_H
#define NITRIDE_SNP_GUEST_INTERNAL_H

#include <nitride/snp.h>

#include <limits.h>
#include <stdbool.h>

/* Throttling (EAGAIN/EBUSY/VMM BUSY): at most this many attempts in all,
 * sleeping GUEST_BUSY_FIRST_MS before the second and doubling after. */
#define GUEST_BUSY_TRIES 5
#define GUEST_BUSY_FIRST_MS 10u
/* SNP_GET_EXT_REPORT: the first certificate buffer is one page; a
 * too-small answer is followed by at most this many larger attempts. */
#define GUEST_CERTS_RESIZES 3
/* Largest outblob accepted from configfs-tsm before judging its size. */
#define GUEST_TSM_OUTBLOB_MAX 4096u

#define GUEST_SPEC_MAX (PATH_MAX + 16)

struct snp_guest;

struct snp_guest_ops {
	/* Fill report[SNP_REPORT_SIZE]; when certs is not NULL, request an
	 * extended report and set *certs (malloc'ed or NULL) and *certs_len. */
	int (*get_report)(struct snp_guest *g, const uint8_t report_data[SNP_REPORT_DATA_LEN],
			  uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], uint8_t **certs,
			  size_t *certs_len, snp_error *err);
	int (*derive_key)(struct snp_guest *g, const snp_key_request *req,
			  uint8_t key[SNP_DERIVED_KEY_LEN], snp_error *err);
	void (*close)(struct snp_guest *g);
};

struct snp_guest {
	snp_guest_kind kind;
	const struct snp_guest_ops *ops;
	char path[PATH_MAX];        /* device, configfs root or socket */
	char spec[GUEST_SPEC_MAX];  /* "kind:path" */
	int fd;                     /* sev-guest: the open device; sim: the connection
	                             * kept from open for the first request; else -1 */
};

/* Backend constructors: fill g->ops and whatever state they keep.  g->kind,
 * g->path and g->spec are already set; g->fd is -1. */
int guest_sevguest_open(struct snp_guest *g, snp_error *err);
int guest_tsm_open(struct snp_guest *g, snp_error *err);
int guest_sim_open(struct snp_guest *g, snp_error *err);

/* The sev-guest ioctls on an open device fd (also the tsm backend's
 * fallback for derived keys). */
int guest_sevguest_derive_key_fd(int fd, const char *device, const snp_key_request *req,
				 uint8_t key[SNP_DERIVED_KEY_LEN], snp_error *err);
/* Open a sev-guest device read-write, close-on-exec; *fd only on success.
 * Failures are SNP_E_UNAVAILABLE (absent, no permission, no driver) or
 * SNP_E_IO, with a detail that says what to do. */
int guest_sevguest_open_device(const char *device, int *fd, snp_error *err);

/*
 * Choose a backend for a spec (the grammar of snp.h).  For NULL or "" the
 * automatic rule is applied with the given defaults: `tsm_root` when it is a
 * directory, else `device` when it exists, else SNP_E_UNAVAILABLE.  Writes
 * the kind and the path; the path always fits PATH_MAX.
 */
int guest_select(const char *spec, const char *tsm_root, const char *device,
		 snp_guest_kind *kind, char path[PATH_MAX], snp_error *err);

/*
 * Length of the certificate table at the start of buf[0..len): the end of
 * the furthest blob named by the entries before the all-zero terminator,
 * and at least the entry area itself.  0 when the first entry is the
 * terminator (no certificates).  When the entries cannot be read as a
 * table (no terminator within SNP_CERTTABLE_MAX_ENTRIES + 1 entries, or a
 * blob past len) the whole `len` is kept, so that the verifier sees and
 * rejects exactly what the host sent.
 */
size_t guest_certs_trim(const uint8_t *buf, size_t len);

/* Sleep for ms milliseconds (restarting on EINTR). */
void guest_sleep_ms(unsigned ms);

/* errno as its symbolic name ("EAGAIN"); "errno N" text in buf otherwise. */
const char *guest_errno_name(int e, char *buf, size_t buflen);

#endif
