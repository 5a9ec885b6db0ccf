/*
 * sim_launch — the simulated guest's launch configuration: what the host and
 * the ID block decided at SNP_LAUNCH_FINISH, plus the platform state the
 * firmware reports (TCB versions, firmware version, chip id).
 *
 * Sources, in order: built-in defaults (sim_launch_init), an INI file
 * (sim_launch_load_file, keys in an optional [launch] section), then
 * individual keys (sim_launch_set, what snpsimd's flags call).  Then
 * sim_launch_finalize() resolves the defaults that depend on other keys (the
 * TCB versions per product) and checks cross-field rules.
 *
 * Errors are one line written into err[errlen]: file errors name the file, the
 * line and the key ("launch.ini:7: key 'policy': bit 17 must be 1").
 * Functions return 0 or -1.
 */
#ifndef NITRIDE_SIM_LAUNCH_H
#define NITRIDE_SIM_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <nitride/snp.h>
#include <nitride/snp_measure.h>

#define SIM_LAUNCH_ERR_MAX 320
#define SIM_PATH_MAX 1024
#define SIM_APPEND_MAX 4096

/* Index of the four TCB_VERSION values. */
enum sim_tcb_which { SIM_TCB_CURRENT = 0, SIM_TCB_COMMITTED, SIM_TCB_LAUNCH, SIM_TCB_REPORTED, SIM_TCB_COUNT };
/* Components that may be set one by one (current_tcb_bl = 3). */
enum sim_tcb_comp { SIM_COMP_FMC = 0, SIM_COMP_BL, SIM_COMP_TEE, SIM_COMP_SNP, SIM_COMP_UCODE, SIM_COMP_COUNT };

struct sim_launch {
	snp_product product;
	uint8_t measurement[SNP_MEASUREMENT_LEN];
	uint8_t host_data[SNP_HOST_DATA_LEN];
	uint8_t family_id[SNP_ID_LEN];
	uint8_t image_id[SNP_ID_LEN];
	uint8_t id_key_digest[SNP_KEY_DIGEST_LEN];
	uint8_t author_key_digest[SNP_KEY_DIGEST_LEN]; /* non-zero sets KEY_INFO.AUTHOR_KEY_EN */
	uint64_t policy;
	uint32_t guest_svn;
	uint64_t platform_info;
	uint64_t tcb[SIM_TCB_COUNT];        /* resolved by sim_launch_finalize */
	uint8_t current_version[3];         /* major, minor, build */
	uint8_t committed_version[3];
	uint8_t chip_id[SNP_CHIP_ID_LEN];   /* valid when chip_id_set (else the state's chip) */
	bool chip_id_set;
	bool mask_chip_id;
	unsigned signing_key;               /* SNP_SIGNING_KEY_VCEK or _VLEK */
	unsigned report_version;            /* 2, 3 or 5 */
	uint32_t guest_vmpl;                /* the VMPL the simulated guest runs at (0..3) */
	uint64_t launch_mit_vector;         /* reported in version 5 */
	uint64_t current_mit_vector;

	/* Measured boot (issue 7): when boot.ovmf is set, finalize computes
	 * MEASUREMENT from these inputs exactly as `nitride measure` does. */
	struct sim_boot {
		char ovmf[SIM_PATH_MAX];
		char kernel[SIM_PATH_MAX];
		char initrd[SIM_PATH_MAX];
		char append[SIM_APPEND_MAX];
		bool append_set;
		uint32_t vcpus;            /* default 1 */
		char vcpu_type[32];        /* default EPYC-v4 */
		snp_vmm_type vmm;          /* default QEMU */
		uint64_t guest_features;   /* default 0x1 */
	} boot;

	/* What was given explicitly (for finalize). */
	bool measurement_set;
	bool tcb_set[SIM_TCB_COUNT];
	uint8_t tcb_comp[SIM_TCB_COUNT][SIM_COMP_COUNT];
	unsigned tcb_comp_set[SIM_TCB_COUNT]; /* bit per sim_tcb_comp */
	bool committed_version_set;
};

/* Defaults: Genoa, zero digests, policy 0x30000, guest SVN 0, platform info 0x3,
 * the product's default TCB everywhere, firmware 1.55.21, VCEK, version 3, VMPL 0. */
void sim_launch_init(struct sim_launch *l);

/* Read an INI file (at most 64 KiB).  Unknown keys or sections are errors. */
__attribute__((warn_unused_result)) int sim_launch_load_file(struct sim_launch *l, const char *path,
							      char *err, size_t errlen);

/* Set one key from its text value.  The error names the key, not a location. */
__attribute__((warn_unused_result)) int sim_launch_set(struct sim_launch *l, const char *key,
						       const char *value, char *err, size_t errlen);

/* Resolve TCB defaults (committed/launch/reported default to current) and
 * per-component keys, check cross-field rules, and compute MEASUREMENT from
 * the boot_* inputs when boot_ovmf is set (an explicit measurement with
 * boot_ovmf is an error: the two would disagree). */
__attribute__((warn_unused_result)) int sim_launch_finalize(struct sim_launch *l, char *err,
							     size_t errlen);

/* The key names, for building command-line options and documentation. */
size_t sim_launch_key_count(void);
const char *sim_launch_key_name(size_t i);
const char *sim_launch_key_help(size_t i);

/* The product's default TCB (Milan bl 3 snp 8 ucode 115; Genoa bl 10 snp 27
 * ucode 88; Turin fmc 0 bl 1 snp 2 ucode 71, as in real reports). */
uint64_t sim_launch_default_tcb(snp_product p);

/* Print the resolved configuration as key = value lines (no secrets in it). */
void sim_launch_print(const struct sim_launch *l, FILE *f);

#endif
