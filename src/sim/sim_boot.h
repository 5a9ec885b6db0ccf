/*
 * sim_boot — the simulated guest's launch measurement, computed from the
 * images a VMM would load (OVMF, and for measured direct boot the kernel,
 * initrd and command line), the vCPUs and the VMM type, with libsnp's
 * measurement code: the same function `nitride measure` calls, so an
 * operator's expected value and the simulator's report agree by construction
 * only if the inputs agree.
 */
#ifndef NITRIDE_SIM_BOOT_H
#define NITRIDE_SIM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include <nitride/snp.h>

struct sim_boot;

/* Fill out[48] with the SNP launch digest of `boot`.  Returns 0, or -1 with a
 * one-line reason naming the file or key in err[errlen]. */
__attribute__((warn_unused_result)) int sim_boot_measure(const struct sim_boot *boot,
							 uint8_t out[SNP_MEASUREMENT_LEN],
							 char *err, size_t errlen);

#endif
