/* Unit tests: the bounded reader, hex and RFC 3339 helpers in src/common. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/hex.h"
#include "common/rbuf.h"
#include "common/confval.h"
#include "common/sdnotify.h"
#include "common/statedir.h"
#include "common/timefmt.h"
#include "common/workq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void
test_reads_in_bounds(void **state)
{
	static const uint8_t data[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
	struct rbuf b;
	uint32_t u32;
	uint64_t u64;
	uint8_t u8;

	(void)state;
	rbuf_init(&b, data, sizeof(data));
	assert_int_equal(rbuf_get_u8(&b, &u8), 0);
	assert_int_equal(u8, 1);
	assert_int_equal(rbuf_get_u32le(&b, &u32), 0);
	assert_int_equal(u32, 0x05040302u);
	assert_int_equal(rbuf_get_u64le(&b, &u64), 0);
	assert_int_equal(u64, 0x0d0c0b0a09080706ull);
	assert_int_equal(rbuf_remaining(&b), 0);
	/* A failed read leaves the cursor where it was. */
	assert_int_equal(rbuf_get_u8(&b, &u8), -1);
	assert_int_equal(rbuf_offset(&b), sizeof(data));
}

static void
test_short_reads_fail_without_moving(void **state)
{
	static const uint8_t data[7] = { 0 };
	const uint8_t *p = NULL;
	struct rbuf b;
	uint64_t u64 = 42;
	uint8_t out[8];

	(void)state;
	rbuf_init(&b, data, sizeof(data));
	assert_int_equal(rbuf_get_u64le(&b, &u64), -1);
	assert_int_equal(u64, 42);
	assert_int_equal(rbuf_offset(&b), 0);
	assert_int_equal(rbuf_get_bytes(&b, out, 8), -1);
	assert_int_equal(rbuf_get_direct(&b, &p, SIZE_MAX), -1);
	assert_null(p);
	assert_int_equal(rbuf_skip(&b, SIZE_MAX), -1);
	assert_int_equal(rbuf_seek(&b, 8), -1);
	assert_int_equal(rbuf_seek(&b, 7), 0);
	assert_int_equal(rbuf_remaining(&b), 0);
	rbuf_init(&b, NULL, 100);
	assert_int_equal(rbuf_remaining(&b), 0);
}

static void
test_expect_zero_reports_offset(void **state)
{
	static const uint8_t data[] = { 0, 0, 0, 9, 0 };
	struct rbuf b;
	size_t bad = 0;

	(void)state;
	rbuf_init(&b, data, sizeof(data));
	assert_int_equal(rbuf_expect_zero(&b, 3, &bad), 0);
	assert_int_equal(rbuf_seek(&b, 1), 0);
	assert_int_equal(rbuf_expect_zero(&b, 4, &bad), -1);
	assert_int_equal(bad, 3);
	assert_int_equal(rbuf_offset(&b), 1);
	assert_int_equal(rbuf_expect_zero(&b, 5, &bad), -1); /* too long */
}

static void
test_put_le(void **state)
{
	uint8_t buf[8];

	(void)state;
	put_u64le(buf, 0x0807060504030201ull);
	for (int i = 0; i < 8; i++)
		assert_int_equal(buf[i], i + 1);
}

static void
test_hex(void **state)
{
	static const uint8_t in[] = { 0x00, 0xab, 0xff };
	uint8_t out[3];
	char text[7];

	(void)state;
	hex_encode(in, 3, text);
	assert_string_equal(text, "00abff");
	assert_int_equal(hex_decode("00ABff", out, 3), 0);
	assert_memory_equal(out, in, 3);
	assert_int_equal(hex_decode("00abf", out, 3), -1);
	assert_int_equal(hex_decode("00abfg", out, 3), -1);
	assert_int_equal(hex_decode("00abff00", out, 3), -1);
}

