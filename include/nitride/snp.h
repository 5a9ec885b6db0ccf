/*
 * libsnp — read and verify AMD SEV-SNP attestation evidence.
 *
 * Conventions (the same for every function below):
 *  - Functions that can fail return an int: SNP_OK (0) on success, a negative
 *    snp_status on failure.  The status is also the rejection class.
 *  - Every function that takes an `snp_error *err` fills it on failure (if
 *    err is not NULL) with the status and a one-line detail naming the field
 *    and, where there are two, both values.  It is left untouched on success.
 *  - Objects are opaque.  Constructors hand over ownership through an out
 *    parameter that is written only on success; every *_free() accepts NULL.
 *  - Accessors returning `const uint8_t *` point into the object; the bytes
 *    live as long as the object.  Their sizes are the SNP_*_LEN constants.
 *  - Nothing here logs, exits or reads the network.  The library is
 *    thread-safe: objects may be shared read-only between threads, and
 *    snp_trust's internal verification cache is locked.
 *
 * Binary layouts: docs/snp.md and the SEV-SNP firmware ABI (AMD 56860).
 */
#ifndef NITRIDE_SNP_H
#define NITRIDE_SNP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(NITRIDE_BUILDING_SNP)
#define SNP_API __attribute__((visibility("default")))
#else
#define SNP_API
#endif
#define SNP_MUST_CHECK __attribute__((warn_unused_result))

/* ------------------------------------------------------------------ */
/* Status and errors                                                   */

typedef enum snp_status {
	SNP_OK = 0,
	/* Rejection classes: what is wrong with the evidence. */
	SNP_E_FORMAT = -1,      /* malformed, truncated, oversized, non-zero reserved, unsupported version */
	SNP_E_SIGNATURE = -2,   /* a signature does not verify (report or certificate content) */
	SNP_E_CHAIN = -3,       /* signer does not chain to the product's pinned ARK */
	SNP_E_EXPIRED = -4,     /* a certificate or CRL is outside its validity at the given instant */
	SNP_E_REVOKED = -5,     /* a certificate is listed on a valid CRL */
	SNP_E_TCB = -6,         /* REPORTED_TCB differs from the signer certificate's SPLs */
	SNP_E_CHIP_ID = -7,     /* CHIP_ID differs from the VCEK's hwID */
	SNP_E_SIGNING_KEY = -8, /* KEY_INFO's signing key disagrees with the certificate (or is none) */
	SNP_E_PRODUCT = -9,     /* report, certificate and requested product disagree */
	/* Failures that say nothing about the evidence. */
	SNP_E_NOMEM = -20,
	SNP_E_ARGUMENT = -21, /* API misuse: NULL where an object is required, bad enum */
	SNP_E_IO = -22,       /* a file could not be read */
	SNP_E_INTERNAL = -23, /* OpenSSL failed in a way input cannot cause */
	SNP_E_NOT_FOUND = -24, /* a requested item (table entry, extension) is absent */
	/* Guest-side failures (obtaining reports and keys). */
	SNP_E_UNAVAILABLE = -25, /* no SEV-SNP interface here (not an SNP guest, no simulator) */
	SNP_E_FIRMWARE = -26,    /* the firmware or the VMM refused the request (codes in detail) */
	SNP_E_BUSY = -27,        /* still throttled after the bounded retries */
	SNP_E_CONFLICT = -28     /* a concurrent writer changed the request (configfs generation) */
} snp_status;

#define SNP_ERROR_DETAIL_MAX 320

typedef struct snp_error {
	int status;                       /* an snp_status */
	char detail[SNP_ERROR_DETAIL_MAX]; /* NUL-terminated, never contains secrets */
} snp_error;

/* "format", "signature", "chain", … for the rejection classes; "nomem", "argument", "io",
 * "internal", "not_found", "unavailable", "firmware", "busy", "conflict" for the rest;
 * "ok" for SNP_OK.  Never NULL. */
SNP_API const char *snp_status_class(int status);

/* ------------------------------------------------------------------ */
/* Products and TCB versions                                           */

typedef enum snp_product {
	SNP_PRODUCT_UNKNOWN = 0,
	SNP_PRODUCT_MILAN = 1,
	SNP_PRODUCT_GENOA = 2,
	SNP_PRODUCT_TURIN = 3
} snp_product;

#define SNP_PRODUCT_COUNT 4

