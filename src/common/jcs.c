/*
 * RFC 8785 canonical JSON (see jcs.h for the contract).
 */
#include "common/jcs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct jbuf {
	char *p;
	size_t len, cap;
};

static int
jbuf_put(struct jbuf *b, const char *s, size_t n)
{
	size_t ncap;
	char *np;

	if (n > JCS_MAX_OUTPUT || JCS_MAX_OUTPUT - n < b->len)
		return -EFBIG;
	if (b->cap - b->len <= n) {
		ncap = b->cap ? b->cap : 256;
		while (ncap - b->len <= n)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -ENOMEM;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Decode one UTF-8 sequence at s[*i] (n bytes total).  Returns the code point,
 * or -1 on an invalid sequence (overlong, surrogate, > U+10FFFF, truncated). */
static long
utf8_next(const unsigned char *s, size_t n, size_t *i)
{
	unsigned char c = s[*i];
	unsigned long cp;
	size_t k, need;

	if (c < 0x80) {
		(*i)++;
		return c;
	} else if (c >= 0xC2 && c <= 0xDF) {
		need = 1;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		need = 2;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 3;
		cp = c & 0x07;
	} else {
		return -1;
	}
	if (n - *i - 1 < need)
		return -1;
	for (k = 1; k <= need; k++) {
		unsigned char cc = s[*i + k];

		if ((cc & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (cc & 0x3F);
	}
	if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*i += need + 1;
	return (long)cp;
}

/* Next UTF-16 code unit of a UTF-8 string; *pending holds a low surrogate. */
static long
utf16_next(const unsigned char *s, size_t n, size_t *i, long *pending)
{
	long cp;

	if (*pending >= 0) {
		cp = *pending;
		*pending = -1;
		return cp;
	}
	if (*i >= n)
		return -2; /* end */
	if ((cp = utf8_next(s, n, i)) < 0)
		return 0x110000 + s[(*i)++]; /* invalid: after every valid unit, by byte */
	if (cp >= 0x10000) {
		cp -= 0x10000;
		*pending = 0xDC00 + (cp & 0x3FF);
		return 0xD800 + (cp >> 10);
	}
	return cp;
}

int
jcs_compare_keys(const char *a, const char *b)
{
	const unsigned char *ua = (const unsigned char *)a, *ub = (const unsigned char *)b;
	size_t na, nb, ia = 0, ib = 0;
	long pa = -1, pb = -1, ca, cb;

	/*
	 * ASCII is one UTF-16 unit per byte, so a common prefix of ASCII bytes
	 * can be skipped and a first difference between two ASCII bytes (or an
	 * ASCII byte and the end) decides.  Keys are almost always ASCII.
	 */
	while (*ua == *ub && *ua != 0 && *ua < 0x80) {
		ua++;
		ub++;
	}
	if (*ua < 0x80 && *ub < 0x80)
		return *ua == *ub ? 0 : (*ua < *ub ? -1 : 1);
	na = strlen((const char *)ua);
	nb = strlen((const char *)ub);
	for (;;) {
		ca = utf16_next(ua, na, &ia, &pa);
		cb = utf16_next(ub, nb, &ib, &pb);
		if (ca == -2 || cb == -2)
			return (ca == -2 ? 0 : 1) - (cb == -2 ? 0 : 1);
		if (ca != cb)
			return ca < cb ? -1 : 1;
	}
}

/* Copied as it is into a JCS string (RFC 8785 §3.2.2.2): not a control, quote or backslash. */
static bool
is_literal(unsigned char c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

static int
put_string(struct jbuf *b, const char *s, size_t n)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, start;
	char esc[7];
	int r;

	if ((r = jbuf_put(b, "\"", 1)) != 0)
		return r;
	while (i < n) {
		start = i;
		/* A run of literal characters is copied at once; only multi-byte
		 * sequences need decoding (to refuse bad UTF-8). */
		while (i < n && is_literal(u[i])) {
			if (u[i] < 0x80)
				i++;
			else if (utf8_next(u, n, &i) < 0)
				return -EILSEQ;
		}
		if (i > start) {
			if ((r = jbuf_put(b, s + start, i - start)) != 0)
				return r;
			continue;
		}
		switch (u[i]) {
		case '"': r = jbuf_put(b, "\\\"", 2); break;
		case '\\': r = jbuf_put(b, "\\\\", 2); break;
		case '\b': r = jbuf_put(b, "\\b", 2); break;
		case '\t': r = jbuf_put(b, "\\t", 2); break;
		case '\n': r = jbuf_put(b, "\\n", 2); break;
		case '\f': r = jbuf_put(b, "\\f", 2); break;
		case '\r': r = jbuf_put(b, "\\r", 2); break;
		default:
			esc[0] = '\\';
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hexd[u[i] >> 4];
			esc[5] = hexd[u[i] & 15];
			r = jbuf_put(b, esc, 6);
			break;
		}
		if (r != 0)
			return r;
		i++;
	}
	return jbuf_put(b, "\"", 1);
}

struct member {
	const char *key;
	const json_t *value;
};

static int
cmp_members(const void *x, const void *y)
{
	return jcs_compare_keys(((const struct member *)x)->key, ((const struct member *)y)->key);
}

static int
put_value(struct jbuf *b, const json_t *v, int depth)
{
	struct member *mem = NULL;
	const char *k;
	json_t *m;
	char num[32];
	size_t i, n;
	json_int_t iv;
	int r = 0, w;

	if (v == NULL)
		return -EINVAL;
	if (depth > JCS_MAX_DEPTH)
		return -ELOOP;
	switch (json_typeof(v)) {
	case JSON_NULL: return jbuf_put(b, "null", 4);
	case JSON_TRUE: return jbuf_put(b, "true", 4);
	case JSON_FALSE: return jbuf_put(b, "false", 5);
	case JSON_REAL: return -EDOM;
	case JSON_INTEGER:
		iv = json_integer_value(v);
		if (iv > (json_int_t)9007199254740992LL || iv < -(json_int_t)9007199254740992LL)
			return -EDOM;
		w = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, iv);
		if (w < 0 || (size_t)w >= sizeof(num))
			return -EDOM;
		return jbuf_put(b, num, (size_t)w);
	case JSON_STRING:
		return put_string(b, json_string_value(v), json_string_length(v));
	case JSON_ARRAY:
		if ((r = jbuf_put(b, "[", 1)) != 0)
			return r;
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			if (i > 0 && (r = jbuf_put(b, ",", 1)) != 0)
				return r;
			if ((r = put_value(b, json_array_get(v, i), depth + 1)) != 0)
				return r;
		}
		return jbuf_put(b, "]", 1);
	case JSON_OBJECT:
		n = json_object_size(v);
		if (n > 0 && (mem = calloc(n, sizeof(*mem))) == NULL)
			return -ENOMEM;
		i = 0;
		json_object_foreach((json_t *)(uintptr_t)v, k, m) {
			if (i < n) {
				mem[i].key = k;
				mem[i++].value = m;
			}
		}
		n = i;
		if (n > 1)
			qsort(mem, n, sizeof(*mem), cmp_members);
		if ((r = jbuf_put(b, "{", 1)) != 0)
			goto out;
		for (i = 0; i < n; i++) {
			if (i > 0 && (r = jbuf_put(b, ",", 1)) != 0)
				goto out;
			if ((r = put_string(b, mem[i].key, strlen(mem[i].key))) != 0 ||
			    (r = jbuf_put(b, ":", 1)) != 0 ||
			    (r = put_value(b, mem[i].value, depth + 1)) != 0)
				goto out;
		}
		r = jbuf_put(b, "}", 1);
out:
		free(mem);
		return r;
	}
	return -EINVAL;
}

int
jcs_serialize(const json_t *v, char **out, size_t *len)
{
	struct jbuf b = { 0 };
	int r;

	if (out == NULL || len == NULL)
		return -EINVAL;
	if ((r = put_value(&b, v, 0)) != 0) {
		free(b.p);
		return r;
	}
	if (b.p == NULL && (r = jbuf_put(&b, "", 0)) != 0)
		return r;
	*out = b.p;
	*len = b.len;
	return 0;
}
