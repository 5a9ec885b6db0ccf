/*
 * libvhsm against a real vhsmd (path in argv[1]): one vhsm_client shared by
 * 8 threads with requests in flight at once, every answer checked (signatures
 * verified by OpenSSL with the key's public half), errors per thread — over
 * the Unix socket and over the TLS listener (certificates made with the
 * openssl CLI).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "nitride/vhsm.h"
#include "testsupport.h"

#define THREADS 8
#define ROUNDS 150

static const char *vhsmd_path;
static char dir[] = "/tmp/test-vhsm-client-XXXXXX";
static char sock[300];
static char tls_addr[64];
static pid_t daemon_pid = -1;
static vhsm_client *shared, *shared_tls;
static EVP_PKEY *pub;

/* The CLI makes the test PKI: a CA, vhsmd's certificate for 127.0.0.1, and
 * the client certificate CN=threads. */
static void
make_pki(void)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && exec >/dev/null 2>&1 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
		 "-out ca.pem -subj /CN=test-ca -days 1 && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key "
		 "-out srv.csr -subj /CN=vhsmd && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
		 "-extfile /dev/stdin -out srv.pem <<EOF\nsubjectAltName=IP:127.0.0.1\nEOF\n"
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cli.key "
		 "-out cli.csr -subj /CN=threads && "
		 "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 "
		 "-out cli.pem",
		 dir);
	assert_int_equal(system(cmd), 0);
}

static unsigned
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static int
start_daemon(void **state)
{
	char path[400], cert[400], key[400], ca[400];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	make_pki();
	snprintf(tls_addr, sizeof(tls_addr), "127.0.0.1:%u", free_port());
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "{\"rules\":[{\"principal\":{\"uid\":%u},\"keys\":[\"t/*\"],\"operations\":[\"*\"]},"
		   "{\"principal\":{\"tls_subject\":\"CN=threads\"},\"keys\":[\"t/*\"],"
		   "\"operations\":[\"*\"]}]}",
		(unsigned)getuid());
	fclose(f);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[vhsmd]\nsocket = %s\npolicy = %s/policy.json\nstate_dir = %s/state\n"
		   "secure_heap_size = 65536\n[sealing]\nstore = none\n"
		   "[tls]\nlisten = %s\ncertificate = %s/srv.pem\nprivate_key = %s/srv.key\n"
		   "client_ca = %s/ca.pem\n",
		sock, dir, dir, tls_addr, dir, dir, dir);
	fclose(f);
	daemon_pid = ts_daemon_start(vhsmd_path, path, sock);
	assert_int_equal(vhsm_connect(sock, &shared), 0);
	/* The Unix socket is up: so is the TLS listener (bound before it). */
	snprintf(cert, sizeof(cert), "%s/cli.pem", dir);
	snprintf(key, sizeof(key), "%s/cli.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	if (vhsm_connect_tls(tls_addr, cert, key, ca, &shared_tls) != 0)
		fail_msg("vhsm_connect_tls: %s", vhsm_last_message());
	return 0;
}

static int
stop_daemon(void **state)
{
	char path[400];
	int r;

	static const char *const made[] = { "ca.key", "ca.pem", "ca.srl", "srv.key", "srv.csr",
					    "srv.pem", "cli.key", "cli.csr", "cli.pem" };
	size_t i;

	(void)state;
	vhsm_close(shared);
	vhsm_close(shared_tls);
	EVP_PKEY_free(pub);
	for (i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, made[i]);
		unlink(path);
	}
	r = ts_daemon_stop(daemon_pid);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", dir);
	rmdir(path);
	rmdir(dir);
	/* vhsmd stops cleanly on SIGTERM. */
	return r;
}

struct work {
	long id;
	vhsm_client *c;
};

static void *
worker(void *arg)
{
	const struct work *w = arg;
	vhsm_client *shared_c = w->c; /* the connection all threads share */
	long id = w->id, i;
	uintptr_t bad = 0;

	for (i = 0; i < ROUNDS; i++) {
		uint8_t m[64], *sig = NULL, *rnd = NULL;
		size_t sl = 0;
		EVP_MD_CTX *ctx;
		int n = snprintf((char *)m, sizeof(m), "thread %ld round %ld", id, i);

		if (vhsm_sign(shared_c, "t/p256", VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT, m, (size_t)n, &sig, &sl,
			      NULL) != 0) {
			bad++;
			continue;
		}
		ctx = EVP_MD_CTX_new();
		if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1 ||
		    EVP_DigestVerify(ctx, sig, sl, m, (size_t)n) != 1)
			bad++;
		EVP_MD_CTX_free(ctx);
		vhsm_buf_free(sig, sl);
		/* Interleave a different request kind and an error. */
		if (vhsm_random(shared_c, (size_t)(1 + id), &rnd) != 0)
			bad++;
		vhsm_buf_free(rnd, (size_t)(1 + id));
		if (i % 10 == 0) {
			if (vhsm_sign(shared_c, "t/missing", 0, 0, m, 1, &sig, &sl, NULL) != VHSM_E_NOT_FOUND ||
			    strstr(vhsm_last_message(), "t/missing") == NULL)
				bad++;
		}
	}
	return (void *)bad;
}

/* n threads on one client: requests in flight at once, answers matched by
 * id.  Over the Unix socket the client opens up to 8 connections; beyond
 * that, threads share them (pipelined), which the 20-thread run exercises. */
