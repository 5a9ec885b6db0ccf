/*
 * bench_vhsm — P-256 sign latency through vhsmd (libvhsm, one client) against
 * the floor it cannot beat, measured in the same run: an in-process OpenSSL
 * P-256 sign (same calls vhsmd makes) plus a bare Unix-socket round trip of the
 * same sizes to an echo thread.  Goal (issue 5): vhsmd <= 1.3 x that floor.
 *
 * usage: bench_vhsm --vhsmd PATH [--seconds N]
 * Starts its own vhsmd (volatile keys, temp dir) and kills it at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "nitride/vhsm.h"

#define MAX_SAMPLES 2000000

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct stats {
	double median, p99;
	size_t n;
};

/* Run fn repeatedly for `seconds`; per-call latency statistics. */
static int
measure(int (*fn)(void *), void *arg, double seconds, struct stats *st)
{
	double *s = malloc(MAX_SAMPLES * sizeof(double)), end, t0;
	size_t n = 0;

	if (s == NULL)
		return -1;
	for (n = 0; n < 200; n++) /* warm up */
		if (fn(arg) != 0)
			goto fail;
	n = 0;
	end = now_ns() + seconds * 1e9;
	while (n < MAX_SAMPLES && (t0 = now_ns()) < end) {
		if (fn(arg) != 0)
			goto fail;
		s[n++] = now_ns() - t0;
	}
	qsort(s, n, sizeof(double), cmp_d);
	st->n = n;
	st->median = s[n / 2];
	st->p99 = s[(n * 99) / 100];
	free(s);
	return 0;
fail:
	free(s);
	return -1;
}

static const uint8_t msg[32] = "thirty-two bytes of message ....";

/* In-process: what vhsmd does per sign. */
static int
raw_sign(void *arg)
{
	EVP_PKEY *pk = arg;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t sig[80];
	size_t sl = sizeof(sig);
	int r = -1;

	if (ctx && EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pk, NULL) == 1 &&
	    EVP_DigestSign(ctx, sig, &sl, msg, sizeof(msg)) == 1)
		r = 0;
	EVP_MD_CTX_free(ctx);
	return r;
}

/* Bare round trip: request-sized write, answer-sized read.  Measured twice:
 * blocking reads, and reads that busy-poll for up to 200 us first, as libvhsm
 * and vhsmd do (on VMs whose idle vCPUs halt, the wake-up of a blocked reader
 * costs more than the signature); the floor is the faster of the two. */
#define REQ_LEN 78
#define RESP_LEN 112
#define SPIN_NS 200000

static volatile int busy_poll; /* read by both ends of the bare round trip */

static ssize_t
bare_read(int fd, uint8_t *p, size_t n)
{
	struct timespec t0, t;
	unsigned i;

	if (busy_poll) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 1;; i++) {
			ssize_t r = recv(fd, p, n, MSG_DONTWAIT);

			if (r >= 0 || (errno != EAGAIN && errno != EINTR))
				return r;
			if ((i & 15) == 0) {
				clock_gettime(CLOCK_MONOTONIC, &t);
				if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > SPIN_NS)
					break;
			}
		}
	}
	return read(fd, p, n);
}

static void *
echo_thread(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[256];

	for (;;) {
		size_t got = 0;

		while (got < REQ_LEN) {
			ssize_t n = bare_read(fd, buf + got, REQ_LEN - got);

			if (n <= 0)
				return NULL;
			got += (size_t)n;
		}
		if (write(fd, buf, RESP_LEN) != RESP_LEN)
			return NULL;
	}
}

