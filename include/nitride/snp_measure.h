/*
 * libsnp — expected SEV-SNP (and SEV, SEV-ES) launch measurements.
 *
 * The same answers as virtee/sev-snp-measure for the same inputs: an OVMF
 * firmware image, optionally a kernel, initrd and command line (measured
 * direct boot), the number of vCPUs, their CPUID signature, the guest
 * features and the VMM that launches the guest.  Algorithm and decisions:
 * docs/measure.md.
 *
 * Conventions are those of <nitride/snp.h>: int SNP_OK / negative snp_status,
 * `snp_error *err` filled on failure, opaque objects handed over through an
 * out parameter written only on success, NULL-safe *_free().  A malformed
 * firmware image is SNP_E_FORMAT with a detail naming the structure, its file
 * offset and what is wrong; it is never a crash.
 */
#ifndef NITRIDE_SNP_MEASURE_H
#define NITRIDE_SNP_MEASURE_H

#include <nitride/snp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNP_LD_LEN 48u            /* SNP launch digest (SHA-384) */
#define SNP_SEV_LD_LEN 32u        /* SEV / SEV-ES launch digest (SHA-256) */
#define SNP_PAGE_SIZE 4096u
#define SNP_VMSA_SIZE 4096u
#define SNP_VMSA_GPA 0xFFFFFFFFF000ull /* the GPA every VMSA page is measured at */
#define SNP_SHA256_LEN 32u
#define SNP_SEV_HASHES_TABLE_SIZE 176u /* 168-byte table + padding to 16 */

/* Caps chosen for firmware: images live below 4 GiB and real ones are 2–8 MiB. */
#define SNP_OVMF_MAX_SIZE (64u << 20)
#define SNP_OVMF_MAX_TABLE_ENTRIES 64u
#define SNP_OVMF_MAX_SECTIONS 256u
#define SNP_MEASURE_MAX_VCPUS 4096u

typedef enum snp_measure_mode {
	SNP_MODE_SNP = 0,       /* SEV-SNP launch digest (48 bytes) */
	SNP_MODE_SNP_OVMF_HASH, /* SNP digest after the firmware pages only: a seed for ovmf_hash */
	SNP_MODE_SEV_ES,        /* SHA-256 of firmware, hashes table, VMSAs */
	SNP_MODE_SEV            /* SHA-256 of firmware and hashes table */
} snp_measure_mode;

typedef enum snp_vmm_type {
	SNP_VMM_QEMU = 1,
	SNP_VMM_EC2 = 2,
	SNP_VMM_GCE = 3
} snp_vmm_type;

/* PAGE_INFO.PAGE_TYPE values (SNP ABI, SNP_LAUNCH_UPDATE). */
typedef enum snp_page_type {
	SNP_PAGE_NORMAL = 1,
	SNP_PAGE_VMSA = 2,
	SNP_PAGE_ZERO = 3,
	SNP_PAGE_UNMEASURED = 4,
	SNP_PAGE_SECRETS = 5,
	SNP_PAGE_CPUID = 6
} snp_page_type;

/* OVMF SEV metadata section types (edk2 OvmfSevMetadata.asm). */
typedef enum snp_section_type {
	SNP_SECTION_SEC_MEM = 1,
	SNP_SECTION_SECRETS = 2,
	SNP_SECTION_CPUID = 3,
	SNP_SECTION_SVSM_CAA = 4,
	SNP_SECTION_KERNEL_HASHES = 0x10
} snp_section_type;

/* "QEMU", "ec2", "gce" (the reference's spelling); NULL for anything else. */
SNP_API const char *snp_vmm_type_name(snp_vmm_type vmm);
/* "snp", "snp:ovmf-hash", "seves", "sev"; NULL for anything else. */
SNP_API const char *snp_measure_mode_name(snp_measure_mode mode);

/* ------------------------------------------------------------------ */
/* OVMF firmware: footer GUID table and SEV metadata                    */

typedef struct snp_ovmf snp_ovmf;

typedef struct snp_ovmf_section {
	uint32_t gpa;
	uint32_t size;
	uint32_t type; /* an snp_section_type */
} snp_ovmf_section;