static void
run_n_threads(vhsm_client *c, long n)
{
	pthread_t th[2 * THREADS + 4];
	struct work w[2 * THREADS + 4];
	long i;

	assert_true(n <= (long)(sizeof(th) / sizeof(th[0])));
	for (i = 0; i < n; i++) {
		w[i].id = i;
		w[i].c = c;
		assert_int_equal(pthread_create(&th[i], NULL, worker, &w[i]), 0);
	}
	for (i = 0; i < n; i++) {
		void *bad = NULL;

		assert_int_equal(pthread_join(th[i], &bad), 0);
		assert_int_equal((uintptr_t)bad, 0);
	}
}

static void
run_threads(vhsm_client *c)
{
	run_n_threads(c, THREADS);
}

static void
test_threads_share_one_connection(void **state)
{
	vhsm_key_spec spec = { VHSM_KEY_EC_P256, 0, 0, 0 };
	uint8_t *der = NULL;
	size_t dl = 0;
	const unsigned char *p;
	vhsm_key_info info;

	(void)state;
	assert_int_equal(vhsm_generate(shared, "t/p256", &spec), 0);
	assert_int_equal(vhsm_get_public(shared, "t/p256", &info, &der, &dl), 0);
	assert_string_equal(info.name, "t/p256");
	assert_int_equal(info.type, VHSM_KEY_EC_P256);
	p = der;
	pub = d2i_PUBKEY(NULL, &p, (long)dl);
	assert_non_null(pub);
	vhsm_buf_free(der, dl);
	run_threads(shared);
	run_n_threads(shared, 2 * THREADS + 4);
}

/* The same over TLS: OpenSSL allows one call at a time on an SSL object, so
 * this is what shows that reads and writes of different threads interleave
 * without corrupting the stream or deadlocking. */
static void
test_threads_share_one_tls_connection(void **state)
{
	(void)state;
	assert_non_null(pub); /* the key from the test above */
	run_threads(shared_tls);
}

static void
test_tls_connect_errors(void **state)
{
	char cert[400], key[400], ca[400], srvkey[400];
	vhsm_client *c = NULL;

	(void)state;
	snprintf(cert, sizeof(cert), "%s/cli.pem", dir);
	snprintf(key, sizeof(key), "%s/cli.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(srvkey, sizeof(srvkey), "%s/srv.key", dir);
	assert_int_equal(vhsm_connect_tls(NULL, cert, key, ca, &c), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_connect_tls(tls_addr, NULL, key, ca, &c), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_connect_tls(tls_addr, cert, key, ca, NULL), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_connect_tls("127.0.0.1", cert, key, ca, &c), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_connect_tls("127.0.0.1:0", cert, key, ca, &c), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_connect_tls(tls_addr, cert, srvkey, ca, &c), VHSM_E_ARGUMENT);
	assert_non_null(strstr(vhsm_last_message(), "does not belong"));
	assert_int_equal(vhsm_connect_tls(tls_addr, "/nonexistent.pem", key, ca, &c), VHSM_E_ARGUMENT);
	assert_non_null(strstr(vhsm_last_message(), "/nonexistent.pem"));
	/* The server's certificate names 127.0.0.1, not localhost. */
	{
		char addr[80];

		snprintf(addr, sizeof(addr), "localhost%s", strchr(tls_addr, ':'));
		assert_int_equal(vhsm_connect_tls(addr, cert, key, ca, &c), VHSM_E_IO);
		assert_non_null(strstr(vhsm_last_message(), "mismatch"));
	}
	assert_null(c);
	assert_int_equal(vhsm_ping(shared_tls), 0);
}

static void
test_errors_and_list(void **state)
{
	vhsm_key_spec spec = { VHSM_KEY_OPAQUE, 0, VHSM_FLAG_EXPORTABLE, 0 };
	vhsm_key_info *infos = NULL;
	uint8_t *out = NULL;
	size_t n = 0, ol = 0, i;
	bool seen = false;

	(void)state;
	assert_int_equal(vhsm_import(shared, "t/token", &spec, (const uint8_t *)"s3cret", 6), 0);
	assert_int_equal(vhsm_read_secret(shared, "t/token", &out, &ol), 0);
	assert_int_equal(ol, 6);
	assert_memory_equal(out, "s3cret", 6);
	vhsm_buf_free(out, ol);
	assert_int_equal(vhsm_generate(shared, "other/x", &spec), VHSM_E_DENIED);
	assert_non_null(strstr(vhsm_last_message(), "not permitted"));
	assert_int_equal(vhsm_generate(shared, "bad name", &spec), VHSM_E_ARGUMENT);
	assert_int_equal(vhsm_list(shared, &infos, &n), 0);
	for (i = 0; i < n; i++)
		seen |= strcmp(infos[i].name, "t/token") == 0 && infos[i].flags == VHSM_FLAG_EXPORTABLE;
	assert_true(seen);
	free(infos);
	assert_int_equal(vhsm_ping(shared), 0);
	assert_string_equal(vhsm_strerror(VHSM_E_DENIED), "permission denied");
	assert_int_equal(vhsm_key_type_from_name(vhsm_key_type_name(VHSM_KEY_RSA3072)), VHSM_KEY_RSA3072);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_share_one_connection),
		cmocka_unit_test(test_threads_share_one_tls_connection),
		cmocka_unit_test(test_tls_connect_errors),
		cmocka_unit_test(test_errors_and_list),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_vhsm_client PATH-TO-VHSMD\n");
		return 2;
	}
	vhsmd_path = argv[1];
	return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