/* Lowercase name ("milan"), as used in file names and JSON; "unknown" for 0. */
SNP_API const char *snp_product_name(snp_product p);
/* AMD's spelling ("Milan"), as used in KDS URLs and certificate names; NULL for unknown. */
SNP_API const char *snp_product_kds_name(snp_product p);
/* Case-insensitive "milan"/"Milan"/"Milan-B0" (a "-<stepping>" suffix is ignored).
 * Returns SNP_PRODUCT_UNKNOWN for anything else. */
SNP_API snp_product snp_product_from_name(const char *name);
/* Product from the report's CPUID_FAM_ID/CPUID_MOD_ID (fam 0x19 models 0x00-0x0F Milan,
 * 0x10-0x1F and 0xA0-0xAF Genoa; fam 0x1A models 0x00-0x11 Turin); unknown otherwise. */
SNP_API snp_product snp_product_from_cpuid(uint8_t fam_id, uint8_t mod_id);

typedef struct snp_tcb {
	uint64_t raw;       /* the 8 TCB_VERSION bytes read as a little-endian integer */
	bool has_fmc;       /* Turin layout */
	uint8_t fmc;        /* Turin only, else 0 */
	uint8_t bootloader;
	uint8_t tee;
	uint8_t snp;
	uint8_t microcode;
} snp_tcb;

/* Decode a TCB_VERSION per product: Milan/Genoa bl=b0 tee=b1 snp=b6 ucode=b7;
 * Turin fmc=b0 bl=b1 tee=b2 snp=b3 ucode=b7.  Unknown products use the Milan layout. */
SNP_API void snp_tcb_decode(uint64_t raw, snp_product product, snp_tcb *out);
/* Inverse of snp_tcb_decode (reserved bytes zero). */
SNP_API uint64_t snp_tcb_encode(const snp_tcb *tcb, snp_product product);

/* ------------------------------------------------------------------ */
/* Attestation report (ATTESTATION_REPORT, 1184 bytes)                 */

#define SNP_REPORT_SIZE 1184u
#define SNP_REPORT_SIGNED_SIZE 0x2A0u
#define SNP_REPORT_DATA_LEN 64u
#define SNP_MEASUREMENT_LEN 48u
#define SNP_HOST_DATA_LEN 32u
#define SNP_KEY_DIGEST_LEN 48u
#define SNP_ID_LEN 16u     /* FAMILY_ID, IMAGE_ID */
#define SNP_REPORT_ID_LEN 32u
#define SNP_CHIP_ID_LEN 64u
#define SNP_SIG_COMPONENT_LEN 72u

#define SNP_SIGNATURE_ALGO_ECDSA_P384_SHA384 1u

/* KEY_INFO.SIGNING_KEY values */
#define SNP_SIGNING_KEY_VCEK 0u
#define SNP_SIGNING_KEY_VLEK 1u
#define SNP_SIGNING_KEY_NONE 7u

/* Guest POLICY bits */
#define SNP_POLICY_SMT (1ull << 16)
#define SNP_POLICY_RESERVED_1 (1ull << 17) /* must be 1 */
#define SNP_POLICY_MIGRATE_MA (1ull << 18)
#define SNP_POLICY_DEBUG (1ull << 19)
#define SNP_POLICY_SINGLE_SOCKET (1ull << 20)

typedef struct snp_report snp_report;

/*
 * Parse a report from `buf`.  `len` must be at least SNP_REPORT_SIZE; bytes
 * after the first 1184 (an extended report's certificate table) are ignored.
 * Checks: VERSION in {2,3,4,5} (4 is read as 3), SIGNATURE_ALGO == 1, every
 * must-be-zero area for that version and KEY_INFO's reserved bits and values.
 * The SIGNATURE block (R, S, reserved) is kept as it is and judged by
 * snp_report_verify_signature().  The bytes are copied; `buf` may be freed.
 */
SNP_API SNP_MUST_CHECK int snp_report_parse(const uint8_t *buf, size_t len, snp_report **out,
					    snp_error *err);
SNP_API void snp_report_free(snp_report *r);
/* Byte-exact encoding of the parsed fields (reserved areas zero). */
SNP_API void snp_report_serialize(const snp_report *r, uint8_t out[SNP_REPORT_SIZE]);

