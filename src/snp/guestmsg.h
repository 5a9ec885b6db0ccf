/*
 * SEV-SNP guest request messages as the firmware defines them (SEV-SNP
 * firmware ABI, MSG_REPORT_REQ/RSP and MSG_KEY_REQ/RSP), shared by the guest
 * backends, the simulator and the /dev/sev-guest test shim.  Internal.
 *
 * Every decoder takes the exact byte count and fails (-1) on a short buffer
 * or non-zero reserved bytes; encoders write into fixed-size arrays.
 */
#ifndef NITRIDE_SNP_GUESTMSG_H
#define NITRIDE_SNP_GUESTMSG_H

#include <nitride/snp.h>

#define MSG_REPORT_REQ_SIZE 96u   /* user_data[64], vmpl u32, reserved[28] */
#define MSG_REPORT_RSP_HDR_SIZE 32u /* status u32, report_size u32, reserved[24] */
#define MSG_REPORT_RSP_SIZE (MSG_REPORT_RSP_HDR_SIZE + SNP_REPORT_SIZE)
#define MSG_KEY_REQ_SIZE 32u      /* root_key_select u32, rsvd u32, gfs u64, vmpl u32, svn u32, tcb u64 */
#define MSG_KEY_RSP_SIZE 64u      /* status u32, reserved[28], key[32] */

/* MSG_*_RSP status values */
#define SNP_FW_STATUS_SUCCESS 0x00u
#define SNP_FW_STATUS_INVALID_PARAM 0x16u
#define SNP_FW_STATUS_INVALID_KEY 0x27u

/* Firmware/VMM error split of the ioctl's exitinfo2 (Linux uapi). */
#define SNP_VMM_ERR_SHIFT 32
#define SNP_VMM_ERR_INVALID_LEN 1u
#define SNP_VMM_ERR_BUSY 2u

struct snp_report_req {
	uint8_t report_data[SNP_REPORT_DATA_LEN];
	uint32_t vmpl;
};

void guestmsg_encode_report_req(const struct snp_report_req *req,
				uint8_t out[MSG_REPORT_REQ_SIZE]);
__attribute__((warn_unused_result)) int guestmsg_decode_report_req(const uint8_t *in, size_t len,
								   struct snp_report_req *req);

/* Response: status and, when status is 0, the report. */
void guestmsg_encode_report_rsp(uint32_t status, const uint8_t report[SNP_REPORT_SIZE],
				uint8_t out[MSG_REPORT_RSP_SIZE]);
/* *report points into `in` (SNP_REPORT_SIZE bytes) when *status is 0. */
__attribute__((warn_unused_result)) int guestmsg_decode_report_rsp(const uint8_t *in, size_t len,
								   uint32_t *status,
								   const uint8_t **report);

void guestmsg_encode_key_req(const snp_key_request *req, uint8_t out[MSG_KEY_REQ_SIZE]);
/* Rejects reserved bits in root_key_select (31:1) and guest_field_select (63:6). */
__attribute__((warn_unused_result)) int guestmsg_decode_key_req(const uint8_t *in, size_t len,
								snp_key_request *req);

void guestmsg_encode_key_rsp(uint32_t status, const uint8_t key[SNP_DERIVED_KEY_LEN],
			     uint8_t out[MSG_KEY_RSP_SIZE]);
/* *key points into `in` when *status is 0. */
__attribute__((warn_unused_result)) int guestmsg_decode_key_rsp(const uint8_t *in, size_t len,
								uint32_t *status, const uint8_t **key);

/* Text for a firmware status ("INVALID_PARAM"), never NULL. */
const char *guestmsg_fw_status_name(uint32_t status);

#endif
