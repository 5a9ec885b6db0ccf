#include "snp/guestmsg.h"

#include "common/rbuf.h"
#include "snp/internal.h"

#include <string.h>

void
guestmsg_encode_report_req(const struct snp_report_req *req, uint8_t out[MSG_REPORT_REQ_SIZE])
{
	memset(out, 0, MSG_REPORT_REQ_SIZE);
	memcpy(out, req->report_data, SNP_REPORT_DATA_LEN);
	put_u32le(out + SNP_REPORT_DATA_LEN, req->vmpl);
}

int
guestmsg_decode_report_req(const uint8_t *in, size_t len, struct snp_report_req *req)
{
	struct rbuf b;

	if (len != MSG_REPORT_REQ_SIZE)
		return -1;
	rbuf_init(&b, in, len);
	if (rbuf_get_bytes(&b, req->report_data, SNP_REPORT_DATA_LEN) != 0 ||
	    rbuf_get_u32le(&b, &req->vmpl) != 0 || rbuf_expect_zero(&b, 28, NULL) != 0)
		return -1;
	return 0;
}

void
guestmsg_encode_report_rsp(uint32_t status, const uint8_t report[SNP_REPORT_SIZE],
			   uint8_t out[MSG_REPORT_RSP_SIZE])
{
	memset(out, 0, MSG_REPORT_RSP_SIZE);
	put_u32le(out, status);
	if (status == SNP_FW_STATUS_SUCCESS && report != NULL) {
		put_u32le(out + 4, SNP_REPORT_SIZE);
		memcpy(out + MSG_REPORT_RSP_HDR_SIZE, report, SNP_REPORT_SIZE);
	}
}

int
guestmsg_decode_report_rsp(const uint8_t *in, size_t len, uint32_t *status, const uint8_t **report)
{
	struct rbuf b;
	uint32_t size;

	if (len < MSG_REPORT_RSP_HDR_SIZE)
		return -1;
	rbuf_init(&b, in, len);
	if (rbuf_get_u32le(&b, status) != 0 || rbuf_get_u32le(&b, &size) != 0 ||
	    rbuf_skip(&b, 24) != 0)
		return -1;
	if (*status != SNP_FW_STATUS_SUCCESS)
		return 0;
	/* The kernel's buffer is 4000 bytes; the firmware says how much is the report. */
	if (size != SNP_REPORT_SIZE || rbuf_get_direct(&b, report, SNP_REPORT_SIZE) != 0)
		return -1;
	return 0;
}

void
guestmsg_encode_key_req(const snp_key_request *req, uint8_t out[MSG_KEY_REQ_SIZE])
{
	memset(out, 0, MSG_KEY_REQ_SIZE);
	put_u32le(out + 0x00, req->root_key);
	put_u64le(out + 0x08, req->guest_field_select);
	put_u32le(out + 0x10, req->vmpl);
	put_u32le(out + 0x14, req->guest_svn);
	put_u64le(out + 0x18, req->tcb_version);
}

int
guestmsg_decode_key_req(const uint8_t *in, size_t len, snp_key_request *req)
{
	struct rbuf b;

	if (len != MSG_KEY_REQ_SIZE)
		return -1;
	rbuf_init(&b, in, len);
	if (rbuf_get_u32le(&b, &req->root_key) != 0 || rbuf_expect_zero(&b, 4, NULL) != 0 ||
	    rbuf_get_u64le(&b, &req->guest_field_select) != 0 ||
	    rbuf_get_u32le(&b, &req->vmpl) != 0 || rbuf_get_u32le(&b, &req->guest_svn) != 0 ||
	    rbuf_get_u64le(&b, &req->tcb_version) != 0)
		return -1;
	if ((req->root_key & ~UINT32_C(1)) != 0 || (req->guest_field_select & ~SNP_KEY_FIELD_MASK) != 0)
		return -1;
	return 0;
}

void
guestmsg_encode_key_rsp(uint32_t status, const uint8_t key[SNP_DERIVED_KEY_LEN],
			uint8_t out[MSG_KEY_RSP_SIZE])
{
	memset(out, 0, MSG_KEY_RSP_SIZE);
	put_u32le(out, status);
	if (status == SNP_FW_STATUS_SUCCESS && key != NULL)
		memcpy(out + 0x20, key, SNP_DERIVED_KEY_LEN);
}

int
guestmsg_decode_key_rsp(const uint8_t *in, size_t len, uint32_t *status, const uint8_t **key)
{
	struct rbuf b;

	if (len != MSG_KEY_RSP_SIZE)
		return -1;
	rbuf_init(&b, in, len);
	if (rbuf_get_u32le(&b, status) != 0 || rbuf_skip(&b, 28) != 0)
		return -1;
	if (*status != SNP_FW_STATUS_SUCCESS)
		return 0;
	return rbuf_get_direct(&b, key, SNP_DERIVED_KEY_LEN);
}

const char *
guestmsg_fw_status_name(uint32_t status)
{
	switch (status) {
	case SNP_FW_STATUS_SUCCESS: return "SUCCESS";
	case SNP_FW_STATUS_INVALID_PARAM: return "INVALID_PARAM";
	case SNP_FW_STATUS_INVALID_KEY: return "INVALID_KEY";
	default: return "unknown firmware status";
	}
}
