/*
 * tlsserver — the TLS server context of attestd and provd.
 *
 * One place for the services' TLS settings: TLS 1.2 or later, the server's
 * cipher preference, no renegotiation, and a certificate chain whose key is
 * checked against it at start-up, so that a mismatched pair stops the daemon
 * with its file names instead of failing every handshake later.
 */
#ifndef NITRIDE_COMMON_TLSSERVER_H
#define NITRIDE_COMMON_TLSSERVER_H

#include <stddef.h>

#include <openssl/ssl.h>

/* A server context for the PEM chain `cert` and key `key`.  Returns 0 and
 * *out (the caller frees it with SSL_CTX_free), or -1 with err naming both
 * files and OpenSSL's reason. */
__attribute__((warn_unused_result)) int tls_server_ctx(const char *cert, const char *key,
						       SSL_CTX **out, char *err, size_t errlen);

#endif
