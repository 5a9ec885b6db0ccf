/*
 * Unit tests for src/common/tlsserver.c: a matching certificate and key give
 * a context with the services' settings; a key of another certificate, or a
 * missing file, is refused with both file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/tlsserver.h"
#include "testsupport.h"

struct files {
	char *dir;
	char cert_a[256], key_a[256], cert_b[256], key_b[256];
};

/* A self-signed P-256 certificate and its key, as PEM files. */
static void
write_pair(const char *cert_path, const char *key_path)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	FILE *f;

	assert_non_null(k);
	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
						    (const unsigned char *)"127.0.0.1", -1, -1, 0),
			 1);
	assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	assert_int_equal(X509_set_pubkey(x, k), 1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_non_null(f = fopen(cert_path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	assert_non_null(f = fopen(key_path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

static int
setup(void **state)
{
	struct files *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	t->dir = ts_scratch_dir("tlsserver");
	if (strlen(t->dir) > sizeof(t->cert_a) - 8)
		fail_msg("%s: too long a scratch path for this test", t->dir);
	(void)snprintf(t->cert_a, sizeof(t->cert_a), "%s/a.crt", t->dir);
	(void)snprintf(t->key_a, sizeof(t->key_a), "%s/a.key", t->dir);
	(void)snprintf(t->cert_b, sizeof(t->cert_b), "%s/b.crt", t->dir);
	(void)snprintf(t->key_b, sizeof(t->key_b), "%s/b.key", t->dir);
	write_pair(t->cert_a, t->key_a);
	write_pair(t->cert_b, t->key_b);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct files *t = *state;

	(void)unlink(t->cert_a);
	(void)unlink(t->key_a);
	(void)unlink(t->cert_b);
	(void)unlink(t->key_b);
	(void)rmdir(t->dir);
	free(t->dir);
	free(t);
	return 0;
}

static void
test_matching_pair(void **state)
{
	struct files *t = *state;
	SSL_CTX *ctx = NULL;
	char err[512] = "";

	assert_int_equal(tls_server_ctx(t->cert_a, t->key_a, &ctx, err, sizeof(err)), 0);
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
	assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_free(ctx);
}

static void
test_refusals_name_the_files(void **state)
{
	struct files *t = *state;
	SSL_CTX *ctx = NULL;
	char err[600] = "", want[600];

	/* The key of another certificate. */
	assert_int_equal(tls_server_ctx(t->cert_a, t->key_b, &ctx, err, sizeof(err)), -1);
	assert_null(ctx);
	(void)snprintf(want, sizeof(want), "TLS (tls_cert %s, tls_key %s): ", t->cert_a, t->key_b);
	assert_true(strncmp(err, want, strlen(want)) == 0);
	assert_true(strlen(err) > strlen(want)); /* OpenSSL's reason follows */
	/* A certificate file that is not there. */
	assert_int_equal(tls_server_ctx("/nonexistent/x.crt", t->key_a, &ctx, err, sizeof(err)), -1);
	assert_null(ctx);
	assert_non_null(strstr(err, "/nonexistent/x.crt"));
	/* A key file that is a certificate. */
	assert_int_equal(tls_server_ctx(t->cert_a, t->cert_a, &ctx, err, sizeof(err)), -1);
	assert_null(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matching_pair),
		cmocka_unit_test(test_refusals_name_the_files),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
