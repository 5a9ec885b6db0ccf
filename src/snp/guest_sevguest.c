/*
 * sev-guest backend: the /dev/sev-guest ioctls SNP_GET_REPORT,
 * SNP_GET_EXT_REPORT and SNP_GET_DERIVED_KEY (Linux uapi, sevguest_uapi.h).
 *
 * Only plain libc calls (open, ioctl, close) touch the device, so that the
 * LD_PRELOAD test shim (tests/shim/) can stand in for the kernel.
 *
 * Error model (docs/guest-backends.md): errno says how the kernel failed;
 * exitinfo2 says what the firmware (low 32 bits) and the VMM (high 32 bits)
 * answered.  Throttling is retried GUEST_BUSY_TRIES times in all; a
 * too-small certificate buffer is enlarged to what the kernel asks for.
 */
#include "snp/guest_internal.h"

#include "snp/guestmsg.h"
#include "snp/internal.h"
#include "snp/sevguest_uapi.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* Outcome of one ioctl after the throttling retries. */
struct ioctl_result {
	int rc;        /* 0 or -1 */
	int err;       /* errno when rc is -1 */
	uint32_t fw;   /* fw_error */
	uint32_t vmm;  /* vmm_error */
	unsigned tries;
};

static const char *
ioctl_name(unsigned long nr)
{
	if (nr == NT_SNP_GET_REPORT)
		return "SNP_GET_REPORT";
	if (nr == NT_SNP_GET_EXT_REPORT)
		return "SNP_GET_EXT_REPORT";
	return "SNP_GET_DERIVED_KEY";
}

static bool
fw_called(uint32_t fw)
{
	return fw != 0 && fw != NT_SNP_FW_NO_CALL_OLD && fw != NT_SNP_FW_NO_CALL;
}

/* Issue one request, retrying EAGAIN/EBUSY/VMM BUSY with doubling sleeps. */
static void
issue(int fd, unsigned long nr, void *req, void *resp, struct ioctl_result *res)
{
	unsigned delay = GUEST_BUSY_FIRST_MS;

	memset(res, 0, sizeof(*res));
	for (;;) {
		struct nt_snp_guest_request_ioctl io;
		bool busy;

		memset(&io, 0, sizeof(io));
		io.msg_version = NT_SNP_GUEST_MSG_VERSION;
		io.req_data = (uint64_t)(uintptr_t)req;
		io.resp_data = (uint64_t)(uintptr_t)resp;
		res->tries++;
		res->rc = ioctl(fd, nr, &io);
		res->err = res->rc < 0 ? errno : 0;
		res->fw = io.fw_error;
		res->vmm = io.vmm_error;
		if (res->rc == 0)
			return;
		if (res->err == EINTR && res->tries < GUEST_BUSY_TRIES)
			continue;
		busy = res->err == EAGAIN || res->err == EBUSY || res->vmm == SNP_VMM_ERR_BUSY;
		if (!busy || res->tries >= GUEST_BUSY_TRIES)
			return;
		guest_sleep_ms(delay);
		delay *= 2;
	}
}

/* Turn a failed ioctl into an snp_status with a detail naming errno and both codes. */
static int
ioctl_fail(const char *device, unsigned long nr, const struct ioctl_result *res, snp_error *err)
{
	char eb[24];
	const char *en = guest_errno_name(res->err, eb, sizeof(eb));
	const char *what = ioctl_name(nr);

	if (res->err == EAGAIN || res->err == EBUSY || res->vmm == SNP_VMM_ERR_BUSY)
		return snp_fail(err, SNP_E_BUSY,
				"%s %s: still throttled after %u attempts (%s, vmm_error 0x%" PRIx32
				")",
				device, what, res->tries, en, res->vmm);
	if (res->err == ENOTTY)
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"%s %s: ENOTTY: the VMPCK is disabled (after a failed guest request "
				"the sev-guest driver refuses all further requests until the guest "
				"reboots) or the kernel does not know this ioctl",
				device, what);
	if (fw_called(res->fw) || res->vmm != 0)
		return snp_fail(err, SNP_E_FIRMWARE,
				"%s %s: refused: fw_error 0x%" PRIx32 " (%s), vmm_error 0x%" PRIx32
				" (%s)",
				device, what, res->fw, guestmsg_fw_status_name(res->fw), res->vmm, en);
	if (res->err == EINVAL)
		return snp_fail(err, SNP_E_ARGUMENT,
				"%s %s: the kernel rejected the request (EINVAL: message version, "
				"buffer or certificate length)",
				device, what);
	if (res->err == ENODEV || res->err == ENXIO)
		return snp_fail(err, SNP_E_UNAVAILABLE, "%s %s: %s: no SEV-SNP firmware behind it",
				device, what, en);
	if (res->err == EIO)
		return snp_fail(err, SNP_E_FIRMWARE,
				"%s %s: EIO with no firmware code (fw_error 0x%" PRIx32
				", vmm_error 0x%" PRIx32 "): the guest request failed, e.g. a message "
				"sequence overflow",
				device, what, res->fw, res->vmm);
	return snp_fail(err, SNP_E_IO, "%s %s: %s", device, what, en);
}