static int
rtt(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[256] = { 0 };
	size_t got = 0;

	if (write(fd, buf, REQ_LEN) != REQ_LEN)
		return -1;
	while (got < RESP_LEN) {
		ssize_t n = bare_read(fd, buf + got, RESP_LEN - got);

		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static int
vhsm_one(void *arg)
{
	vhsm_client *c = arg;
	uint8_t *sig = NULL;
	size_t sl = 0;
	int r = vhsm_sign(c, "bench/p256", VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT, msg, sizeof(msg), &sig,
			  &sl, NULL);

	vhsm_buf_free(sig, sl);
	return r;
}

int
main(int argc, char **argv)
{
	const char *vhsmd = NULL;
	double seconds = 1;
	char dir[] = "/tmp/bench-vhsm-XXXXXX", path[512], sock[300];
	struct stats raw, bare, spun, viad;
	double floor_ns;
	EVP_PKEY *pk = NULL;
	vhsm_client *c = NULL;
	pid_t pid = -1;
	int i, sv[2] = { -1, -1 }, rc = 1;
	pthread_t th;
	FILE *f;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--vhsmd") == 0 && i + 1 < argc)
			vhsmd = argv[++i];
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else {
			fprintf(stderr, "usage: bench_vhsm --vhsmd PATH [--seconds N]\n");
			return 2;
		}
	}
	if (vhsmd == NULL || seconds <= 0 || mkdtemp(dir) == NULL) {
		fprintf(stderr, "usage: bench_vhsm --vhsmd PATH [--seconds N]\n");
		return 2;
	}
	snprintf(sock, sizeof(sock), "%s/vhsmd.sock", dir);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	if ((f = fopen(path, "w")) == NULL)
		return 2;
	fprintf(f, "{\"rules\":[{\"principal\":{\"uid\":%u},\"keys\":[\"bench/*\"],\"operations\":[\"*\"]}]}\n",
		(unsigned)getuid());
	fclose(f);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	if ((f = fopen(path, "w")) == NULL)
		return 2;
	fprintf(f, "[vhsmd]\nsocket = %s\npolicy = %s/policy.json\nstate_dir = %s/state\n"
		   "secure_heap_size = 65536\n[sealing]\nstore = none\n", sock, dir, dir);
	fclose(f);
	if ((pid = fork()) == 0) {
		execl(vhsmd, vhsmd, "--config", path, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && vhsm_connect(sock, &c) != 0; i++)
		usleep(20000);
	if (c == NULL) {
		fprintf(stderr, "bench_vhsm: vhsmd did not start\n");
		goto out;
	}
	{
		vhsm_key_spec spec = { VHSM_KEY_EC_P256, 0, 0, 0 };

		if (vhsm_generate(c, "bench/p256", &spec) != 0)
			goto out;
	}
	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (pk == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 ||
	    pthread_create(&th, NULL, echo_thread, &sv[1]) != 0)
		goto out;
	pthread_detach(th);
	if (measure(raw_sign, pk, seconds, &raw) != 0 || measure(rtt, &sv[0], seconds, &bare) != 0)
		goto fail;
	busy_poll = 1;
	if (measure(rtt, &sv[0], seconds, &spun) != 0)
		goto fail;
	busy_poll = 0;
	if (measure(vhsm_one, c, seconds, &viad) != 0) {
fail:
		fprintf(stderr, "bench_vhsm: a measurement failed\n");
		goto out;
	}
	printf("P-256 sign, 1 client, median (p99) latency, %.1f s each:\n", seconds);
	printf("  in-process OpenSSL sign        %8.1f us (%.1f)  n=%zu\n", raw.median / 1e3, raw.p99 / 1e3, raw.n);
	floor_ns = raw.median + (spun.median < bare.median ? spun.median : bare.median);
	printf("  bare Unix-socket round trip    %8.1f us (%.1f)  n=%zu  blocking reads\n", bare.median / 1e3, bare.p99 / 1e3, bare.n);
	printf("  bare Unix-socket round trip    %8.1f us (%.1f)  n=%zu  busy-polled reads\n", spun.median / 1e3, spun.p99 / 1e3, spun.n);
	printf("  floor = sign + faster trip     %8.1f us\n", floor_ns / 1e3);
	printf("  via vhsmd (libvhsm)            %8.1f us (%.1f)  n=%zu\n", viad.median / 1e3, viad.p99 / 1e3, viad.n);
	printf("  ratio vhsmd / floor            %8.2f x   (goal <= 1.30)\n", viad.median / floor_ns);
	rc = 0;
out:
	vhsm_close(c);
	if (sv[0] >= 0)
		close(sv[0]);
	EVP_PKEY_free(pk);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	{
		static const char *const leftovers[] = { "policy.json", "vhsmd.ini", "vhsmd.sock", "state" };
		size_t k;

		for (k = 0; k < sizeof(leftovers) / sizeof(leftovers[0]); k++) {
			snprintf(path, sizeof(path), "%s/%s", dir, leftovers[k]);
			if (unlink(path) != 0)
				(void)rmdir(path); /* the state directory */
		}
		rmdir(dir);
	}
	return rc;
}
