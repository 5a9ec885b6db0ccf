/*
 * tlsserver — the TLS server context of attestd and provd (tlsserver.h).
 */
#include "common/tlsserver.h"

#include <stdio.h>

#include <openssl/err.h>

int
tls_server_ctx(const char *cert, const char *key, SSL_CTX **out, char *err, size_t errlen)
{
	SSL_CTX *ctx = NULL;
	unsigned long e;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		e = ERR_get_error();
		(void)snprintf(err, errlen, "TLS (tls_cert %s, tls_key %s): %s", cert, key,
			       e ? ERR_reason_error_string(e) : "failed");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return -1;
	}
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	*out = ctx;
	return 0;
}
