/*
 * provd helpers (contract in util.h).
 */
#include "provision/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/util.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/hex.h"
#include "common/wipemem.h"

void
prov_alloc_init(void)
{
	cjose_set_alloc_funcs(wipemem_malloc, wipemem_realloc, wipemem_free);
	json_set_alloc_funcs(wipemem_malloc, wipemem_free);
}

char *
prov_b64_encode(const uint8_t *in, size_t n)
{
	char *out;

	if (n > (size_t)INT32_MAX / 2 || (out = malloc((n + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	(void)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

char *
prov_b64url_encode(const uint8_t *in, size_t n)
{
	char *out = prov_b64_encode(in, n);
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; out[i] != '\0'; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
		else if (out[i] == '=') {
			out[i] = '\0';
			break;
		}
	}
	return out;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
prov_b64_decode(const char *in, size_t n, size_t max, uint8_t **out, size_t *outlen)
{
	uint8_t *buf;
	size_t pad = 0, i;
	int w;

	if (n == 0) {
		if ((buf = malloc(1)) == NULL)
			return -1;
		buf[0] = 0;
		*out = buf;
		*outlen = 0;
		return 0;
	}
	if (n % 4 != 0 || n > (size_t)INT32_MAX || n / 4 * 3 > max + 2)
		return -1;
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (in[i] == '\0' || strchr(b64chars, in[i]) == NULL)
			return -1;
	if (n / 4 * 3 - pad > max || (buf = malloc(n / 4 * 3 + 1)) == NULL)
		return -1;
	w = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
	if (w < 0 || (size_t)w != n / 4 * 3) {
		OPENSSL_cleanse(buf, n / 4 * 3 + 1);
		free(buf);
		return -1;
	}
	buf[(size_t)w - pad] = 0;
	*out = buf;
	*outlen = (size_t)w - pad;
	return 0;
}

int
prov_b64url_decode(const char *in, size_t n, size_t max, uint8_t **out, size_t *outlen)
{
	char *t;
	size_t i, m;
	int r;

	if (n % 4 == 1 || n > (size_t)INT32_MAX - 4)
		return -1;
	m = n + (4 - n % 4) % 4;
	if ((t = malloc(m + 1)) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		char c = in[i];

		if (c == '+' || c == '/' || c == '=' || c == '\0') {
			free(t);
			return -1;
		}
		t[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	for (; i < m; i++)
		t[i] = '=';
	t[m] = '\0';
	r = prov_b64_decode(t, m, max, out, outlen);
	OPENSSL_cleanse(t, m);
	free(t);
	return r;
}

void
prov_sha256_hex(const void *buf, size_t n, char out[PROV_SHA256_HEX])
{
	unsigned char md[32];
	unsigned mdlen = 0;

	if (EVP_Digest(buf, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		memset(md, 0, sizeof(md));
	hex_encode(md, sizeof(md), out);
}

void
prov_log(const char *level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	(void)fprintf(stderr, "provd: %s: %s\n", level, line);
}