SNP_API uint32_t snp_report_version(const snp_report *r);
SNP_API uint32_t snp_report_guest_svn(const snp_report *r);
SNP_API uint64_t snp_report_policy(const snp_report *r);
SNP_API const uint8_t *snp_report_family_id(const snp_report *r);
SNP_API const uint8_t *snp_report_image_id(const snp_report *r);
SNP_API uint32_t snp_report_vmpl(const snp_report *r);
SNP_API uint32_t snp_report_signature_algo(const snp_report *r);
SNP_API uint64_t snp_report_current_tcb(const snp_report *r);
SNP_API uint64_t snp_report_platform_info(const snp_report *r);
SNP_API uint32_t snp_report_key_info(const snp_report *r);
SNP_API unsigned snp_report_signing_key(const snp_report *r); /* KEY_INFO bits 4:2 */
SNP_API const uint8_t *snp_report_report_data(const snp_report *r);
SNP_API const uint8_t *snp_report_measurement(const snp_report *r);
SNP_API const uint8_t *snp_report_host_data(const snp_report *r);
SNP_API const uint8_t *snp_report_id_key_digest(const snp_report *r);
SNP_API const uint8_t *snp_report_author_key_digest(const snp_report *r);
SNP_API const uint8_t *snp_report_report_id(const snp_report *r);
SNP_API const uint8_t *snp_report_report_id_ma(const snp_report *r);
SNP_API uint64_t snp_report_reported_tcb(const snp_report *r);
SNP_API uint8_t snp_report_cpuid_fam_id(const snp_report *r); /* 0 before version 3 */
SNP_API uint8_t snp_report_cpuid_mod_id(const snp_report *r);
SNP_API uint8_t snp_report_cpuid_step(const snp_report *r);
SNP_API const uint8_t *snp_report_chip_id(const snp_report *r);
SNP_API uint64_t snp_report_committed_tcb(const snp_report *r);
SNP_API uint8_t snp_report_current_build(const snp_report *r);
SNP_API uint8_t snp_report_current_minor(const snp_report *r);
SNP_API uint8_t snp_report_current_major(const snp_report *r);
SNP_API uint8_t snp_report_committed_build(const snp_report *r);
SNP_API uint8_t snp_report_committed_minor(const snp_report *r);
SNP_API uint8_t snp_report_committed_major(const snp_report *r);
SNP_API uint64_t snp_report_launch_tcb(const snp_report *r);
SNP_API uint64_t snp_report_launch_mit_vector(const snp_report *r);  /* 0 before version 5 */
SNP_API uint64_t snp_report_current_mit_vector(const snp_report *r); /* 0 before version 5 */
SNP_API const uint8_t *snp_report_signature_r(const snp_report *r);  /* 72 bytes, little-endian */
SNP_API const uint8_t *snp_report_signature_s(const snp_report *r);
/* The raw 1184 bytes the report was parsed from (the signature covers the first 0x2A0). */
SNP_API const uint8_t *snp_report_bytes(const snp_report *r);
/* Product from CPUID (version 3 and later); SNP_PRODUCT_UNKNOWN for version 2. */
SNP_API snp_product snp_report_cpuid_product(const snp_report *r);

/* ------------------------------------------------------------------ */
/* Certificates (ARK, ASK, ASVK, VCEK, VLEK) and AMD's extensions        */

#define SNP_CERT_MAX_SIZE (64u * 1024u) /* larger input is rejected as format */
#define SNP_HWID_LEN_LEGACY 64u
#define SNP_HWID_LEN_TURIN 8u

typedef enum snp_cert_role {
	SNP_ROLE_UNKNOWN = 0,
	SNP_ROLE_ARK,  /* CN=ARK-<P> */
	SNP_ROLE_ASK,  /* CN=SEV-<P> */
	SNP_ROLE_ASVK, /* CN=SEV-VLEK-<P> */
	SNP_ROLE_VCEK, /* CN=SEV-VCEK */
	SNP_ROLE_VLEK  /* CN=SEV-VLEK */
} snp_cert_role;

typedef struct snp_cert snp_cert;

/* Parse one certificate, DER or PEM (detected), at most SNP_CERT_MAX_SIZE bytes.
 * For VCEK/VLEK the AMD extensions are decoded and must be well-formed. */
SNP_API SNP_MUST_CHECK int snp_cert_parse(const uint8_t *buf, size_t len, snp_cert **out,
					  snp_error *err);
