/*
 * Master key and at-rest encryption (contract in seal.h).
 */
#include "provision/seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/atomicfile.h"

struct seal_key {
	uint8_t *key; /* SEAL_KEY_LEN bytes, secure heap */
};

void
seal_key_free(seal_key *k)
{
	if (k == NULL)
		return;
	OPENSSL_secure_clear_free(k->key, SEAL_KEY_LEN);
	free(k);
}

int
seal_key_open(const char *path, bool create, seal_key **out, char *err, size_t errlen)
{
	seal_key *k = NULL;
	struct stat st;
	uint8_t extra;
	ssize_t n;
	int fd = -1, r = -1, wr;

	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->key = OPENSSL_secure_malloc(SEAL_KEY_LEN)) == NULL) {
		(void)snprintf(err, errlen, "master key: out of memory");
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		if (RAND_priv_bytes(k->key, SEAL_KEY_LEN) != 1) {
			(void)snprintf(err, errlen, "master key %s: no randomness", path);
			goto out;
		}
		if ((wr = atomic_write_file(path, k->key, SEAL_KEY_LEN, 0600)) != 0) {
			(void)snprintf(err, errlen, "master key %s: cannot create: %s", path,
				       strerror(-wr));
			goto out;
		}
		*out = k;
		k = NULL;
		r = 0;
		goto out;
	}
	if (fd < 0) {
		(void)snprintf(err, errlen, "master key %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		(void)snprintf(err, errlen, "master key %s: not a regular file", path);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		(void)snprintf(err, errlen, "master key %s: mode %03o, must be 0600 (chmod 600 %s)",
			       path, (unsigned)(st.st_mode & 0777), path);
		goto out;
	}
	n = read(fd, k->key, SEAL_KEY_LEN);
	if (n != (ssize_t)SEAL_KEY_LEN || read(fd, &extra, 1) != 0) {
		(void)snprintf(err, errlen, "master key %s: must be exactly %u bytes", path,
			       SEAL_KEY_LEN);
		goto out;
	}
	*out = k;
	k = NULL;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	seal_key_free(k);
	return r;
}

int
seal_encrypt(const seal_key *k, const uint8_t *aad, size_t aadlen, const uint8_t *pt,
	     size_t ptlen, uint8_t **ct, size_t *ctlen)
{
	EVP_CIPHER_CTX *c = NULL;
	uint8_t *buf = NULL;
	int len = 0, fin = 0, r = -1;

	if (ptlen > INT32_MAX - 64 || aadlen > INT32_MAX ||
	    (buf = malloc(ptlen + SEAL_OVERHEAD)) == NULL || (c = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (RAND_bytes(buf, 12) != 1 ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, buf) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) != 1 ||
	    EVP_EncryptUpdate(c, buf + 12, &len, pt, (int)ptlen) != 1 ||
	    EVP_EncryptFinal_ex(c, buf + 12 + len, &fin) != 1 ||
	    (size_t)(len + fin) != ptlen ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, buf + 12 + ptlen) != 1)
		goto out;
	*ct = buf;
	*ctlen = ptlen + SEAL_OVERHEAD;
	buf = NULL;
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	free(buf);
	return r;
}

int
seal_decrypt(const seal_key *k, const uint8_t *aad, size_t aadlen, const uint8_t *ct,
	     size_t ctlen, uint8_t **pt, size_t *ptlen)
{
	EVP_CIPHER_CTX *c = NULL;
	uint8_t *buf = NULL, tag[16];
	size_t n;
	int len = 0, fin = 0, r = -1;

	if (ctlen < SEAL_OVERHEAD || ctlen > INT32_MAX || aadlen > INT32_MAX)
		return -1;
	n = ctlen - SEAL_OVERHEAD;
	memcpy(tag, ct + ctlen - 16, 16);
	if ((buf = OPENSSL_secure_malloc(n + 1)) == NULL || (c = EVP_CIPHER_CTX_new()) == NULL)
		goto out;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, ct) != 1 ||
	    EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) != 1 ||
	    EVP_DecryptUpdate(c, buf, &len, ct + 12, (int)n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
	    EVP_DecryptFinal_ex(c, buf + len, &fin) != 1 || (size_t)(len + fin) != n)
		goto out;
	buf[n] = 0;
	*pt = buf;
	*ptlen = n;
	buf = NULL;
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	if (buf != NULL)
		OPENSSL_secure_clear_free(buf, n + 1);
	return r;
}
