/*
 * listen — the TCP socket a service accepts on (contract in listen.h).
 */
#include "common/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* scheme://address:port of a bound socket; IPv6 in brackets. */
static int
bound_url(int fd, bool tls, char *url, size_t urllen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	const char *scheme = tls ? "https" : "http";
	unsigned port;
	int n;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
		return -1;
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;

		if (inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host)) == NULL)
			return -1;
		port = ntohs(a6->sin6_port);
		n = snprintf(url, urllen, "%s://[%s]:%u", scheme, host, port);
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;

		if (inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host)) == NULL)
			return -1;
		port = ntohs(a4->sin_port);
		n = snprintf(url, urllen, "%s://%s:%u", scheme, host, port);
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (n < 0 || (size_t)n >= urllen) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
listen_tcp(const char *host, unsigned port, bool tls, int *fd_out, char *url, size_t urllen,
	   char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char service[8];
	int fd = -1, one = 1, gr, ret = -1;

	if (port > 65535) {
		(void)snprintf(err, errlen, "listen %s:%u: not a port", host, port);
		return -1;
	}
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	(void)snprintf(service, sizeof(service), "%u", port);
	if ((gr = getaddrinfo(host, service, &hints, &ai)) != 0) {
		(void)snprintf(err, errlen, "listen %s: %s", host, gai_strerror(gr));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0 ||
	    bound_url(fd, tls, url, urllen) != 0) {
		(void)snprintf(err, errlen, "listen %s:%u: %s", host, port, strerror(errno));
		goto out;
	}
	*fd_out = fd;
	fd = -1;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return ret;
}
