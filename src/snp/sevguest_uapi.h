/*
 * The Linux <linux/sev-guest.h> ioctl ABI, restated with our own names so
 * that the build does not depend on the kernel headers installed (Debian's
 * linux-libc-dev lags the kernel).  Internal; shared by the sev-guest
 * backend, its unit test and the LD_PRELOAD test shim.
 *
 * Every layout below is the kernel's byte for byte on x86-64 (little-endian,
 * natural alignment); the _Static_asserts pin the sizes and the ioctl
 * numbers quoted in docs/guest-backends.md and snp-format.md §9.
 */
#ifndef NITRIDE_SNP_SEVGUEST_UAPI_H
#define NITRIDE_SNP_SEVGUEST_UAPI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#include "snp/guestmsg.h"

/* struct snp_report_req: the MSG_REPORT_REQ the firmware receives. */
struct nt_snp_report_req {
	uint8_t user_data[64];
	uint32_t vmpl;
	uint8_t rsvd[28];
};

/* struct snp_report_resp: room for MSG_REPORT_RSP (32 + 1184 bytes used). */
struct nt_snp_report_resp {
	uint8_t data[4000];
};

/* struct snp_derived_key_req: MSG_KEY_REQ version 1. */
struct nt_snp_derived_key_req {
	uint32_t root_key_select;
	uint32_t rsvd;
	uint64_t guest_field_select;
	uint32_t vmpl;
	uint32_t guest_svn;
	uint64_t tcb_version;
};

/* struct snp_derived_key_resp: MSG_KEY_RSP. */
struct nt_snp_derived_key_resp {
	uint8_t data[64];
};

/* struct snp_guest_request_ioctl.  exitinfo2 carries the firmware error in
 * its low 32 bits and the VMM error in its high 32 bits; the kernel presets
 * it to a "no firmware call" value before issuing the request. */
struct nt_snp_guest_request_ioctl {
	uint8_t msg_version; /* must be non-zero (-EINVAL) */
	uint64_t req_data;   /* user pointer to the request structure */
	uint64_t resp_data;  /* user pointer to the response structure */
	union {
		uint64_t exitinfo2;
		struct {
			uint32_t fw_error;
			uint32_t vmm_error;
		};
	};
};

/* struct snp_ext_report_req: certs_len must be page-aligned and at most
 * NT_SEV_FW_BLOB_MAX_SIZE; on a too-small buffer the kernel rewrites it. */
struct nt_snp_ext_report_req {
	struct nt_snp_report_req data;
	uint64_t certs_address;
	uint32_t certs_len;
};

#define NT_SNP_GUEST_MSG_VERSION 1u
#define NT_SNP_PAGE_SIZE 4096u
#define NT_SEV_FW_BLOB_MAX_SIZE (16u * 1024u) /* the kernel's cap on certs_len */
/* Values the kernel presets in fw_error before a request reaches the
 * firmware (0xff in older kernels, SEV_RET_NO_FW_CALL = -1 in newer). */
#define NT_SNP_FW_NO_CALL_OLD 0xffu
#define NT_SNP_FW_NO_CALL 0xffffffffu

#define NT_SNP_GUEST_REQ_IOC_TYPE 'S'
#define NT_SNP_GET_REPORT _IOWR(NT_SNP_GUEST_REQ_IOC_TYPE, 0x0, struct nt_snp_guest_request_ioctl)
#define NT_SNP_GET_DERIVED_KEY \
	_IOWR(NT_SNP_GUEST_REQ_IOC_TYPE, 0x1, struct nt_snp_guest_request_ioctl)
#define NT_SNP_GET_EXT_REPORT \
	_IOWR(NT_SNP_GUEST_REQ_IOC_TYPE, 0x2, struct nt_snp_guest_request_ioctl)

_Static_assert(sizeof(struct nt_snp_report_req) == 96, "snp_report_req is 96 bytes");
_Static_assert(sizeof(struct nt_snp_report_req) == MSG_REPORT_REQ_SIZE, "= MSG_REPORT_REQ");
_Static_assert(sizeof(struct nt_snp_report_resp) == 4000, "snp_report_resp is 4000 bytes");
_Static_assert(sizeof(struct nt_snp_derived_key_req) == 32, "snp_derived_key_req is 32 bytes");
_Static_assert(sizeof(struct nt_snp_derived_key_req) == MSG_KEY_REQ_SIZE, "= MSG_KEY_REQ");
_Static_assert(sizeof(struct nt_snp_derived_key_resp) == MSG_KEY_RSP_SIZE, "= MSG_KEY_RSP");
_Static_assert(sizeof(struct nt_snp_guest_request_ioctl) == 32, "snp_guest_request_ioctl");
_Static_assert(offsetof(struct nt_snp_guest_request_ioctl, req_data) == 8, "req_data at 8");
_Static_assert(offsetof(struct nt_snp_guest_request_ioctl, exitinfo2) == 24, "exitinfo2 at 24");
_Static_assert(offsetof(struct nt_snp_guest_request_ioctl, vmm_error) == 28, "vmm_error high");
_Static_assert(offsetof(struct nt_snp_ext_report_req, certs_address) == 96, "certs_address");
_Static_assert(offsetof(struct nt_snp_ext_report_req, certs_len) == 104, "certs_len");
_Static_assert(sizeof(struct nt_snp_ext_report_req) == 112, "96 + 8 + 4, padded to 8");
_Static_assert(NT_SNP_GET_REPORT == 0xC0205300u, "SNP_GET_REPORT");
_Static_assert(NT_SNP_GET_DERIVED_KEY == 0xC0205301u, "SNP_GET_DERIVED_KEY");
_Static_assert(NT_SNP_GET_EXT_REPORT == 0xC0205302u, "SNP_GET_EXT_REPORT");

#endif