/*
 * Parse a firmware image of `len` bytes (at most SNP_OVMF_MAX_SIZE; the image
 * is mapped so that it ends at 4 GiB).  Reads the GUID table that ends 32
 * bytes before the end of the image, and, if the table has the SEV metadata
 * entry, the "ASEV" header and its section descriptors.  An image without the
 * table footer GUID parses with an empty table (as the reference does).
 * Rejected as SNP_E_FORMAT: an image too short for the footer, a table or
 * entry length that points outside the image or below the 18-byte header,
 * more than SNP_OVMF_MAX_TABLE_ENTRIES entries, a metadata offset outside the
 * image, a bad signature or version, descriptors that do not fit the header's
 * size, more than SNP_OVMF_MAX_SECTIONS sections, an unknown section type, and
 * sections that are not page-aligned, run past 4 GiB, overlap each other or
 * overlap the firmware image.
 * snp_ovmf_parse copies the bytes; snp_ovmf_parse_static borrows them: `buf`
 * must then stay valid and unchanged until snp_ovmf_free.
 */
SNP_API SNP_MUST_CHECK int snp_ovmf_parse(const uint8_t *buf, size_t len, snp_ovmf **out,
					  snp_error *err);
SNP_API SNP_MUST_CHECK int snp_ovmf_parse_static(const uint8_t *buf, size_t len, snp_ovmf **out,
						 snp_error *err);
SNP_API void snp_ovmf_free(snp_ovmf *o);

/* The image bytes and their size; the GPA of its first byte (4 GiB - size). */
SNP_API const uint8_t *snp_ovmf_data(const snp_ovmf *o);
SNP_API size_t snp_ovmf_size(const snp_ovmf *o);
SNP_API uint64_t snp_ovmf_gpa(const snp_ovmf *o);

/* The data of the GUID table entry `guid` (16 bytes, EFI mixed-endian order as
 * stored in the image).  *data points into the object.  SNP_E_NOT_FOUND if absent;
 * when a GUID appears twice, the entry nearer the start of the image wins. */
SNP_API SNP_MUST_CHECK int snp_ovmf_table_entry(const snp_ovmf *o, const uint8_t guid[16],
						const uint8_t **data, size_t *len);
SNP_API size_t snp_ovmf_table_count(const snp_ovmf *o);

/* AP reset EIP: the first u32 of the SEV_ES_RESET_BLOCK entry.
 * SNP_E_NOT_FOUND if there is no such entry, SNP_E_FORMAT if it is shorter than 4. */
SNP_API SNP_MUST_CHECK int snp_ovmf_reset_eip(const snp_ovmf *o, uint32_t *eip, snp_error *err);
/* GPA of the SEV hashes table: the first u32 of the SEV_HASH_TABLE_RV entry. */
SNP_API SNP_MUST_CHECK int snp_ovmf_hashes_table_gpa(const snp_ovmf *o, uint32_t *gpa,
						     snp_error *err);
/* True when the image can carry a kernel hashes table for SEV/SEV-ES (the RV entry
 * is present and its GPA is not zero). */
SNP_API bool snp_ovmf_sev_hashes_supported(const snp_ovmf *o);

/* SEV metadata sections in image order (0 when the image has no metadata). */
SNP_API size_t snp_ovmf_section_count(const snp_ovmf *o);
SNP_API SNP_MUST_CHECK int snp_ovmf_get_section(const snp_ovmf *o, size_t i,
						 snp_ovmf_section *out);
/* "SNP_SEC_MEM", "SNP_SECRETS", "CPUID", "SVSM_CAA", "SNP_KERNEL_HASHES"; NULL otherwise. */
SNP_API const char *snp_section_type_name(uint32_t type);

/* ------------------------------------------------------------------ */
/* The SNP launch digest: a chain of SHA-384 over PAGE_INFO structures   */

typedef struct snp_ld snp_ld;

/* Called after every update with the page type, its GPA, the CONTENTS field
 * (SHA-384 of the page, or zeros) and the new digest. */