SNP_API void snp_cert_free(snp_cert *c);
SNP_API snp_cert_role snp_cert_get_role(const snp_cert *c);
SNP_API const char *snp_cert_role_name(snp_cert_role role); /* "ark", "ask", … */
/* Product named by the productName extension, else by the CN (ARK-/SEV-/SEV-VLEK-<P>). */
SNP_API snp_product snp_cert_product(const snp_cert *c);
/* productName extension as written ("Milan-B0"); NULL when absent. */
SNP_API const char *snp_cert_product_name(const snp_cert *c);
/* structVersion extension; -1 when absent. */
SNP_API int snp_cert_struct_version(const snp_cert *c);
/* SPL extensions as a TCB in the certificate's product layout; SNP_E_NOT_FOUND when the
 * certificate carries none (ARK/ASK). */
SNP_API SNP_MUST_CHECK int snp_cert_tcb(const snp_cert *c, snp_tcb *out);
/* hwID extension (raw or DER OCTET STRING, normalised to the bytes): 64 bytes, or 8 on
 * Turin.  NULL and *len = 0 when absent. */
SNP_API const uint8_t *snp_cert_hwid(const snp_cert *c, size_t *len);
/* SHA-256 of the DER SubjectPublicKeyInfo (the pin format). */
SNP_API void snp_cert_spki_sha256(const snp_cert *c, uint8_t out[32]);
/* SHA-256 of the whole DER certificate. */
SNP_API void snp_cert_fingerprint(const snp_cert *c, uint8_t out[32]);
SNP_API time_t snp_cert_not_before(const snp_cert *c);
SNP_API time_t snp_cert_not_after(const snp_cert *c);
/* DER bytes of the certificate. */
SNP_API const uint8_t *snp_cert_der(const snp_cert *c, size_t *len);

/* ------------------------------------------------------------------ */
/* Extended-report certificate table                                    */

#define SNP_CERTTABLE_MAX_SIZE (64u * 1024u)
#define SNP_CERTTABLE_MAX_ENTRIES 32u

typedef enum snp_cert_kind {
	SNP_CERT_KIND_OTHER = 0, /* an unknown GUID: kept, ignored by verification */
	SNP_CERT_KIND_ARK,
	SNP_CERT_KIND_ASK, /* also used for the ASVK */
	SNP_CERT_KIND_VCEK,
	SNP_CERT_KIND_VLEK,
	SNP_CERT_KIND_CRL
} snp_cert_kind;

typedef struct snp_certtable snp_certtable;

/*
 * Parse a certificate table: 24-byte entries (GUID, LE u32 offset, LE u32
 * length) up to an all-zero entry, then the blobs.  Offsets count from the
 * table start and must point past the entry area; every blob must lie inside
 * `len`; at most SNP_CERTTABLE_MAX_ENTRIES entries and SNP_CERTTABLE_MAX_SIZE
 * bytes.  Trailing padding after the last blob is allowed (the kernel pads to
 * a page).  Blob bytes are copied.
 */
SNP_API SNP_MUST_CHECK int snp_certtable_parse(const uint8_t *buf, size_t len,
					       snp_certtable **out, snp_error *err);
SNP_API SNP_MUST_CHECK int snp_certtable_new(snp_certtable **out);
SNP_API void snp_certtable_free(snp_certtable *t);
/* Append a blob of a known kind (copied). */
SNP_API SNP_MUST_CHECK int snp_certtable_add(snp_certtable *t, snp_cert_kind kind,
					     const uint8_t *blob, size_t len);
/* Encode: entries, zero terminator, blobs in entry order.  Call with out == NULL to learn
 * the size in *len; then with a buffer of at least that size. */
SNP_API SNP_MUST_CHECK int snp_certtable_serialize(const snp_certtable *t, uint8_t *out,
						   size_t *len);
SNP_API size_t snp_certtable_count(const snp_certtable *t);
/* Entry i: kind, GUID (16 bytes, RFC 4122 byte order) and blob. */
SNP_API SNP_MUST_CHECK int snp_certtable_entry(const snp_certtable *t, size_t i,
					       snp_cert_kind *kind, const uint8_t **guid,
					       const uint8_t **blob, size_t *len);
/* First blob of `kind`; SNP_E_NOT_FOUND when there is none. */
SNP_API SNP_MUST_CHECK int snp_certtable_find(const snp_certtable *t, snp_cert_kind kind,
					      const uint8_t **blob, size_t *len);

/* ------------------------------------------------------------------ */
/* Trust: pinned ARKs, intermediate certificates, CRLs                  */

typedef struct snp_trust snp_trust;

/* A trust store pinning AMD's genuine ARK public keys for Milan, Genoa and Turin.
 * It holds no certificates yet: add the ARK/ASK/ASVK with snp_trust_add_cert(). */
