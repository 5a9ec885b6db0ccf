/*
 * client_tls — libvhsm over TLS with a client certificate (client_tls.h).
 */
#include "vhsm/client_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/confval.h"
#include "nitride/vhsm.h"

struct vclient_tls {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	pthread_mutex_t mu; /* every SSL call; never held while waiting */
	bool failed;
	char why[160];      /* why it failed, for vhsm_last_message() */
};

/* ---- A socket BIO that cannot raise SIGPIPE.  OpenSSL's own socket BIO
 * writes with write(2); an application that has not ignored SIGPIPE would
 * die when vhsmd goes away, where the Unix-socket path gets EPIPE. */

static int
nosig_write(BIO *b, const char *buf, int len)
{
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send((int)(intptr_t)BIO_get_data(b), buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_write(b);
	return (int)n;
}

static int
nosig_read(BIO *b, char *buf, int len)
{
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv((int)(intptr_t)BIO_get_data(b), buf, (size_t)len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		BIO_set_retry_read(b);
	return (int)n;
}

static long
nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* nothing is buffered here */
}

/* BIO type indexes are few (BIO_get_new_index), so the method is made once
 * per process and kept, like OpenSSL's own. */
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *nosig_method;

static void
nosig_init(void)
{
	BIO_METHOD *m;
	int idx = BIO_get_new_index();

	if (idx == -1 || (m = BIO_meth_new(idx | BIO_TYPE_SOURCE_SINK, "vhsm-socket")) == NULL)
		return;
	if (BIO_meth_set_write(m, nosig_write) != 1 || BIO_meth_set_read(m, nosig_read) != 1 ||
	    BIO_meth_set_ctrl(m, nosig_ctrl) != 1) {
		BIO_meth_free(m);
		return;
	}
	nosig_method = m;
}

/* ---- Waiting */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for `events`; deadline < 0: no limit.  -1 on timeout
 * or error. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r, timeout;

	for (;;) {
		timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -1;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		r = poll(&p, 1, timeout);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* ---- Connection set-up */

static const char *
ssl_reason(const char *fallback, char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, cap, "%s", fallback);
	else
		ERR_error_string_n(e, buf, cap);
	ERR_clear_error();
	return buf;
}

/* A connected non-blocking TCP socket to host:port, or -1 with msg. */
static int
tcp_connect(const char *host, unsigned port, int64_t deadline, char *msg, size_t msglen)
{
	struct addrinfo hints, *ai = NULL, *a;
	char ps[16];
	int fd = -1, gr, err = 0, one = 1;
	socklen_t sl;

	snprintf(ps, sizeof(ps), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	if ((gr = getaddrinfo(host, ps, &hints, &ai)) != 0) {
		snprintf(msg, msglen, "%s: %s", host, gai_strerror(gr));
		return -1;
	}
	for (a = ai; a != NULL; a = a->ai_next) {
		if ((fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		err = errno;
		if (err == EINPROGRESS && wait_fd(fd, POLLOUT, deadline) == 0) {
			sl = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err == 0)
				break;
		} else if (err == EINPROGRESS) {
			err = ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(msg, msglen, "connect %s port %u: %s", host, port,
			 strerror(err ? err : ECONNREFUSED));
		return -1;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int
make_ctx(struct vclient_tls *t, const char *cert_file, const char *key_file, const char *ca_file,
	 char *msg, size_t msglen)
{
	char why[256];

	if ((t->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
		snprintf(msg, msglen, "TLS: %s", ssl_reason("cannot set up", why, sizeof(why)));
		return VHSM_E_NOMEM;
	}
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert_file) != 1) {
		snprintf(msg, msglen, "client certificate %s: %s", cert_file,
			 ssl_reason("cannot be read", why, sizeof(why)));
		return VHSM_E_ARGUMENT;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(t->ctx) != 1) {
		if (ERR_peek_error() == 0 ||
		    ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			snprintf(msg, msglen, "client key %s does not belong to certificate %s",
				 key_file, cert_file);
		} else {
			snprintf(msg, msglen, "client key %s: %s", key_file,
				 ssl_reason("cannot be read", why, sizeof(why)));
		}
		return VHSM_E_ARGUMENT;
	}
	if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
		snprintf(msg, msglen, "CA file %s: %s", ca_file,
			 ssl_reason("cannot be read", why, sizeof(why)));
		return VHSM_E_ARGUMENT;
	}
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	return VHSM_OK;
}

/* The SSL object over fd, checking the server's name or IP against host. */
static int
make_ssl(struct vclient_tls *t, char *host, char *msg, size_t msglen)
{
	BIO *bio = NULL;

	pthread_once(&nosig_once, nosig_init);
	if (nosig_method == NULL || (t->ssl = SSL_new(t->ctx)) == NULL ||
	    (bio = BIO_new(nosig_method)) == NULL) {
		snprintf(msg, msglen, "TLS: out of memory");
		return VHSM_E_NOMEM;
	}
	BIO_set_data(bio, (void *)(intptr_t)t->fd);
	BIO_set_init(bio, 1);
	SSL_set_bio(t->ssl, bio, bio); /* the SSL owns bio now */
	/* An IP literal is matched against the certificate's IP SANs; a name
	 * against its DNS SANs (and goes out as SNI). */
	if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1) {
		ERR_clear_error();
		if (SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1) {
			snprintf(msg, msglen, "TLS: cannot verify against host name %s", host);
			return VHSM_E_ARGUMENT;
		}
	}
	SSL_set_connect_state(t->ssl);
	return VHSM_OK;
}

static int
handshake(struct vclient_tls *t, const char *address, int64_t deadline, char *msg, size_t msglen)
{
	char why[256];
	long vr;
	int ret, e;

	for (;;) {
		ERR_clear_error();
		if ((ret = SSL_do_handshake(t->ssl)) == 1)
			break;
		e = SSL_get_error(t->ssl, ret);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			vr = SSL_get_verify_result(t->ssl);
			snprintf(msg, msglen, "TLS handshake with %s failed: %s", address,
				 vr != X509_V_OK ? X509_verify_cert_error_string(vr)
						 : ssl_reason("the server closed the connection (is the "
							      "client certificate accepted?)",
							      why, sizeof(why)));
			return VHSM_E_IO;
		}
		if (wait_fd(t->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline) != 0) {
			snprintf(msg, msglen, "TLS handshake with %s: no answer within %d ms", address,
				 VCLIENT_TLS_CONNECT_MS);
			return VHSM_E_IO;
		}
	}
	if (SSL_get0_peer_certificate(t->ssl) == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK) {
		snprintf(msg, msglen, "TLS handshake with %s: the server's certificate is not verified",
			 address);
		return VHSM_E_IO;
	}
	return VHSM_OK;
}

void
vclient_tls_free(struct vclient_tls *t)
{
	if (t == NULL)
		return;
	if (t->ssl != NULL) {
		ERR_clear_error();
		if (!t->failed && SSL_is_init_finished(t->ssl))
			(void)SSL_shutdown(t->ssl); /* non-blocking: one try */
		SSL_free(t->ssl);
	}
	SSL_CTX_free(t->ctx);
	ERR_clear_error();
	if (t->fd >= 0)
		close(t->fd);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

int
vclient_tls_open(const char *address, const char *cert_file, const char *key_file,
		 const char *ca_file, struct vclient_tls **out, char *msg, size_t msglen)
{
	struct vclient_tls *t = NULL;
	char host[256];
	unsigned port;
	int64_t deadline = now_ms() + VCLIENT_TLS_CONNECT_MS;
	int r;

	if (address == NULL || cert_file == NULL || key_file == NULL || ca_file == NULL ||
	    out == NULL) {
		snprintf(msg, msglen, "TLS: address, certificate, key and CA file are all required");
		return VHSM_E_ARGUMENT;
	}
	if (conf_hostport(address, host, sizeof(host), &port) != 0 || port == 0 || host[0] == 0) {
		snprintf(msg, msglen, "%s: not HOST:PORT or [IPV6]:PORT", address);
		return VHSM_E_ARGUMENT;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return VHSM_E_NOMEM;
	t->fd = -1;
	pthread_mutex_init(&t->mu, NULL);
	ERR_clear_error();
	if ((r = make_ctx(t, cert_file, key_file, ca_file, msg, msglen)) != VHSM_OK)
		goto out;
	if ((t->fd = tcp_connect(host, port, deadline, msg, msglen)) < 0) {
		r = VHSM_E_IO;
		goto out;
	}
	if ((r = make_ssl(t, host, msg, msglen)) != VHSM_OK ||
	    (r = handshake(t, address, deadline, msg, msglen)) != VHSM_OK)
		goto out;
	*out = t;
	t = NULL;
out:
	if (t != NULL)
		t->failed = true; /* no close_notify after a failed handshake */
	vclient_tls_free(t);
	ERR_clear_error();
	return r;
}

/* ---- Shared I/O: one SSL call at a time, waits outside the lock. */

static int
tls_io(struct vclient_tls *t, uint8_t *rp, const uint8_t *wp, size_t n)
{
	size_t done;
	int ret, e;

	while (n > 0) {
		pthread_mutex_lock(&t->mu);
		if (t->failed) {
			pthread_mutex_unlock(&t->mu);
			return -1;
		}
		ERR_clear_error();
		done = 0;
		ret = rp != NULL ? SSL_read_ex(t->ssl, rp, n, &done) : SSL_write_ex(t->ssl, wp, n, &done);
		e = ret == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, ret);
		if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE &&
		    !t->failed) {
			/* With TLS 1.3 a refused client certificate shows here, at the
			 * first read after the handshake: as the server's alert, or —
			 * when our request reached the closed socket and it answered
			 * with a reset, which discards the alert — as a closed
			 * connection. */
			const char *reason = e == SSL_ERROR_SSL
						     ? ERR_reason_error_string(ERR_peek_last_error())
						     : NULL;

			snprintf(t->why, sizeof(t->why), "TLS: %s",
				 reason ? reason
					: "vhsmd closed the connection (a refused client certificate "
					  "is named in vhsmd's log)");
			t->failed = true;
		}
		ERR_clear_error();
		pthread_mutex_unlock(&t->mu);
		switch (e) {
		case SSL_ERROR_NONE:
			if (rp != NULL)
				rp += done;
			else
				wp += done;
			n -= done;
			break;
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			if (wait_fd(t->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, -1) != 0) {
				pthread_mutex_lock(&t->mu);
				if (!t->failed)
					snprintf(t->why, sizeof(t->why), "TLS: poll: %s", strerror(errno));
				t->failed = true;
				pthread_mutex_unlock(&t->mu);
				return -1;
			}
			break;
		default:
			return -1;
		}
	}
	return 0;
}

void
vclient_tls_reason(struct vclient_tls *t, char *buf, size_t cap)
{
	pthread_mutex_lock(&t->mu);
	snprintf(buf, cap, "%s", t->why[0] ? t->why : "TLS: the connection failed");
	pthread_mutex_unlock(&t->mu);
}

int
vclient_tls_read_full(struct vclient_tls *t, uint8_t *p, size_t n)
{
	return tls_io(t, p, NULL, n);
}

int
vclient_tls_write_full(struct vclient_tls *t, const uint8_t *p, size_t n)
{
	return tls_io(t, NULL, p, n);
}
