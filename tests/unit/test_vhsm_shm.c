/*
 * libvhsm's shared-memory slot against a real vhsmd (path in argv[1]):
 * answers through the slot equal those through the socket (signatures and
 * ciphertexts cross between a slot client and a socket-only one, errors
 * carry the same status and message), requests and answers too large for
 * the slot, many threads on one client, a client that never spins and a
 * daemon that never busy-polls (both need doorbells), and shared_memory = no.
 *
 * Whether the slot carried a request is read from the client's own mapping
 * of it (/proc/self/maps names the memfd "vhsm-slot"): its req_seq counts
 * the requests published there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nitride/vhsm.h"
#include "testsupport.h"
#include "vhsm/proto.h"

static const char *vhsmd_path;
static char dir[] = "/tmp/test-vhsm-shm-XXXXXX";
static char sock[300];
static pid_t daemon_pid = -1;

/* (Re)start vhsmd with these settings; the policy lets this uid use the keys t/...
 * and nothing else. */
static void
daemon_start(bool shared_memory, unsigned busy_poll_us)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[vhsmd]\nsocket = %s\npolicy = %s/policy.json\nstate_dir = %s/state\n"
		   "secure_heap_size = 65536\nshared_memory = %s\nbusy_poll_us = %u\n"
		   "[sealing]\nstore = none\n",
		sock, dir, dir, shared_memory ? "yes" : "no", busy_poll_us);
	fclose(f);
	unlink(sock);
	daemon_pid = ts_daemon_start(vhsmd_path, path, sock);
}

static int
daemon_stop(void)
{
	int r = ts_daemon_stop(daemon_pid);

	daemon_pid = -1;
	return r;
}

static int
setup(void **state)
{
	char path[400];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"rules\":[{\"principal\":{\"uid\":%u},\"keys\":[\"t/*\"],\"operations\":[\"*\"]}]}",
		(unsigned)getuid());
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	char path[400];
	int r = daemon_stop();

	(void)state;
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", dir);
	rmdir(path);
	rmdir(dir);
	return r;
}

/* The slots this process has mapped: how many, and the requests published
 * in them so far (the sum of their req_seq). */
static unsigned
slots_mapped(uint64_t *requests)
{
	char line[512];
	unsigned n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	if (requests)
		*requests = 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		char *end;

		if (strstr(line, "/memfd:vhsm-slot") == NULL)
			continue;
		lo = strtoul(line, &end, 16);
		if (*end != '-')
			continue;
		hi = strtoul(end + 1, &end, 16);
		if (*end != ' ' || hi - lo != VHSM_SHM_SIZE)
			continue;
		n++;
		if (requests)
			*requests += __atomic_load_n(&((const struct vhsm_shm_ctl *)lo)->req_seq,
						     __ATOMIC_ACQUIRE);
	}
	fclose(f);
	return n;
}

static vhsm_client *
connect_with(const char *shm, const char *spin_us)
{
	vhsm_client *c = NULL;

	if (shm)
		setenv("VHSM_SHM", shm, 1);
	else
		unsetenv("VHSM_SHM");
	if (spin_us)
		setenv("VHSM_SPIN_US", spin_us, 1);
	else
		unsetenv("VHSM_SPIN_US");
	if (vhsm_connect(sock, &c) != 0)
		fail_msg("vhsm_connect: %s", vhsm_last_message());
	unsetenv("VHSM_SHM");
	unsetenv("VHSM_SPIN_US");
	return c;
}

/* Sign on one client, verify on the other; encrypt on one, decrypt on the
 * other; the same errors on both. */