SNP_API SNP_MUST_CHECK int snp_trust_new(snp_trust **out);
SNP_API void snp_trust_free(snp_trust *t);
/* Pin another ARK key (SHA-256 of its SubjectPublicKeyInfo) for a product, e.g. the
 * simulator's.  Never done by default. */
SNP_API SNP_MUST_CHECK int snp_trust_pin(snp_trust *t, snp_product product,
					 const uint8_t spki_sha256[32]);
/* Drop the built-in AMD pins for every product (tests and closed deployments). */
SNP_API void snp_trust_clear_pins(snp_trust *t);
/* Add an ARK, ASK or ASVK.  An ARK is accepted only if self-signed with a pinned key for
 * its product; an ASK/ASVK only if issued (RSASSA-PSS) by an accepted ARK of the same
 * product.  Validity and revocation are checked at verification time, not here. */
SNP_API SNP_MUST_CHECK int snp_trust_add_cert(snp_trust *t, const snp_cert *c, snp_error *err);
/* Load `dir`/ark_<p>.pem, ask_<p>.pem, asvk_<p>.pem for each product present. A product
 * with no files is skipped; a file that is present but rejected is an error. */
SNP_API SNP_MUST_CHECK int snp_trust_load_dir(snp_trust *t, const char *dir, snp_error *err);
/* Add a CRL (DER or PEM).  Accepted only if signed by an accepted ARK. */
SNP_API SNP_MUST_CHECK int snp_trust_add_crl(snp_trust *t, const uint8_t *buf, size_t len,
					     snp_error *err);

/* ------------------------------------------------------------------ */
/* Verification                                                          */

typedef struct snp_verify_opts {
	snp_product product; /* expected product; UNKNOWN = from CPUID, else the certificate */
	time_t at;           /* instant for validity checks; 0 = now */
	bool require_crl;    /* fail (revoked) when no valid CRL covers the chain */
} snp_verify_opts;

typedef struct snp_verify_result {
	snp_product product;
	unsigned signing_key; /* SNP_SIGNING_KEY_VCEK or _VLEK */
	snp_tcb reported_tcb; /* decoded for the product */
} snp_verify_result;

/*
 * Verify `report` signed by `signer` (a VCEK or VLEK) against the trust store.
 * Order (docs/snp.md): product; signing key vs certificate role; chain of the
 * signer to a pinned ARK (signature, validity at `at`, CRL); report
 * signature; REPORTED_TCB vs the certificate's SPLs; CHIP_ID vs hwID.
 * Returns SNP_OK or the rejection class; `result` (optional) is filled on success.
 * A signer whose chain verified once is cached (by fingerprint) in `trust`.
 */
SNP_API SNP_MUST_CHECK int snp_verify(snp_trust *trust, const snp_report *report,
				      const snp_cert *signer, const snp_verify_opts *opts,
				      snp_verify_result *result, snp_error *err);

/* Verify only the report signature with the signer's key (no chain, no binding). */
SNP_API SNP_MUST_CHECK int snp_report_verify_signature(const snp_report *report,
						       const snp_cert *signer, snp_error *err);

/* ------------------------------------------------------------------ */
/* Guest side: attestation reports and derived keys from the firmware   */

/*
 * One interface, three backends:
 *   "sev-guest[:DEVICE]"  the /dev/sev-guest ioctls (default device /dev/sev-guest)
 *   "tsm[:ROOT]"          configfs-tsm reports (default ROOT /sys/kernel/config/tsm/report)
 *   "sim:SOCKET"          the snpsimd simulator's Unix socket (development and tests only)
 * A NULL or empty spec means $NITRIDE_SNP if set, else auto: tsm, then
 * sev-guest; when neither exists, SNP_E_UNAVAILABLE with a detail that says
 * this is not an SNP guest and how to use the simulator.
 */
typedef struct snp_guest snp_guest;

typedef enum snp_guest_kind {
	SNP_GUEST_SEV_GUEST = 1,
	SNP_GUEST_TSM = 2,
	SNP_GUEST_SIM = 3
} snp_guest_kind;

#define SNP_DEFAULT_SEV_GUEST_DEVICE "/dev/sev-guest"
#define SNP_DEFAULT_TSM_ROOT "/sys/kernel/config/tsm/report"
#define SNP_GUEST_CERTS_MAX (64u * 1024u) /* largest certificate table accepted */

