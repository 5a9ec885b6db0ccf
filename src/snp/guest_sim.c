/*
 * sim backend: the snpsimd simulator over its Unix socket (simproto.h).
 * Development and tests only: snpsimd's reports chain to the simulator's
 * own ARK, which no verifier trusts unless told to.
 *
 * One frame each way per request.  The connection opened by snp_guest_open
 * to check that snpsimd is there carries the first request and is kept for
 * the next ones (a caller that keeps its handle, such as nitrided, makes no
 * connection per report); if snpsimd closed it meanwhile (it closes idle
 * connections after SIMPROTO_TIMEOUT_MS) the request goes on a new one.  Firmware refusals come
 * back inside the MSG_*_RSP status (as from real firmware): SNP_E_FIRMWARE.
 * SIM_MSG_ERROR (a request snpsimd could not even read) carries an
 * snp_status and a text: SNP_E_FORMAT for format/argument codes, else
 * SNP_E_FIRMWARE.
 */
#include "snp/guest_internal.h"

#include "common/rbuf.h"
#include "snp/guestmsg.h"
#include "snp/internal.h"
#include "snp/simproto.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SIM_ERROR_TEXT_MAX 160u

/* Connect to the simulator.  Returns SNP_OK and *fd, or SNP_E_UNAVAILABLE/IO. */
static int
sim_connect(const char *path, int *fd, snp_error *err)
{
	struct sockaddr_un sa;
	char eb[24];
	size_t n = strlen(path);
	int s = -1, e;

	if (n >= sizeof(sa.sun_path))
		return snp_fail(err, SNP_E_ARGUMENT,
				"sim:%s: socket path longer than %zu bytes", path,
				sizeof(sa.sun_path) - 1);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n + 1);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return snp_fail(err, SNP_E_IO, "sim:%s: socket: %s", path,
				guest_errno_name(errno, eb, sizeof(eb)));
	if (connect(s, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		(void)close(s);
		if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
			return snp_fail(err, SNP_E_UNAVAILABLE,
					"sim:%s: snpsimd is not listening there (%s); start it with "
					"snpsimd --state-dir DIR and use DIR/snpsim.sock",
					path, guest_errno_name(e, eb, sizeof(eb)));
		if (e == EACCES || e == EPERM)
			return snp_fail(err, SNP_E_UNAVAILABLE, "sim:%s: permission denied", path);
		return snp_fail(err, SNP_E_IO, "sim:%s: connect: %s", path,
				guest_errno_name(e, eb, sizeof(eb)));
	}
	*fd = s;
	return SNP_OK;
}

