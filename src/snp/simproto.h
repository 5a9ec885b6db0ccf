/*
 * The snpsimd socket protocol (internal; docs/platform.md documents it).
 *
 * A SOCK_STREAM Unix socket carries frames, strictly one request then one
 * response, any number per connection:
 *
 *   magic "NSIM" | u16le version (1) | u16le type | u32le length | payload
 *
 * Payloads are the firmware's own guest messages, so the simulator sees
 * exactly what the firmware would:
 *   SIM_MSG_REPORT      MSG_REPORT_REQ (96)  ->  MSG_REPORT_RSP (32 + 1184)
 *   SIM_MSG_EXT_REPORT  MSG_REPORT_REQ (96)  ->  MSG_REPORT_RSP, then the certificate table
 *   SIM_MSG_KEY         MSG_KEY_REQ (32)     ->  MSG_KEY_RSP (64)
 * A response has the request's type with bit 0x80 set; SIM_MSG_ERROR carries
 * u32le code (an snp_status) and a short text, for requests that are not
 * well-formed frames at all.  Firmware-level refusals travel inside the
 * MSG_*_RSP status field, as on real hardware.
 */
#ifndef NITRIDE_SNP_SIMPROTO_H
#define NITRIDE_SNP_SIMPROTO_H

#include <stddef.h>
#include <stdint.h>

#define SIMPROTO_MAGIC "NSIM"
#define SIMPROTO_VERSION 1u
#define SIMPROTO_HDR_SIZE 12u
#define SIMPROTO_MAX_PAYLOAD (96u * 1024u) /* a report response plus a 64 KiB table */
#define SIMPROTO_TIMEOUT_MS 10000           /* each read or write must progress within this */

enum sim_msg_type {
	SIM_MSG_REPORT = 1,
	SIM_MSG_EXT_REPORT = 2,
	SIM_MSG_KEY = 3,
	SIM_MSG_RESPONSE = 0x80,
	SIM_MSG_ERROR = 0xFF
};

/* Write one frame.  Returns 0, or -errno (-EMSGSIZE above the cap, -ETIMEDOUT). */
__attribute__((warn_unused_result)) int simproto_write(int fd, uint16_t type, const uint8_t *payload,
						       size_t len);
/*
 * Read one frame of at most `max` payload bytes (<= SIMPROTO_MAX_PAYLOAD) into
 * a malloc'ed buffer (*payload, caller frees; NULL when len is 0).  Returns 0,
 * -EPIPE on a clean end of stream before a header, -EPROTO on a bad magic,
 * version or length, -ETIMEDOUT, or another -errno.
 */
__attribute__((warn_unused_result)) int simproto_read(int fd, uint16_t *type, uint8_t **payload,
						      size_t *len, size_t max);

#endif