int
guest_sevguest_open_device(const char *device, int *fd, snp_error *err)
{
	char eb[24];
	int d, e;

	if ((d = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY)) >= 0) {
		*fd = d;
		return SNP_OK;
	}
	e = errno;
	switch (e) {
	case ENOENT:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"%s does not exist: not an SEV-SNP guest, or the sev-guest driver is "
				"not loaded (modprobe sev-guest); to develop without SNP hardware run "
				"snpsimd and set NITRIDE_SNP=sim:/path/to/snpsim.sock",
				device);
	case EACCES:
	case EPERM:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"%s: permission denied: attestation needs root or a udev rule that "
				"gives this user read-write access to the device",
				device);
	case ENODEV:
	case ENXIO:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"%s: %s: the device node exists but no sev-guest driver is bound to it",
				device, guest_errno_name(e, eb, sizeof(eb)));
	default:
		return snp_fail(err, SNP_E_IO, "%s: open: %s", device,
				guest_errno_name(e, eb, sizeof(eb)));
	}
}

/* Check a MSG_REPORT_RSP and copy its report out. */
static int
take_report(const char *device, const struct nt_snp_report_resp *resp,
	    uint8_t report[SNP_REPORT_SIZE], snp_error *err)
{
	const uint8_t *rep = NULL;
	uint32_t status = 0;

	if (guestmsg_decode_report_rsp(resp->data, sizeof(resp->data), &status, &rep) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"%s: malformed MSG_REPORT_RSP (REPORT_SIZE is not %u)", device,
				SNP_REPORT_SIZE);
	if (status != SNP_FW_STATUS_SUCCESS)
		return snp_fail(err, SNP_E_FIRMWARE,
				"%s: firmware status 0x%" PRIx32 " (%s) in MSG_REPORT_RSP", device,
				status, guestmsg_fw_status_name(status));
	memcpy(report, rep, SNP_REPORT_SIZE);
	return SNP_OK;
}

static void
fill_report_req(struct nt_snp_report_req *req, const uint8_t report_data[SNP_REPORT_DATA_LEN],
		uint32_t vmpl)
{
	struct snp_report_req m;
	uint8_t wire[MSG_REPORT_REQ_SIZE];

	memcpy(m.report_data, report_data, SNP_REPORT_DATA_LEN);
	m.vmpl = vmpl;
	guestmsg_encode_report_req(&m, wire);
	memcpy(req, wire, sizeof(*req));
}

static int
plain_report(int fd, const char *device, const uint8_t report_data[SNP_REPORT_DATA_LEN],
	     uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], snp_error *err)
{
	struct nt_snp_report_req req;
	struct nt_snp_report_resp resp;
	struct ioctl_result res;

	fill_report_req(&req, report_data, vmpl);
	memset(&resp, 0, sizeof(resp));
	issue(fd, NT_SNP_GET_REPORT, &req, &resp, &res);
	if (res.rc != 0)
		return ioctl_fail(device, NT_SNP_GET_REPORT, &res, err);
	return take_report(device, &resp, report, err);
}

