/*
 * Unit tests for nitrided's modules that need no services: the kept SNP
 * guest handles (src/nitride/guest_pool.c), against snpsimd's server run in
 * this process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nitride/snp.h>

#include "nitride/guest_pool.h"
#include "sim/sim_firmware.h"
#include "sim/sim_launch.h"
#include "sim/sim_server.h"
#include "sim/sim_state.h"

static char dir[4096], sock[4200];
static struct sim_state *state;
static struct sim_fw *fw;

/* snpsimd's accept loop, as its event loop would run it. */
struct acceptor {
	struct sim_server *srv;
	pthread_t th;
	volatile bool stop;
};

static void *
accept_loop(void *p)
{
	struct acceptor *a = p;

	while (!a->stop) {
		struct pollfd pfd = { sim_server_fd(a->srv), POLLIN, 0 };

		if (poll(&pfd, 1, 20) > 0)
			sim_server_accept(a->srv);
	}
	return NULL;
}

static void
sim_up(struct acceptor *a)
{
	char err[256];

	memset(a, 0, sizeof(*a));
	if (sim_server_start(sock, fw, &a->srv, err, sizeof(err)) != 0)
		fail_msg("sim_server_start: %s", err);
	assert_int_equal(pthread_create(&a->th, NULL, accept_loop, a), 0);
}

static void
sim_down(struct acceptor *a)
{
	a->stop = true;
	(void)pthread_join(a->th, NULL);
	sim_server_stop(a->srv);
	a->srv = NULL;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **ctx)
{
	const char *base = getenv("NITRIDE_TEST_TMP");
	char err[SIM_LAUNCH_ERR_MAX];
	struct sim_launch l;

	(void)ctx;
	(void)snprintf(dir, sizeof(dir), "%s/test_nitrided.XXXXXX",
		       base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(dir) == NULL)
		fail_msg("mkdtemp %s: %s", dir, strerror(errno));
	(void)snprintf(sock, sizeof(sock), "%s/sim.sock", dir);
	if (sim_state_open(dir, &state, err, sizeof(err)) != 0 ||
	    sim_state_ensure_ca(state, SNP_PRODUCT_GENOA, err, sizeof(err)) != 0)
		fail_msg("sim state: %s", err);
	sim_launch_init(&l);
	l.product = SNP_PRODUCT_GENOA;
	if (sim_launch_finalize(&l, err, sizeof(err)) != 0 ||
	    sim_fw_new(&l, state, &fw, err, sizeof(err)) != 0)
		fail_msg("sim firmware: %s", err);
	return 0;
}

static int
teardown(void **ctx)
{
	(void)ctx;
	sim_fw_free(fw);
	sim_state_free(state);
	(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* One report through the pool; returns the handles it opened. */
static unsigned
report_ok(guest_pool *p, uint8_t tag)
{
	uint8_t rd[SNP_REPORT_DATA_LEN], *rep = NULL, *certs = NULL;
	size_t rlen = 0, clen = 0;
	snp_report *r = NULL;
	snp_error e = { 0 };
	unsigned opened = 99;

	memset(rd, tag, sizeof(rd));
	if (guest_pool_report(p, rd, 0, &rep, &rlen, &certs, &clen, &opened, &e) != SNP_OK)
		fail_msg("report: %s", e.detail);
	/* The answer is for this request, not a stale one from a kept connection. */
	assert_int_equal(snp_report_parse(rep, rlen, &r, &e), SNP_OK);
	assert_memory_equal(snp_report_report_data(r), rd, sizeof(rd));
	assert_true(clen > 0);
	snp_report_free(r);
	free(rep);
	free(certs);
	return opened;
}

static void
test_guest_pool_keeps_and_recovers(void **state_)
{
	char spec[4300];
	struct acceptor a;
	guest_pool *p = NULL;
	uint8_t rd[SNP_REPORT_DATA_LEN] = { 0 }, *rep = NULL, *certs = NULL;
	size_t rlen = 0, clen = 0;
	snp_error e = { 0 };
	unsigned opened = 99;

	(void)state_;
	(void)snprintf(spec, sizeof(spec), "sim:%s", sock);
	sim_up(&a);
	assert_int_equal(guest_pool_new(spec, &p), 0);
	/* The first report opens the handle; the next ones reuse it. */
	assert_int_equal(report_ok(p, 1), 1);
	assert_int_equal(report_ok(p, 2), 0);
	assert_int_equal(report_ok(p, 3), 0);
	/* snpsimd counts a connection's requests when it ends: none has, so one
	 * connection carried all three. */
	assert_int_equal(sim_server_requests(a.srv), 0);
	/* snpsimd restarts: the kept connection is dead; the kept handle makes
	 * the request again on a new connection (libsnp's sim backend), and it
	 * succeeds. */
	sim_down(&a);
	sim_up(&a);
	assert_int_equal(report_ok(p, 4), 0);
	assert_int_equal(report_ok(p, 5), 0);
	assert_int_equal(sim_server_requests(a.srv), 0);
	/* snpsimd gone: the kept handle fails, a new one cannot be opened, and
	 * the error says so. */
	sim_down(&a);
	assert_int_not_equal(guest_pool_report(p, rd, 0, &rep, &rlen, &certs, &clen, &opened, &e),
			     SNP_OK);
	assert_null(rep);
	assert_int_equal(opened, 0);
	assert_non_null(strstr(e.detail, "snpsimd"));
	/* A firmware refusal on a fresh handle is the answer (no second try). */
	sim_up(&a);
	assert_int_not_equal(guest_pool_report(p, rd, 4, &rep, &rlen, &certs, &clen, &opened, &e),
			     SNP_OK); /* VMPL 4 does not exist */
	assert_int_equal(opened, 1);
	assert_int_equal(e.status, SNP_E_FIRMWARE);
	assert_int_equal(report_ok(p, 6), 1); /* the failed handle was not kept */
	guest_pool_free(p);
	sim_down(&a);
	guest_pool_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guest_pool_keeps_and_recovers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
