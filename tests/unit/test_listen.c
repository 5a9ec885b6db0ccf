/*
 * Unit tests for src/common/listen.c: the URL of the address bound, the
 * socket's flags, and each way it can fail, with nothing left open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/listen.h"

static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static unsigned
url_port(const char *url)
{
	const char *colon = strrchr(url, ':');

	assert_non_null(colon);
	return (unsigned)strtoul(colon + 1, NULL, 10);
}

static void
test_ipv4_url_and_flags(void **state)
{
	char url[LISTEN_URL_MAX], err[256] = "", want[LISTEN_URL_MAX];
	struct sockaddr_in to = { .sin_family = AF_INET };
	int fd = -1, c, a, nodelay = 0;
	socklen_t len = sizeof(nodelay);
	struct pollfd pfd = { .events = POLLIN };
	unsigned port;

	(void)state;
	assert_int_equal(listen_tcp("127.0.0.1", 0, false, &fd, url, sizeof(url), err, sizeof(err)),
			 0);
	pfd.fd = fd;
	port = url_port(url);
	assert_true(port > 0 && port <= 65535);
	(void)snprintf(want, sizeof(want), "http://127.0.0.1:%u", port);
	assert_string_equal(url, want);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* An accepted connection inherits TCP_NODELAY (Linux). */
	to.sin_port = htons((uint16_t)port);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true((c = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_true((a = accept(fd, NULL, NULL)) >= 0);
	assert_int_equal(getsockopt(a, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
	assert_int_not_equal(nodelay, 0);
	close(a);
	close(c);
	close(fd);
}

static void
test_ipv6_https_url(void **state)
{
	char url[LISTEN_URL_MAX], err[256] = "", want[LISTEN_URL_MAX];
	int fd = -1;

	(void)state;
	if (listen_tcp("::1", 0, true, &fd, url, sizeof(url), err, sizeof(err)) != 0) {
		/* A machine without IPv6 loopback says so; nothing else may fail. */
		assert_non_null(strstr(err, "listen ::1"));
		skip();
	}
	(void)snprintf(want, sizeof(want), "https://[::1]:%u", url_port(url));
	assert_string_equal(url, want);
	close(fd);
}

static void
test_failures_leave_nothing_open(void **state)
{
	char url[LISTEN_URL_MAX], small[12], err[256], want[64];
	int fd = -1, other = -1, before;
	unsigned port;

	(void)state;
	assert_int_equal(listen_tcp("127.0.0.1", 0, false, &fd, url, sizeof(url), err, sizeof(err)),
			 0);
	port = url_port(url);
	before = open_fds();

	/* The port taken by a listening socket: SO_REUSEADDR does not share it. */
	assert_int_equal(listen_tcp("127.0.0.1", port, false, &other, url, sizeof(url), err,
				    sizeof(err)),
			 -1);
	(void)snprintf(want, sizeof(want), "listen 127.0.0.1:%u: ", port);
	assert_true(strncmp(err, want, strlen(want)) == 0);
	assert_int_equal(other, -1);

	assert_int_equal(listen_tcp("no-such-host.invalid", 0, false, &other, url, sizeof(url), err,
				    sizeof(err)),
			 -1);
	assert_true(strncmp(err, "listen no-such-host.invalid: ", 29) == 0);

	assert_int_equal(listen_tcp("127.0.0.1", 65536, false, &other, url, sizeof(url), err,
				    sizeof(err)),
			 -1);
	assert_string_equal(err, "listen 127.0.0.1:65536: not a port");

	/* Bound, but its URL does not fit: the socket is closed again. */
	assert_int_equal(listen_tcp("127.0.0.1", 0, true, &other, small, sizeof(small), err,
				    sizeof(err)),
			 -1);
	assert_int_equal(other, -1);
	assert_int_equal(open_fds(), before);
	close(fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_url_and_flags),
		cmocka_unit_test(test_ipv6_https_url),
		cmocka_unit_test(test_failures_leave_nothing_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