static void
test_rfc3339(void **state)
{
	char text[RFC3339_LEN];
	time_t t = 0;

	(void)state;
	assert_int_equal(rfc3339_parse("2025-06-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 1748736000);
	rfc3339_format(t, text);
	assert_string_equal(text, "2025-06-01T00:00:00Z");
	assert_int_equal(rfc3339_parse("2025-06-01T02:00:00.123+02:00", &t), 0);
	assert_int_equal(t, 1748736000);
	assert_int_equal(rfc3339_parse("2024-02-29T12:00:00Z", &t), 0);
	assert_int_equal(rfc3339_parse("2025-02-29T12:00:00Z", &t), -1);
	assert_int_equal(rfc3339_parse("2025-06-01T00:00:00", &t), -1);
	assert_int_equal(rfc3339_parse("2025-06-01T24:00:00Z", &t), -1);
	assert_int_equal(rfc3339_parse("2025-06-01T00:00:00Zjunk", &t), -1);
	assert_int_equal(rfc3339_parse("2025-6-01T00:00:00Z", &t), -1);
	assert_int_equal(rfc3339_parse("", &t), -1);
}

/* Bind a datagram socket at `path` ('@' = abstract) and return its fd. */
static int
bind_notify(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, path, strlen(path));
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))), 0);
	return fd;
}

static void
test_sd_notify(void **state)
{
	char path[64], abstract[64], buf[64];
	ssize_t n;
	int fd;

	(void)state;
	(void)snprintf(path, sizeof(path), "/tmp/nitride-notify-%d", (int)getpid());
	(void)unlink(path);
	fd = bind_notify(path);
	assert_int_equal(setenv("NOTIFY_SOCKET", path, 1), 0);
	sd_notify_msg("READY=1");
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 7);
	buf[n] = '\0';
	assert_string_equal(buf, "READY=1");
	close(fd);
	(void)unlink(path);

	(void)snprintf(abstract, sizeof(abstract), "@nitride-notify-%d", (int)getpid());
	fd = bind_notify(abstract);
	assert_int_equal(setenv("NOTIFY_SOCKET", abstract, 1), 0);
	sd_notify_msg("STOPPING=1");
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 10);
	close(fd);

	/* Not under systemd, or a relative path: nothing happens, nothing fails. */
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
	sd_notify_msg("READY=1");
	assert_int_equal(setenv("NOTIFY_SOCKET", "relative/path", 1), 0);
	sd_notify_msg("READY=1");
	assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
}

