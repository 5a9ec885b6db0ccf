/*
 * base64url without padding (contract in b64url.h).
 */
#include "common/b64url.h"

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
b64url_len(size_t n)
{
	return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void
b64url_put(const uint8_t *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; n - i >= 3; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
		out[o++] = b64url_chars[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url_chars[v >> 18];
		out[o++] = b64url_chars[(v >> 12) & 63];
		out[o++] = b64url_chars[(v >> 6) & 63];
	}
}

static int
b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

long
b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
	size_t i, o = 0, full = n / 4 * 4;
	uint32_t v = 0;
	int c, k;

	if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
		return -1;
	for (i = 0; i < full; i += 4) {
		for (v = 0, k = 0; k < 4; k++) {
			if ((c = b64url_val(in[i + (size_t)k])) < 0)
				return -1;
			v = v << 6 | (uint32_t)c;
		}
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	if (n % 4 != 0) {
		for (v = 0, k = 0; i + (size_t)k < n; k++) {
			if ((c = b64url_val(in[i + (size_t)k])) < 0)
				return -1;
			v = v << 6 | (uint32_t)c;
		}
		if (k == 2) {
			if ((v & 0xf) != 0)
				return -1;
			out[o++] = (uint8_t)(v >> 4);
		} else {
			if ((v & 0x3) != 0)
				return -1;
			out[o++] = (uint8_t)(v >> 10);
			out[o++] = (uint8_t)(v >> 2);
		}
	}
	return (long)o;
}

void
b64url_encode(const uint8_t *in, size_t n, char *out)
{
	b64url_put(in, n, out);
	out[b64url_len(n)] = '\0';
}