typedef void (*snp_ld_trace_fn)(void *arg, unsigned page_type, uint64_t gpa,
				const uint8_t contents[SNP_LD_LEN], const uint8_t ld[SNP_LD_LEN]);

/* A digest starting at `seed` (SNP_LD_LEN bytes), or at zeros when seed is NULL.
 * SNP_E_NOMEM, or SNP_E_INTERNAL when OpenSSL has no SHA-384. */
SNP_API SNP_MUST_CHECK int snp_ld_new(const uint8_t *seed, snp_ld **out, snp_error *err);
SNP_API void snp_ld_free(snp_ld *ld);
SNP_API void snp_ld_set_trace(snp_ld *ld, snp_ld_trace_fn fn, void *arg);
/* The current digest. */
SNP_API void snp_ld_get(const snp_ld *ld, uint8_t out[SNP_LD_LEN]);
/* Number of updates so far. */
SNP_API uint64_t snp_ld_updates(const snp_ld *ld);

/* One NORMAL update per 4 KiB page of data, at gpa, gpa+4096, …  `len` must be a
 * multiple of 4096 and the pages must end at or below 2^52 (SNP_E_ARGUMENT). */
SNP_API SNP_MUST_CHECK int snp_ld_update_normal(snp_ld *ld, uint64_t gpa, const uint8_t *data,
						size_t len, snp_error *err);
/* One VMSA update at SNP_VMSA_GPA. */
SNP_API SNP_MUST_CHECK int snp_ld_update_vmsa(snp_ld *ld, const uint8_t page[SNP_VMSA_SIZE],
					      snp_error *err);
/* One ZERO (or UNMEASURED) update per page of [gpa, gpa+len); len a multiple of 4096. */
SNP_API SNP_MUST_CHECK int snp_ld_update_zero(snp_ld *ld, uint64_t gpa, uint64_t len,
					      snp_error *err);
SNP_API SNP_MUST_CHECK int snp_ld_update_unmeasured(snp_ld *ld, uint64_t gpa, uint64_t len,
						    snp_error *err);
/* Exactly one SECRETS (or CPUID) update at gpa. */
SNP_API SNP_MUST_CHECK int snp_ld_update_secrets(snp_ld *ld, uint64_t gpa, snp_error *err);
SNP_API SNP_MUST_CHECK int snp_ld_update_cpuid(snp_ld *ld, uint64_t gpa, snp_error *err);

/* ------------------------------------------------------------------ */
/* VMSAs and vCPU signatures                                            */

#define SNP_VMSA_BSP_EIP 0xFFFFFFF0u

/*
 * The initial VMSA (SEV-ES save area, 4096 bytes, unset bytes zero) of a vCPU
 * starting at `eip` (SNP_VMSA_BSP_EIP for the BSP, the firmware's reset EIP for
 * APs), with `sev_features` and, for QEMU, rdx = vcpu_sig.  EC2 and GCE put
 * 0x600 in rdx and ignore vcpu_sig.  SNP_E_ARGUMENT for an unknown vmm.
 */
SNP_API SNP_MUST_CHECK int snp_vmsa_build(snp_vmm_type vmm, uint32_t eip, uint64_t sev_features,
					  uint64_t vcpu_sig, uint8_t out[SNP_VMSA_SIZE]);

/* CPUID Fn0000_0001_EAX for a family, model and stepping (AMD pub. 25481). */
SNP_API uint32_t snp_vcpu_sig(unsigned family, unsigned model, unsigned stepping);
/* Signature of a QEMU CPU model ("EPYC-v4", "EPYC-Milan", …; exact spelling).
 * SNP_E_NOT_FOUND for an unknown name. */
SNP_API SNP_MUST_CHECK int snp_vcpu_type_sig(const char *name, uint32_t *sig);
/* The i-th known CPU model name, for listings; NULL past the end. */
SNP_API const char *snp_vcpu_type_name(size_t i);

/* ------------------------------------------------------------------ */
/* SEV hashes table (measured direct boot: kernel, initrd, command line) */

