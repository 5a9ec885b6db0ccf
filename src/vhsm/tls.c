/*
 * tls — vhsmd's TLS listener: configuration, server context, listening
 * socket, and the principal of a verified client certificate (tls.h).
 */
#include "vhsm/tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/confval.h"

void
vtls_config_init(struct vtls_config *c)
{
	memset(c, 0, sizeof(*c));
	c->min_version = TLS1_2_VERSION;
	c->handshake_ms = 10000;
	c->max_conns = 64;
}

int
vtls_config_key(struct vtls_config *c, const char *name, const char *value)
{
	char host[256];
	unsigned port;
	int ok;

	if (strcmp(name, "listen") == 0) {
		/* IP literals only: a name would make the bound address depend on DNS. */
		struct addrinfo hints, *ai = NULL;

		memset(&hints, 0, sizeof(hints));
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
		hints.ai_socktype = SOCK_STREAM;
		ok = conf_hostport(value, host, sizeof(host), &port) == 0 && port > 0 &&
		     getaddrinfo(host, "1", &hints, &ai) == 0 &&
		     conf_str(c->listen, sizeof(c->listen), value) == 0;
		if (ai != NULL)
			freeaddrinfo(ai);
	} else if (strcmp(name, "certificate") == 0) {
		ok = value[0] != 0 && conf_str(c->certificate, sizeof(c->certificate), value) == 0;
	} else if (strcmp(name, "private_key") == 0) {
		ok = value[0] != 0 && conf_str(c->private_key, sizeof(c->private_key), value) == 0;
	} else if (strcmp(name, "client_ca") == 0) {
		ok = value[0] != 0 && conf_str(c->client_ca, sizeof(c->client_ca), value) == 0;
	} else if (strcmp(name, "min_protocol") == 0) {
		ok = true;
		if (strcmp(value, "TLSv1.2") == 0)
			c->min_version = TLS1_2_VERSION;
		else if (strcmp(value, "TLSv1.3") == 0)
			c->min_version = TLS1_3_VERSION;
		else
			ok = false;
	} else if (strcmp(name, "handshake_timeout_ms") == 0) {
		ok = conf_uint(value, 100, 600000, &c->handshake_ms) == 0;
	} else if (strcmp(name, "max_connections") == 0) {
		ok = conf_uint(value, 1, 4096, &c->max_conns) == 0;
	} else {
		return -1;
	}
	c->any_key = true;
	return ok ? 1 : 0;
}

int
vtls_config_check(const struct vtls_config *c, char *err, size_t errlen)
{
	const char *missing = NULL;

	if (!c->any_key)
		return 0;
	if (!c->listen[0])
		missing = "listen";
	else if (!c->certificate[0])
		missing = "certificate";
	else if (!c->private_key[0])
		missing = "private_key";
	else if (!c->client_ca[0])
		missing = "client_ca";
	if (missing == NULL)
		return 0;
	snprintf(err, errlen, "[tls]: '%s' is required when the section is present", missing);
	return -1;
}

const char *
vtls_error(const char *fallback, char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, cap, "%s", fallback);
	else
		ERR_error_string_n(e, buf, cap);
	ERR_clear_error();
	return buf;
}

int
vtls_ctx_new(const struct vtls_config *c, SSL_CTX **out, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) *names = NULL;
	SSL_CTX *ctx = NULL;
	char why[256];
	int r = -1;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, c->min_version) != 1) {
		snprintf(err, errlen, "[tls]: cannot set up TLS: %s",
			 vtls_error("out of memory", why, sizeof(why)));
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
		snprintf(err, errlen, "[tls] certificate %s: %s", c->certificate,
			 vtls_error("cannot be read", why, sizeof(why)));
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->private_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		if (ERR_peek_error() == 0 ||
		    ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(err, errlen, "[tls] private_key %s does not belong to certificate %s",
				 c->private_key, c->certificate);
		} else {
			snprintf(err, errlen, "[tls] private_key %s: %s", c->private_key,
				 vtls_error("cannot be read", why, sizeof(why)));
		}
		goto out;
	}
	if (SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) != 1 ||
	    (names = SSL_load_client_CA_file(c->client_ca)) == NULL) {
		snprintf(err, errlen, "[tls] client_ca %s: %s", c->client_ca,
			 vtls_error("no CA certificate in it", why, sizeof(why)));
		goto out;
	}
	/* The CA names go into the CertificateRequest, so a client holding
	 * several certificates can pick the right one. */
	SSL_CTX_set_client_CA_list(ctx, names);
	names = NULL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 8);
	/* No resumption: a resumed session would skip the certificate; every
	 * connection is authenticated afresh (they are long-lived anyway). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1) {
		snprintf(err, errlen, "[tls]: cannot turn session tickets off");
		goto out;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Answers are written from a buffer that may grow (and move) between a
	 * partial write and its retry; the retry always starts at the same byte. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return r;
}

int
vtls_listen(const struct vtls_config *c, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[16];
	unsigned p;
	int fd = -1, one = 1, gr;

	if (conf_hostport(c->listen, host, sizeof(host), &p) != 0) {
		snprintf(err, errlen, "[tls] listen %s: not ADDR:PORT", c->listen);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	if ((gr = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "[tls] listen %s: %s", c->listen, gai_strerror(gr));
		return -1;
	}
	if ((fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
		snprintf(err, errlen, "[tls] cannot listen on %s: %s", c->listen, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

int
vtls_principal(SSL *ssl, struct vhsm_principal *who, char *err, size_t errlen)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	BIO *bio = NULL;
	char *text = NULL;
	unsigned mdlen = 0;
	long len;
	int r = -1;

	memset(who, 0, sizeof(*who));
	who->tls = true; /* whatever happens below, never a local caller */
	if (cert == NULL || SSL_get_verify_result(ssl) != X509_V_OK) {
		snprintf(err, errlen, "no verified client certificate");
		goto out;
	}
	/* XN_FLAG_RFC2253 is what `openssl x509 -nameopt RFC2253` uses: most
	 * specific RDN first, special characters, control bytes and non-ASCII
	 * bytes escaped — the text is printable ASCII. */
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0 ||
	    (len = BIO_get_mem_data(bio, &text)) < 0) {
		snprintf(err, errlen, "cannot format the certificate's subject");
		goto out;
	}
	if ((size_t)len >= sizeof(who->tls_subject) || memchr(text, 0, (size_t)len) != NULL) {
		snprintf(err, errlen, "client certificate subject longer than %u bytes",
			 VHSM_TLS_SUBJECT_MAX - 1);
		goto out;
	}
	memcpy(who->tls_subject, text, (size_t)len);
	who->tls_subject[len] = 0;
	if (X509_digest(cert, EVP_sha256(), who->tls_sha256, &mdlen) != 1 || mdlen != 32) {
		snprintf(err, errlen, "cannot hash the client certificate");
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	ERR_clear_error();
	if (r != 0) {
		memset(who, 0, sizeof(*who));
		who->tls = true;
	}
	return r;
}
