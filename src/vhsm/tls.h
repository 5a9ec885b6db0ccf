/*
 * tls — vhsmd's optional TLS listener (docs/vhsm.md, "TLS listener"): its
 * [tls] configuration, the server SSL_CTX that requires and verifies a client
 * certificate, the listening TCP socket, and the principal a verified client
 * certificate gives (subject and SHA-256 fingerprint).
 *
 * The connections themselves are driven by vhsmd's poll loop (vhsmd.c): an
 * SSL object over each non-blocking socket.
 */
#ifndef NITRIDE_VHSM_TLS_H
#define NITRIDE_VHSM_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "vhsm/policy.h"

#define VTLS_PATH_MAX 4096

struct vtls_config {
	char listen[300];              /* "ADDR:PORT" (IP literals); "" = no TLS listener */
	char certificate[VTLS_PATH_MAX]; /* the server's certificate chain (PEM, leaf first) */
	char private_key[VTLS_PATH_MAX]; /* its key (PEM) */
	char client_ca[VTLS_PATH_MAX];   /* CA certificate(s) that issue client certificates (PEM) */
	int min_version;               /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
	unsigned handshake_ms;         /* a handshake not done by then is dropped (default 10000) */
	unsigned max_conns;            /* TLS connections at once, apart from the Unix ones (64) */
	bool any_key;                  /* some [tls] key was given (listen is then required) */
};

/* Defaults (listener off). */
void vtls_config_init(struct vtls_config *c);
/* Parse one key of the [tls] section.  1 known and valid, 0 invalid value,
 * -1 unknown key. */
int vtls_config_key(struct vtls_config *c, const char *name, const char *value);
/* After the whole file: a section that sets anything must set listen,
 * certificate, private_key and client_ca.  -1 with err. */
__attribute__((warn_unused_result)) int vtls_config_check(const struct vtls_config *c, char *err,
							  size_t errlen);

/* The server context: certificate chain and key (checked to match), client
 * CAs, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, minimum version, no
 * session resumption (every connection presents its certificate), no
 * renegotiation.  -1 with err naming the file and OpenSSL's reason. */
__attribute__((warn_unused_result)) int vtls_ctx_new(const struct vtls_config *c, SSL_CTX **out,
						     char *err, size_t errlen);

/* A non-blocking, close-on-exec TCP socket listening on c->listen (IPv6
 * sockets are V6ONLY).  The fd, or -1 with err. */
__attribute__((warn_unused_result)) int vtls_listen(const struct vtls_config *c, char *err,
						    size_t errlen);

/* After a finished handshake: *who from the verified client certificate
 * (tls = true, tls_subject in RFC 2253, tls_sha256 of the DER).  -1 with err
 * if there is no verified certificate or its subject is too long; *who is
 * then still a TLS principal that matches no rule. */
__attribute__((warn_unused_result)) int vtls_principal(SSL *ssl, struct vhsm_principal *who,
						       char *err, size_t errlen);

/* OpenSSL's first queued error (or `fallback`) as text into buf; clears the
 * queue.  Returns buf. */
const char *vtls_error(const char *fallback, char *buf, size_t cap);

#endif