/* SHA-256 of a buffer, and of a whole file read in chunks (SNP_E_IO naming the file). */
SNP_API SNP_MUST_CHECK int snp_sha256(const uint8_t *data, size_t len, uint8_t out[SNP_SHA256_LEN]);
SNP_API SNP_MUST_CHECK int snp_sha256_file(const char *path, uint8_t out[SNP_SHA256_LEN],
					   snp_error *err);
/* SHA-256 of the command line as the guest sees it: its bytes and a NUL.  NULL and ""
 * both hash the single NUL byte. */
SNP_API SNP_MUST_CHECK int snp_sev_hash_cmdline(const char *cmdline, uint8_t out[SNP_SHA256_LEN]);
/* The 176-byte table QEMU places in guest memory: header GUID, length 168, then
 * the cmdline, initrd and kernel entries (GUID, length 50, SHA-256), zero padding. */
SNP_API void snp_sev_hashes_table(const uint8_t kernel[SNP_SHA256_LEN],
				  const uint8_t initrd[SNP_SHA256_LEN],
				  const uint8_t cmdline[SNP_SHA256_LEN],
				  uint8_t out[SNP_SEV_HASHES_TABLE_SIZE]);
/* A zero page with the table at `offset` (SNP_E_ARGUMENT unless it fits in the page). */
SNP_API SNP_MUST_CHECK int snp_sev_hashes_page(const uint8_t table[SNP_SEV_HASHES_TABLE_SIZE],
					       uint32_t offset, uint8_t out[SNP_PAGE_SIZE]);

/* ------------------------------------------------------------------ */
/* The whole launch measurement                                         */

typedef struct snp_measure_params {
	snp_measure_mode mode;
	snp_vmm_type vmm;
	unsigned vcpus;          /* 0..SNP_MEASURE_MAX_VCPUS; unused in SEV mode */
	uint64_t vcpu_sig;       /* rdx of QEMU VMSAs (CPUID 1 EAX) */
	uint64_t guest_features; /* VMSA SEV_FEATURES (SNP only; SEV-ES uses 0) */
	const snp_ovmf *ovmf;    /* required; borrowed */
	const uint8_t *ovmf_hash; /* SNP: SNP_LD_LEN-byte seed replacing the firmware pages, or NULL */
	bool has_kernel;         /* measured direct boot: the three hashes below are used */
	uint8_t kernel_sha256[SNP_SHA256_LEN];
	uint8_t initrd_sha256[SNP_SHA256_LEN];  /* snp_measure_params_init: SHA-256 of "" */
	uint8_t cmdline_sha256[SNP_SHA256_LEN]; /* snp_measure_params_init: SHA-256 of "\0" */
	snp_ld_trace_fn trace;   /* SNP modes: every PAGE_INFO update, optional */
	void *trace_arg;
} snp_measure_params;

/* Defaults: SNP mode, QEMU, 1 vCPU, signature 0, guest features 0x1 (SNPActive),
 * no kernel (initrd and command line hashes set to their "absent" values). */
SNP_API void snp_measure_params_init(snp_measure_params *p);

/*
 * Compute the launch measurement.  `out` gets SNP_LD_LEN bytes in the SNP modes
 * and SNP_SEV_LD_LEN bytes in SEV and SEV-ES; *out_len says which (out must have
 * room for SNP_LD_LEN).  Errors: SNP_E_ARGUMENT for bad parameters; SNP_E_FORMAT
 * when the firmware cannot be measured as asked (size not a multiple of 4 KiB,
 * no reset EIP, a kernel but no place for its hashes, a hashes section that is
 * not one page); SNP_E_NOMEM, SNP_E_INTERNAL.
 */
SNP_API SNP_MUST_CHECK int snp_measure(const snp_measure_params *p, uint8_t out[SNP_LD_LEN],
				       size_t *out_len, snp_error *err);

/* The VMSA page of vCPU `index` (< p->vcpus) exactly as snp_measure measures it
 * (SNP and SEV-ES modes). */
SNP_API SNP_MUST_CHECK int snp_measure_vmsa(const snp_measure_params *p, unsigned index,
					    uint8_t out[SNP_VMSA_SIZE], snp_error *err);

#ifdef __cplusplus
}
#endif

#endif /* NITRIDE_SNP_MEASURE_H */