static void
cross_check(vhsm_client *a, vhsm_client *b)
{
	static const uint8_t msg[] = "a message to sign";
	uint8_t pt[4096], *sig = NULL, *ct = NULL, *back = NULL;
	size_t sl = 0, cl = 0, bl = 0, i;
	char ma[256], mb[256];

	for (i = 0; i < sizeof(pt); i++)
		pt[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(vhsm_sign(a, "t/p256", 0, 0, msg, sizeof(msg), &sig, &sl, NULL), 0);
	assert_int_equal(vhsm_verify(b, "t/p256", 0, 0, 0, msg, sizeof(msg), sig, sl), 0);
	sig[sl - 1] ^= 1;
	assert_int_equal(vhsm_verify(a, "t/p256", 0, 0, 0, msg, sizeof(msg), sig, sl),
			 VHSM_E_BAD_SIGNATURE);
	vhsm_buf_free(sig, sl);
	assert_int_equal(vhsm_encrypt(a, "t/aes", 0, (const uint8_t *)"aad", 3, pt, sizeof(pt), &ct,
				      &cl), 0);
	assert_int_equal(vhsm_decrypt(b, "t/aes", 0, (const uint8_t *)"aad", 3, ct, cl, &back, &bl), 0);
	assert_int_equal(bl, sizeof(pt));
	assert_memory_equal(back, pt, sizeof(pt));
	vhsm_buf_free(back, bl);
	back = NULL;
	ct[cl / 2] ^= 1;
	assert_int_equal(vhsm_decrypt(a, "t/aes", 0, (const uint8_t *)"aad", 3, ct, cl, &back, &bl),
			 VHSM_E_DECRYPT);
	vhsm_buf_free(ct, cl);
	/* Not found and denied: same status, same text, either way. */
	assert_int_equal(vhsm_sign(a, "t/missing", 0, 0, msg, 1, &sig, &sl, NULL), VHSM_E_NOT_FOUND);
	snprintf(ma, sizeof(ma), "%s", vhsm_last_message());
	assert_int_equal(vhsm_sign(b, "t/missing", 0, 0, msg, 1, &sig, &sl, NULL), VHSM_E_NOT_FOUND);
	snprintf(mb, sizeof(mb), "%s", vhsm_last_message());
	assert_string_equal(ma, mb);
	assert_non_null(strstr(ma, "t/missing"));
	assert_int_equal(vhsm_sign(a, "other/k", 0, 0, msg, 1, &sig, &sl, NULL), VHSM_E_DENIED);
	snprintf(ma, sizeof(ma), "%s", vhsm_last_message());
	assert_int_equal(vhsm_sign(b, "other/k", 0, 0, msg, 1, &sig, &sl, NULL), VHSM_E_DENIED);
	snprintf(mb, sizeof(mb), "%s", vhsm_last_message());
	assert_string_equal(ma, mb);
}

/* Requests and answers that do not fit the 64 KiB slot take the socket. */
static void
large_frames(vhsm_client *c)
{
	size_t n = 100000, i, cl = 0, bl = 0;
	uint8_t *pt = malloc(n), *ct = NULL, *back = NULL, *rnd = NULL;

	assert_non_null(pt);
	for (i = 0; i < n; i++)
		pt[i] = (uint8_t)i;
	/* Request and answer too large. */
	assert_int_equal(vhsm_encrypt(c, "t/aes", 0, NULL, 0, pt, n, &ct, &cl), 0);
	assert_int_equal(vhsm_decrypt(c, "t/aes", 0, NULL, 0, ct, cl, &back, &bl), 0);
	assert_int_equal(bl, n);
	assert_memory_equal(back, pt, n);
	/* A small request whose answer is larger than the slot. */
	assert_int_equal(vhsm_random(c, 65536, &rnd), 0);
	vhsm_buf_free(rnd, 65536);
	vhsm_buf_free(ct, cl);
	vhsm_buf_free(back, bl);
	free(pt);
}

static void
test_slot_equals_socket(void **state)
{
	vhsm_key_spec ec = { VHSM_KEY_EC_P256, 0, 0, 0 }, aes = { VHSM_KEY_AES256, 0, 0, 0 };
	vhsm_client *slot, *plain;
	uint64_t before, after;

	(void)state;
	daemon_start(true, 100);
	assert_int_equal(slots_mapped(NULL), 0);
	slot = connect_with(NULL, NULL);
	assert_int_equal(slots_mapped(&before), 1);
	plain = connect_with("0", NULL);
	assert_int_equal(slots_mapped(NULL), 1); /* VHSM_SHM=0: no slot */
	assert_int_equal(vhsm_generate(slot, "t/p256", &ec), 0);
	assert_int_equal(vhsm_generate(plain, "t/aes", &aes), 0);
	cross_check(slot, plain);
	cross_check(plain, slot);
	large_frames(slot);
	assert_int_equal(slots_mapped(&after), 1);
	/* generate + two cross checks' worth of slot calls, then the large
	 * frames' small random request; the large requests took the socket. */
	assert_int_equal(after - before, 1 + 6 + 4 + 1);
	assert_int_equal(vhsm_ping(slot), 0);
	vhsm_close(slot);
	vhsm_close(plain);
	assert_int_equal(slots_mapped(NULL), 0);
}

struct work {
	vhsm_client *c;
	long id;
};

static void *
worker(void *arg)
{
	const struct work *w = arg;
	uintptr_t bad = 0;
	long i;

	for (i = 0; i < 100; i++) {
		uint8_t m[64], *sig = NULL, *ct = NULL, *pt = NULL;
		size_t sl = 0, cl = 0, pl = 0;
		int n = snprintf((char *)m, sizeof(m), "thread %ld round %ld", w->id, i);

		if (vhsm_sign(w->c, "t/p256", 0, 0, m, (size_t)n, &sig, &sl, NULL) != 0 ||
		    vhsm_verify(w->c, "t/p256", 0, 0, 0, m, (size_t)n, sig, sl) != 0)
			bad++;
		vhsm_buf_free(sig, sl);
		if (vhsm_encrypt(w->c, "t/aes", 0, NULL, 0, m, (size_t)n, &ct, &cl) != 0 ||
		    vhsm_decrypt(w->c, "t/aes", 0, NULL, 0, ct, cl, &pt, &pl) != 0 || pl != (size_t)n ||
		    memcmp(pt, m, pl) != 0)
			bad++;
		vhsm_buf_free(ct, cl);
		vhsm_buf_free(pt, pl);
		if (i % 10 == 0 && vhsm_sign(w->c, "t/missing", 0, 0, m, 1, &sig, &sl, NULL) !=
					   VHSM_E_NOT_FOUND)
			bad++;
	}
	return (void *)bad;
}

/* n threads on one client (more than its 8 lanes: pipelined on shared
 * lanes, where only a lane's lone call uses the slot). */
static void
run_threads(vhsm_client *c, long n)
{
	pthread_t th[20];
	struct work w[20];
	long i;

	assert_true(n <= 20);
	for (i = 0; i < n; i++) {
		w[i].c = c;
		w[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < n; i++) {
		void *bad = NULL;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
}

static void
test_threads(void **state)
{
	vhsm_client *c;
	uint64_t before, after;

	(void)state;
	c = connect_with(NULL, NULL);
	(void)slots_mapped(&before);
	run_threads(c, 20);
	assert_true(slots_mapped(&after) >= 1);
	assert_true(after > before);
	vhsm_close(c);
}

/* A client that never spins sleeps in recv() at once: every slot answer
 * reaches it through a doorbell. */
static void
test_no_spin(void **state)
{
	vhsm_client *c;
	uint64_t before, after;

	(void)state;
	c = connect_with(NULL, "0");
	(void)slots_mapped(&before);
	run_threads(c, 1);
	run_threads(c, 4);
	(void)slots_mapped(&after);
	assert_true(after - before >= 100 * 5);
	vhsm_close(c);
}

/* A daemon that never busy-polls sleeps in poll() after every turn: every
 * slot request reaches it through a doorbell (with and without spinning). */
static void
test_daemon_sleeps(void **state)
{
	vhsm_client *c, *nospin;
	uint64_t before, after;

	(void)state;
	assert_int_equal(daemon_stop(), 0);
	daemon_start(true, 0);
	c = connect_with(NULL, NULL);
	nospin = connect_with(NULL, "0");
	(void)slots_mapped(&before);
	/* The keys were volatile: make them again. */
	{
		vhsm_key_spec ec = { VHSM_KEY_EC_P256, 0, 0, 0 }, aes = { VHSM_KEY_AES256, 0, 0, 0 };

		assert_int_equal(vhsm_generate(c, "t/p256", &ec), 0);
		assert_int_equal(vhsm_generate(nospin, "t/aes", &aes), 0);
	}
	run_threads(c, 1);
	run_threads(nospin, 1);
	run_threads(c, 3);
	cross_check(c, nospin);
	(void)slots_mapped(&after);
	assert_true(after - before >= 100 * 5);
	vhsm_close(c);
	vhsm_close(nospin);
}

/* shared_memory = no: the attach is refused and the client keeps to the socket. */
static void
test_daemon_refuses(void **state)
{
	vhsm_key_spec ec = { VHSM_KEY_EC_P256, 0, 0, 0 }, aes = { VHSM_KEY_AES256, 0, 0, 0 };
	vhsm_client *c, *d;

	(void)state;
	assert_int_equal(daemon_stop(), 0);
	daemon_start(false, 100);
	c = connect_with(NULL, NULL);
	assert_int_equal(slots_mapped(NULL), 0);
	assert_int_equal(vhsm_generate(c, "t/p256", &ec), 0);
	assert_int_equal(vhsm_generate(c, "t/aes", &aes), 0);
	d = connect_with(NULL, "0");
	cross_check(c, d);
	run_threads(c, 10);
	assert_int_equal(slots_mapped(NULL), 0);
	vhsm_close(c);
	vhsm_close(d);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slot_equals_socket),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_no_spin),
		cmocka_unit_test(test_daemon_sleeps),
		cmocka_unit_test(test_daemon_refuses),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_vhsm_shm PATH-TO-VHSMD\n");
		return 2;
	}
	vhsmd_path = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
