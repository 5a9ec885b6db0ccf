/*
 * Kept SNP guest handles for nitrided's flows.
 *
 * Opening the guest backend for each report cost, with snpsimd, a connection
 * and a new thread on the simulator's side per flow (≈ 0.1 ms of the report
 * step on these VMs); the kernel devices are opened once as well.  Handles
 * are taken by one flow at a time and given back after a complete request, so
 * concurrent flows each have their own.
 */
#ifndef NITRIDE_NITRIDED_GUEST_POOL_H
#define NITRIDE_NITRIDED_GUEST_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <nitride/snp.h>

#define GUEST_POOL_MAX 8u /* idle handles kept; more concurrent flows open their own */

typedef struct guest_pool guest_pool;

/* A pool for the backend `spec` (NULL: $NITRIDE_SNP or auto, as
 * snp_guest_open).  Returns 0, or -1 when out of memory; opens nothing yet. */
__attribute__((warn_unused_result)) int guest_pool_new(const char *spec, guest_pool **out);

/* Closes the idle handles.  No flow may be using the pool.  NULL-safe. */
void guest_pool_free(guest_pool *p);

/*
 * snp_guest_get_report() through a kept handle, or a new one.  A kept handle
 * that fails (snpsimd closed an idle connection, or was restarted) is closed
 * and the request is made once more on a new handle; a new handle's failure
 * is the answer.  A failed handle is never given back.  Returns an snp status;
 * outputs as snp_guest_get_report().  `opened` (optional) counts the handles
 * this call opened (for tests).
 */
__attribute__((warn_unused_result)) int guest_pool_report(guest_pool *p,
							  const uint8_t report_data[SNP_REPORT_DATA_LEN],
							  uint32_t vmpl, uint8_t **report,
							  size_t *report_len, uint8_t **certs,
							  size_t *certs_len, unsigned *opened,
							  snp_error *err);

#endif