/* SIM_MSG_ERROR payload: u32le code, then text (printable ASCII kept). */
static int
sim_error(const char *path, const uint8_t *p, size_t len, snp_error *err)
{
	char text[SIM_ERROR_TEXT_MAX + 1];
	struct rbuf b;
	uint32_t code = 0;
	size_t i, n = 0;
	int status;

	rbuf_init(&b, p, len);
	if (rbuf_get_u32le(&b, &code) != 0)
		return snp_fail(err, SNP_E_FORMAT, "sim:%s: malformed error frame", path);
	for (i = rbuf_offset(&b); i < len && n < SIM_ERROR_TEXT_MAX; i++) {
		if (p[i] == '\0')
			break;
		text[n++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	}
	text[n] = '\0';
	status = ((int32_t)code == SNP_E_FORMAT || (int32_t)code == SNP_E_ARGUMENT) ? SNP_E_FORMAT
										      : SNP_E_FIRMWARE;
	return snp_fail(err, status, "sim:%s: snpsimd refused the request: %s (%s)", path,
			n > 0 ? text : "no text", snp_status_class((int32_t)code));
}

/*
 * One request/response exchange on fd (the caller keeps or closes it).  *rsp (malloc'ed,
 * caller frees and wipes when secret) and *rsp_len on success; the response
 * type is checked.
 */
static int
sim_exchange(const char *path, int fd, uint16_t type, const uint8_t *req, size_t req_len,
	     uint8_t **rsp, size_t *rsp_len, snp_error *err)
{
	uint8_t *p = NULL;
	uint16_t rtype = 0;
	size_t len = 0;
	char eb[24];
	int r, e;

	if ((e = simproto_write(fd, type, req, req_len)) != 0) {
		r = snp_fail(err, SNP_E_IO, "sim:%s: sending the request: %s", path,
			     guest_errno_name(-e, eb, sizeof(eb)));
		goto out;
	}
	if ((e = simproto_read(fd, &rtype, &p, &len, SIMPROTO_MAX_PAYLOAD)) != 0) {
		r = snp_fail(err, SNP_E_IO, "sim:%s: reading the response: %s", path,
			     guest_errno_name(-e, eb, sizeof(eb)));
		goto out;
	}
	if (rtype == SIM_MSG_ERROR) {
		r = sim_error(path, p, len, err);
		goto out;
	}
	if (rtype != (uint16_t)(type | SIM_MSG_RESPONSE)) {
		r = snp_fail(err, SNP_E_FORMAT, "sim:%s: response type 0x%x to a request 0x%x",
			     path, (unsigned)rtype, (unsigned)type);
		goto out;
	}
	*rsp = p;
	*rsp_len = len;
	p = NULL;
	r = SNP_OK;
out:
	if (p != NULL) {
		OPENSSL_cleanse(p, len);
		free(p);
	}
	return r;
}

/* One exchange: on the kept connection if there is one (an I/O failure
 * there is retried once on a new connection: snpsimd closes an idle
 * connection after SIMPROTO_TIMEOUT_MS, and reports and derived keys may be
 * asked twice), else on a new connection.  The connection is kept after a
 * complete exchange and closed after any failure. */
static int
sim_call(struct snp_guest *g, uint16_t type, const uint8_t *req, size_t req_len, uint8_t **rsp,
	 size_t *rsp_len, snp_error *err)
{
	int fd = g->fd, r;

	g->fd = -1;
	if (fd >= 0) {
		r = sim_exchange(g->path, fd, type, req, req_len, rsp, rsp_len, err);
		if (r == SNP_OK) {
			g->fd = fd;
			return r;
		}
		(void)close(fd);
		if (r != SNP_E_IO)
			return r;
	}
	if ((r = sim_connect(g->path, &fd, err)) != SNP_OK)
		return r;
	r = sim_exchange(g->path, fd, type, req, req_len, rsp, rsp_len, err);
	if (r == SNP_OK)
		g->fd = fd;
	else
		(void)close(fd);
	return r;
}

static int
sim_get_report(struct snp_guest *g, const uint8_t report_data[SNP_REPORT_DATA_LEN], uint32_t vmpl,
	       uint8_t report[SNP_REPORT_SIZE], uint8_t **certs, size_t *certs_len, snp_error *err)
{
	struct snp_report_req m;
	uint8_t req[MSG_REPORT_REQ_SIZE];
	uint8_t *rsp = NULL, *table = NULL;
	const uint8_t *rep = NULL;
	size_t rsp_len = 0, tlen = 0;
	uint32_t status = 0;
	uint16_t type = certs != NULL ? SIM_MSG_EXT_REPORT : SIM_MSG_REPORT;
	int r;

	memcpy(m.report_data, report_data, SNP_REPORT_DATA_LEN);
	m.vmpl = vmpl;
	guestmsg_encode_report_req(&m, req);
	if ((r = sim_call(g, type, req, sizeof(req), &rsp, &rsp_len, err)) != SNP_OK)
		goto out;
	/* An extended response is MSG_REPORT_RSP followed by the certificate table. */
	if (guestmsg_decode_report_rsp(rsp, rsp_len < MSG_REPORT_RSP_SIZE ? rsp_len
									  : MSG_REPORT_RSP_SIZE,
				       &status, &rep) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "sim:%s: malformed MSG_REPORT_RSP (%zu bytes)",
			     g->path, rsp_len);
		goto out;
	}
	if (status != SNP_FW_STATUS_SUCCESS) {
		r = snp_fail(err, SNP_E_FIRMWARE,
			     "sim:%s: firmware status 0x%" PRIx32 " (%s) in MSG_REPORT_RSP", g->path,
			     status, guestmsg_fw_status_name(status));
		goto out;
	}
	if (certs != NULL) {
		tlen = rsp_len - MSG_REPORT_RSP_SIZE;
		if (tlen > SNP_GUEST_CERTS_MAX) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "sim:%s: certificate table of %zu bytes exceeds %u", g->path,
				     tlen, SNP_GUEST_CERTS_MAX);
			goto out;
		}
		tlen = guest_certs_trim(rsp + MSG_REPORT_RSP_SIZE, tlen);
		if (tlen > 0) {
			if ((table = malloc(tlen)) == NULL) {
				r = snp_fail(err, SNP_E_NOMEM, "out of memory");
				goto out;
			}
			memcpy(table, rsp + MSG_REPORT_RSP_SIZE, tlen);
		}
	}
	memcpy(report, rep, SNP_REPORT_SIZE);
	if (certs != NULL) {
		*certs = table;
		*certs_len = tlen;
		table = NULL;
	}
	r = SNP_OK;
out:
	free(rsp);
	free(table);
	return r;
}

static int
sim_derive_key(struct snp_guest *g, const snp_key_request *req, uint8_t key[SNP_DERIVED_KEY_LEN],
	       snp_error *err)
{
	uint8_t wire[MSG_KEY_REQ_SIZE];
	uint8_t *rsp = NULL;
	const uint8_t *k = NULL;
	size_t rsp_len = 0;
	uint32_t status = 0;
	int r;

	guestmsg_encode_key_req(req, wire);
	if ((r = sim_call(g, SIM_MSG_KEY, wire, sizeof(wire), &rsp, &rsp_len, err)) != SNP_OK)
		goto out;
	if (guestmsg_decode_key_rsp(rsp, rsp_len, &status, &k) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "sim:%s: malformed MSG_KEY_RSP (%zu bytes)", g->path,
			     rsp_len);
		goto out;
	}
	if (status != SNP_FW_STATUS_SUCCESS) {
		r = snp_fail(err, SNP_E_FIRMWARE,
			     "sim:%s: firmware status 0x%" PRIx32 " (%s) in MSG_KEY_RSP", g->path,
			     status, guestmsg_fw_status_name(status));
		goto out;
	}
	memcpy(key, k, SNP_DERIVED_KEY_LEN);
	r = SNP_OK;
out:
	if (rsp != NULL) {
		OPENSSL_cleanse(rsp, rsp_len);
		free(rsp);
	}
	return r;
}

static void
sim_close(struct snp_guest *g)
{
	if (g->fd >= 0)
		(void)close(g->fd);
	g->fd = -1;
}

static const struct snp_guest_ops sim_ops = {
	.get_report = sim_get_report,
	.derive_key = sim_derive_key,
	.close = sim_close,
};

int
guest_sim_open(struct snp_guest *g, snp_error *err)
{
	int fd = -1, r;

	/* Connect now, so that a missing simulator is reported at open; the
	 * connection is kept for the first request (g->fd). */
	if ((r = sim_connect(g->path, &fd, err)) != SNP_OK)
		return r;
	g->fd = fd;
	g->ops = &sim_ops;
	return SNP_OK;
}