static void
test_confval(void **state)
{
	char host[16], small[4];
	unsigned u = 7, port = 0;
	bool b = false;

	(void)state;
	assert_int_equal(conf_uint("42", 1, 100, &u), 0);
	assert_int_equal(u, 42);
	assert_int_equal(conf_uint("0", 1, 100, &u), -1);
	assert_int_equal(conf_uint("101", 1, 100, &u), -1);
	assert_int_equal(conf_uint("-1", 0, 100, &u), -1);
	assert_int_equal(conf_uint(" 1", 0, 100, &u), -1);
	assert_int_equal(conf_uint("1x", 0, 100, &u), -1);
	assert_int_equal(conf_uint("99999999999999999999999", 0, 100, &u), -1);
	assert_int_equal(conf_bool("on", &b), 0);
	assert_true(b);
	assert_int_equal(conf_bool("false", &b), 0);
	assert_false(b);
	assert_int_equal(conf_bool("maybe", &b), -1);
	assert_int_equal(conf_hostport("127.0.0.1:8443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 8443);
	assert_int_equal(conf_hostport("[::1]:0", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 0);
	assert_int_equal(conf_hostport("host", host, sizeof(host), &port), -1);
	assert_int_equal(conf_hostport(":80", host, sizeof(host), &port), -1);
	assert_int_equal(conf_hostport("h:65536", host, sizeof(host), &port), -1);
	assert_int_equal(conf_hostport("a-very-long-host-name:1", host, sizeof(host), &port), -1);
	assert_true(conf_is_loopback("127.0.0.1"));
	assert_true(conf_is_loopback("127.1.2.3"));
	assert_true(conf_is_loopback("::1"));
	assert_true(conf_is_loopback("localhost"));
	assert_false(conf_is_loopback("0.0.0.0"));
	assert_false(conf_is_loopback("10.0.0.1"));
	assert_false(conf_is_loopback("::"));
	assert_false(conf_is_loopback("example.com"));
	assert_int_equal(conf_str(small, sizeof(small), "abc"), 0);
	assert_int_equal(conf_str(small, sizeof(small), "abcd"), -1);
}

static void
test_state_dir(void **state)
{
	char dir[64], link[80], err[256];

	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/nitride-statedir-%d", (int)getpid());
	(void)snprintf(link, sizeof(link), "%s-link", dir);
	(void)rmdir(dir);
	assert_int_equal(state_dir_ensure(dir, err, sizeof(err)), 0);
	assert_int_equal(state_dir_ensure(dir, err, sizeof(err)), 0); /* exists: fine */
	assert_int_equal(chmod(dir, 0750), 0);
	assert_int_equal(state_dir_ensure(dir, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must be 0700"));
	assert_int_equal(chmod(dir, 0700), 0);
	{
		FILE *f = fopen(link, "w"); /* a file, not a directory */

		assert_non_null(f);
		fclose(f);
	}
	assert_int_equal(state_dir_ensure(link, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a directory"));
	(void)unlink(link);
	assert_int_equal(rmdir(dir), 0);
}

/* workq: every job runs exactly once, on the pool's threads, and stop runs
 * what was queued before it returns. */
struct wq_count {
	pthread_mutex_t mu;
	int runs[200];
	int total;
	pthread_t seen[4];
	int nseen;
};

static struct wq_count wq;

static void
wq_job(void *arg)
{
	int i = (int)(intptr_t)arg, k;

	(void)pthread_mutex_lock(&wq.mu);
	wq.runs[i]++;
	wq.total++;
	for (k = 0; k < wq.nseen && !pthread_equal(wq.seen[k], pthread_self()); k++)
		;
	if (k == wq.nseen && wq.nseen < 4)
		wq.seen[wq.nseen++] = pthread_self();
	(void)pthread_mutex_unlock(&wq.mu);
	usleep(100); /* long enough for the other threads to take jobs */
}

static void
test_workq(void **state)
{
	workq *q = NULL;
	int i;

	(void)state;
	memset(&wq, 0, sizeof(wq));
	(void)pthread_mutex_init(&wq.mu, NULL);
	assert_int_equal(workq_start(0, &q), -1);
	assert_null(q);
	assert_int_equal(workq_start(257, &q), -1);
	assert_int_equal(workq_start(3, &q), 0);
	assert_non_null(q);
	assert_int_equal(workq_submit(q, NULL, NULL), -1);
	for (i = 0; i < 200; i++)
		assert_int_equal(workq_submit(q, wq_job, (void *)(intptr_t)i), 0);
	workq_stop(q); /* drains */
	assert_int_equal(wq.total, 200);
	for (i = 0; i < 200; i++)
		assert_int_equal(wq.runs[i], 1);
	assert_true(wq.nseen >= 2); /* more than one thread worked */
	for (i = 0; i < wq.nseen; i++)
		assert_false(pthread_equal(wq.seen[i], pthread_self()));
	workq_stop(NULL);
	assert_int_equal(workq_submit(NULL, wq_job, NULL), -1);
	pthread_mutex_destroy(&wq.mu);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_in_bounds),
		cmocka_unit_test(test_short_reads_fail_without_moving),
		cmocka_unit_test(test_expect_zero_reports_offset),
		cmocka_unit_test(test_put_le),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_sd_notify),
		cmocka_unit_test(test_confval),
		cmocka_unit_test(test_state_dir),
		cmocka_unit_test(test_workq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
