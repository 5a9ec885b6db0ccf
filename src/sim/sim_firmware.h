/*
 * sim_firmware — the simulated SEV-SNP firmware's guest-request side:
 * MSG_REPORT_REQ and MSG_KEY_REQ answered as the AMD firmware does for one
 * launched guest (docs/snpsim.md).
 *
 * A sim_fw is immutable after sim_fw_new() and may serve several threads.
 */
#ifndef NITRIDE_SIM_FIRMWARE_H
#define NITRIDE_SIM_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "sim/sim_launch.h"
#include "sim/sim_state.h"
#include "snp/guestmsg.h"

struct sim_fw;

/*
 * "Launch" a guest with the finalised configuration `l`: resolve the chip id
 * (the state's unless set), obtain the signing key (the VCEK or VLEK for the
 * product at REPORTED_TCB) and build the certificate table, and draw a random
 * REPORT_ID.  Returns 0 or -1 with err.
 */
__attribute__((warn_unused_result)) int sim_fw_new(const struct sim_launch *l, struct sim_state *st,
						   struct sim_fw **out, char *err, size_t errlen);
void sim_fw_free(struct sim_fw *fw);

/* The launch configuration in effect (chip_id resolved). */
const struct sim_launch *sim_fw_launch(const struct sim_fw *fw);

/*
 * ATTESTATION_REPORT for `req` into report[]; returns the firmware status:
 * SNP_FW_STATUS_SUCCESS, or SNP_FW_STATUS_INVALID_PARAM (VMPL above 3 or below
 * the guest's VMPL) with report[] zeroed.
 */
uint32_t sim_fw_get_report(const struct sim_fw *fw, const struct snp_report_req *req,
			   uint8_t report[SNP_REPORT_SIZE]);

/*
 * MSG_KEY_REQ: 32-byte derived key into key[]; returns SNP_FW_STATUS_SUCCESS or
 * SNP_FW_STATUS_INVALID_PARAM (root or field-select reserved bits, VMPL above 3
 * or below the guest's, GUEST_SVN above the launch SVN, TCB_VERSION above
 * COMMITTED_TCB in any component or with reserved bytes) with key[] zeroed.
 */
uint32_t sim_fw_derive_key(const struct sim_fw *fw, const snp_key_request *req,
			   uint8_t key[SNP_DERIVED_KEY_LEN]);

/* Wire forms: `req` is the raw request payload.  Return -1 when its length is not
 * the message's (not a request at all), else 0 with rsp[] filled (status inside:
 * reserved bits set in a well-sized request are INVALID_PARAM, as on hardware). */
__attribute__((warn_unused_result)) int sim_fw_report_msg(const struct sim_fw *fw, const uint8_t *req,
							  size_t len, uint8_t rsp[MSG_REPORT_RSP_SIZE]);
__attribute__((warn_unused_result)) int sim_fw_key_msg(const struct sim_fw *fw, const uint8_t *req,
						       size_t len, uint8_t rsp[MSG_KEY_RSP_SIZE]);

/* The extended-report certificate table (VCEK or VLEK, ASK or ASVK, ARK), owned by fw. */
const uint8_t *sim_fw_certtable(const struct sim_fw *fw, size_t *len);
/* DER of the signing certificate, owned by fw. */
const uint8_t *sim_fw_signer_der(const struct sim_fw *fw, size_t *len);

#endif
