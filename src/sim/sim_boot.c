#include "sim/sim_boot.h"

#include "common/fileio.h"
#include "sim/sim_launch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
sim_boot_measure(const struct sim_boot *boot, uint8_t out[SNP_MEASUREMENT_LEN], char *err,
		 size_t errlen)
{
	const char *vcpu_type = boot->vcpu_type;
	uint8_t ld[SNP_LD_LEN];
	snp_measure_params p;
	snp_error e = { 0 };
	snp_ovmf *ovmf = NULL;
	uint8_t *fw = NULL;
	size_t fw_len = 0, ld_len = 0;
	uint32_t sig = 0;
	int r, ret = -1;

	snp_measure_params_init(&p);
	p.mode = SNP_MODE_SNP;
	p.vmm = boot->vmm;
	p.vcpus = boot->vcpus;
	p.guest_features = boot->guest_features;
	if (snp_vcpu_type_sig(vcpu_type, &sig) != SNP_OK) {
		(void)snprintf(err, errlen, "key 'boot_vcpu_type': unknown vCPU type '%s'", vcpu_type);
		goto out;
	}
	p.vcpu_sig = sig;
	p.has_kernel = boot->kernel[0] != '\0';
	if (p.has_kernel) {
		if (snp_sha256_file(boot->kernel, p.kernel_sha256, &e) != SNP_OK ||
		    (boot->initrd[0] != '\0' &&
		     snp_sha256_file(boot->initrd, p.initrd_sha256, &e) != SNP_OK)) {
			(void)snprintf(err, errlen, "measured boot: %s", e.detail);
			goto out;
		}
		if (snp_sev_hash_cmdline(boot->append, p.cmdline_sha256) != SNP_OK) {
			(void)snprintf(err, errlen, "measured boot: SHA-256 unavailable");
			goto out;
		}
	}
	if ((r = file_read_all(boot->ovmf, SNP_OVMF_MAX_SIZE, &fw, &fw_len)) != 0) {
		(void)snprintf(err, errlen, "key 'boot_ovmf': %s: %s", boot->ovmf,
			       r == -EFBIG ? "larger than the firmware size cap" : strerror(-r));
		goto out;
	}
	if (snp_ovmf_parse_static(fw, fw_len, &ovmf, &e) != SNP_OK) {
		(void)snprintf(err, errlen, "key 'boot_ovmf': %s: %s", boot->ovmf, e.detail);
		goto out;
	}
	p.ovmf = ovmf;
	if (snp_measure(&p, ld, &ld_len, &e) != SNP_OK || ld_len != SNP_LD_LEN) {
		(void)snprintf(err, errlen, "measured boot: %s", e.detail);
		goto out;
	}
	memcpy(out, ld, SNP_MEASUREMENT_LEN);
	ret = 0;
out:
	snp_ovmf_free(ovmf);
	free(fw);
	return ret;
}
