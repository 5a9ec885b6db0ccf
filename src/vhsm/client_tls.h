/*
 * client_tls — libvhsm's TLS transport (vhsm_connect_tls): one SSL
 * connection over a non-blocking socket, shared by the client's threads.
 *
 * libvhsm lets one thread read a frame while others write theirs; OpenSSL
 * forbids concurrent calls on one SSL object.  So every SSL call is made
 * under a mutex that is never held while waiting: a call that cannot go on
 * (WANT_READ / WANT_WRITE) releases it and waits in poll() for the socket.
 * Writes never consume input (no renegotiation), so a reader waiting for
 * input cannot miss it.
 *
 * Library code: nothing logs or exits; errors are texts for vhsm_last_message().
 */
#ifndef NITRIDE_VHSM_CLIENT_TLS_H
#define NITRIDE_VHSM_CLIENT_TLS_H

#include <stddef.h>
#include <stdint.h>

struct vclient_tls;

/* How long connecting and the handshake may take, together. */
#define VCLIENT_TLS_CONNECT_MS 30000

/*
 * Connect to `address` ("HOST:PORT", "[V6]:PORT"; HOST a name or an IP
 * literal), present cert_file/key_file (PEM), verify the server's chain
 * against ca_file and its name or IP against HOST.  Returns a vhsm_status:
 * VHSM_OK with *out set (it owns the socket), else a negative status with
 * the reason in msg.
 */
__attribute__((warn_unused_result)) int vclient_tls_open(const char *address,
							 const char *cert_file,
							 const char *key_file,
							 const char *ca_file,
							 struct vclient_tls **out, char *msg,
							 size_t msglen);
/* Exactly n bytes, blocking (in poll).  0, or -1 when the connection failed
 * (every later call then fails too). */
__attribute__((warn_unused_result)) int vclient_tls_read_full(struct vclient_tls *t, uint8_t *p,
							      size_t n);
__attribute__((warn_unused_result)) int vclient_tls_write_full(struct vclient_tls *t,
							       const uint8_t *p, size_t n);
/* Why the connection failed ("TLS: <OpenSSL's reason>") into buf. */
void vclient_tls_reason(struct vclient_tls *t, char *buf, size_t cap);
/* Send close_notify if it can go at once, free, close the fd; NULL-safe. */
void vclient_tls_free(struct vclient_tls *t);

#endif