SNP_API SNP_MUST_CHECK int snp_guest_open(const char *spec, snp_guest **out, snp_error *err);
SNP_API void snp_guest_close(snp_guest *g);
SNP_API snp_guest_kind snp_guest_get_kind(const snp_guest *g);
/* The backend as a spec string that snp_guest_open() accepts ("tsm:/sys/…"). */
SNP_API const char *snp_guest_spec(const snp_guest *g);

/*
 * Ask the firmware for a report carrying `report_data` (64 bytes) at `vmpl`
 * (0..3).  *report gets the 1184-byte report (malloc'ed, caller frees).  When
 * `certs` is not NULL an extended report is requested and *certs gets the
 * certificate table (malloc'ed; NULL with *certs_len 0 when the host supplies
 * none).  Throttling (EAGAIN/EBUSY) is retried a bounded number of times.
 * Outputs are written only on success.
 */
SNP_API SNP_MUST_CHECK int snp_guest_get_report(snp_guest *g,
						const uint8_t report_data[SNP_REPORT_DATA_LEN],
						uint32_t vmpl, uint8_t **report, size_t *report_len,
						uint8_t **certs, size_t *certs_len, snp_error *err);

/* MSG_KEY_REQ root key and guest-field-select bits (firmware ABI). */
#define SNP_KEY_ROOT_VCEK 0u
#define SNP_KEY_ROOT_VMRK 1u
#define SNP_KEY_FIELD_POLICY (1ull << 0)
#define SNP_KEY_FIELD_IMAGE_ID (1ull << 1)
#define SNP_KEY_FIELD_FAMILY_ID (1ull << 2)
#define SNP_KEY_FIELD_MEASUREMENT (1ull << 3)
#define SNP_KEY_FIELD_GUEST_SVN (1ull << 4)
#define SNP_KEY_FIELD_TCB_VERSION (1ull << 5)
#define SNP_KEY_FIELD_MASK 0x3Full
#define SNP_DERIVED_KEY_LEN 32u

typedef struct snp_key_request {
	uint32_t root_key;           /* SNP_KEY_ROOT_* */
	uint64_t guest_field_select; /* SNP_KEY_FIELD_* */
	uint32_t vmpl;               /* >= the guest's VMPL */
	uint32_t guest_svn;          /* <= the launch guest SVN; mixed in when selected */
	uint64_t tcb_version;        /* <= COMMITTED_TCB; mixed in when selected */
} snp_key_request;

/* Derive a 32-byte key (MSG_KEY_REQ).  `key` is written only on success; the
 * caller should keep it in secure memory and wipe it. */
SNP_API SNP_MUST_CHECK int snp_guest_derive_key(snp_guest *g, const snp_key_request *req,
						uint8_t key[SNP_DERIVED_KEY_LEN], snp_error *err);

/* ------------------------------------------------------------------ */
/* AMD Key Distribution Service URLs (pure functions; nothing is fetched) */

#define SNP_KDS_BASE_URL "https://kdsintf.amd.com"
#define SNP_URL_MAX 512u

/* VCEK for a chip and TCB: /vcek/v1/<P>/<hwid hex>?[fmcSPL=&]blSPL=&teeSPL=&snpSPL=&ucodeSPL=
 * The hwid is CHIP_ID (64 bytes, 128 hex) or its first 8 bytes on Turin. An all-zero
 * (masked) CHIP_ID is rejected with SNP_E_CHIP_ID. */
SNP_API SNP_MUST_CHECK int snp_kds_vcek_url(snp_product p, const uint8_t chip_id[SNP_CHIP_ID_LEN],
					    const snp_tcb *tcb, char *out, size_t outlen);
/* VLEK: /vlek/v1/<P>/cert?[fmcSPL=&]blSPL=&teeSPL=&snpSPL=&ucodeSPL= */
SNP_API SNP_MUST_CHECK int snp_kds_vlek_url(snp_product p, const snp_tcb *tcb, char *out,
					    size_t outlen);
/* /vcek/v1/<P>/cert_chain (ASK then ARK) or /vlek/v1/<P>/cert_chain (ASVK then ARK). */
SNP_API SNP_MUST_CHECK int snp_kds_chain_url(snp_product p, bool vlek, char *out, size_t outlen);
/* /vcek/v1/<P>/crl or /vlek/v1/<P>/crl */
SNP_API SNP_MUST_CHECK int snp_kds_crl_url(snp_product p, bool vlek, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif /* NITRIDE_SNP_H */