static int
ext_report(int fd, const char *device, const uint8_t report_data[SNP_REPORT_DATA_LEN],
	   uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], uint8_t **certs, size_t *certs_len,
	   snp_error *err)
{
	struct nt_snp_ext_report_req req;
	struct nt_snp_report_resp resp;
	struct ioctl_result res;
	uint8_t *buf = NULL, *table = NULL;
	uint32_t cap = NT_SNP_PAGE_SIZE;
	size_t used;
	int r, round;

	for (round = 0;; round++) {
		free(buf);
		if ((buf = calloc(1, cap)) == NULL) {
			r = snp_fail(err, SNP_E_NOMEM, "out of memory");
			goto out;
		}
		memset(&req, 0, sizeof(req));
		fill_report_req(&req.data, report_data, vmpl);
		req.certs_address = (uint64_t)(uintptr_t)buf;
		req.certs_len = cap;
		memset(&resp, 0, sizeof(resp));
		issue(fd, NT_SNP_GET_EXT_REPORT, &req, &resp, &res);
		if (res.rc == 0)
			break;
		if (!(res.err == EIO && res.fw == 0 && res.vmm == SNP_VMM_ERR_INVALID_LEN)) {
			r = ioctl_fail(device, NT_SNP_GET_EXT_REPORT, &res, err);
			goto out;
		}
		/* Too small: the kernel wrote the size the host needs into certs_len. */
		if (req.certs_len <= cap || req.certs_len > SNP_GUEST_CERTS_MAX ||
		    round >= GUEST_CERTS_RESIZES) {
			r = snp_fail(err, SNP_E_FIRMWARE,
				     "%s SNP_GET_EXT_REPORT: certificate buffer of %" PRIu32
				     " bytes too small, host asks for %" PRIu32
				     " (limit %u bytes, attempt %d)",
				     device, cap, req.certs_len, SNP_GUEST_CERTS_MAX, round + 1);
			goto out;
		}
		cap = (req.certs_len + NT_SNP_PAGE_SIZE - 1) & ~(NT_SNP_PAGE_SIZE - 1);
	}
	if ((r = take_report(device, &resp, report, err)) != SNP_OK)
		goto out;
	/* The kernel copies the whole certs_len buffer; keep the table itself. */
	used = guest_certs_trim(buf, cap);
	if (used > 0) {
		if ((table = malloc(used)) == NULL) {
			r = snp_fail(err, SNP_E_NOMEM, "out of memory");
			goto out;
		}
		memcpy(table, buf, used);
	}
	*certs = table;
	*certs_len = used;
	table = NULL;
	r = SNP_OK;
out:
	free(buf);
	free(table);
	return r;
}

static int
sevguest_get_report(struct snp_guest *g, const uint8_t report_data[SNP_REPORT_DATA_LEN],
		    uint32_t vmpl, uint8_t report[SNP_REPORT_SIZE], uint8_t **certs,
		    size_t *certs_len, snp_error *err)
{
	if (certs != NULL)
		return ext_report(g->fd, g->path, report_data, vmpl, report, certs, certs_len, err);
	return plain_report(g->fd, g->path, report_data, vmpl, report, err);
}

int
guest_sevguest_derive_key_fd(int fd, const char *device, const snp_key_request *req,
			     uint8_t key[SNP_DERIVED_KEY_LEN], snp_error *err)
{
	struct nt_snp_derived_key_req kreq;
	struct nt_snp_derived_key_resp resp;
	struct ioctl_result res;
	uint8_t wire[MSG_KEY_REQ_SIZE];
	const uint8_t *k = NULL;
	uint32_t status = 0;
	int r;

	guestmsg_encode_key_req(req, wire);
	memcpy(&kreq, wire, sizeof(kreq));
	memset(&resp, 0, sizeof(resp));
	issue(fd, NT_SNP_GET_DERIVED_KEY, &kreq, &resp, &res);
	if (res.rc != 0) {
		r = ioctl_fail(device, NT_SNP_GET_DERIVED_KEY, &res, err);
		goto out;
	}
	if (guestmsg_decode_key_rsp(resp.data, sizeof(resp.data), &status, &k) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "%s: malformed MSG_KEY_RSP", device);
		goto out;
	}
	if (status != SNP_FW_STATUS_SUCCESS) {
		r = snp_fail(err, SNP_E_FIRMWARE,
			     "%s: firmware status 0x%" PRIx32 " (%s) in MSG_KEY_RSP", device, status,
			     guestmsg_fw_status_name(status));
		goto out;
	}
	memcpy(key, k, SNP_DERIVED_KEY_LEN);
	r = SNP_OK;
out:
	OPENSSL_cleanse(&resp, sizeof(resp));
	return r;
}

static int
sevguest_derive_key(struct snp_guest *g, const snp_key_request *req,
		    uint8_t key[SNP_DERIVED_KEY_LEN], snp_error *err)
{
	return guest_sevguest_derive_key_fd(g->fd, g->path, req, key, err);
}

static void
sevguest_close(struct snp_guest *g)
{
	if (g->fd >= 0)
		(void)close(g->fd);
	g->fd = -1;
}

static const struct snp_guest_ops sevguest_ops = {
	.get_report = sevguest_get_report,
	.derive_key = sevguest_derive_key,
	.close = sevguest_close,
};

int
guest_sevguest_open(struct snp_guest *g, snp_error *err)
{
	int r;

	if ((r = guest_sevguest_open_device(g->path, &g->fd, err)) != SNP_OK)
		return r;
	g->ops = &sevguest_ops;
	return SNP_OK;
}
