/*
 * libFuzzer target: attestd's JSON inputs — the appraisal policy parser
 * (policy_parse) and the RFC 8785 canonicaliser (jcs_serialize).
 *
 * Properties checked (abort() on violation):
 *  - policy_parse never crashes; on failure it writes a NUL-terminated message
 *    that names the source, and leaves *out alone; on success the digest is
 *    "sha256:" + 64 hex digits and at least one measurement is listed;
 *  - JCS is a fixed point: canonicalising the parse of a canonical text gives
 *    the same bytes, and the canonical text parses to a value equal to the input;
 *  - jcs_compare_keys on the input split at its first NUL (two strings): a
 *    key equals itself, the order is antisymmetric, and for valid UTF-8
 *    without 4-byte sequences (where UTF-16 order is code point order, which
 *    is UTF-8 byte order) it agrees with strcmp.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "attest/policy.h"
#include "common/jcs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
sign(int x)
{
	return (x > 0) - (x < 0);
}

/* Valid UTF-8 (jansson's check) with no 4-byte sequence: no surrogate pairs in UTF-16. */
static bool
bmp_utf8(const char *s)
{
	json_t *j = json_string(s);
	bool ok = j != NULL;

	json_decref(j);
	for (; ok && *s; s++)
		ok = ((unsigned char)*s & 0xF8) != 0xF0;
	return ok;
}

static void
check_key_order(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 2);
	const char *a, *b;
	size_t alen;

	if (buf == NULL)
		return;
	memcpy(buf, data, size);
	buf[size] = buf[size + 1] = '\0';
	a = buf;
	alen = strlen(a);
	b = alen < size ? buf + alen + 1 : buf + size + 1; /* the rest, or "" */
	if (jcs_compare_keys(a, a) != 0 || jcs_compare_keys(b, b) != 0 ||
	    sign(jcs_compare_keys(a, b)) != -sign(jcs_compare_keys(b, a)))
		abort();
	if (bmp_utf8(a) && bmp_utf8(b) && sign(jcs_compare_keys(a, b)) != sign(strcmp(a, b)))
		abort();
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	policy *p = NULL, *sentinel;
	char err[POLICY_ERR_MAX];
	json_t *v, *v2;
	char *c1 = NULL, *c2 = NULL;
	size_t l1, l2;

	sentinel = (policy *)(uintptr_t)0x1;
	p = sentinel;
	memset(err, 0x55, sizeof(err));
	if (policy_parse((const char *)data, size, "fuzz", &p, err, sizeof(err)) == 0) {
		if (p == sentinel || strncmp(p->digest, "sha256:", 7) != 0 || strlen(p->digest) != 71 ||
		    p->n_measurements == 0)
			abort();
		policy_free(p);
	} else {
		if (p != sentinel || memchr(err, '\0', sizeof(err)) == NULL || strncmp(err, "fuzz: ", 6) != 0)
			abort();
	}
	check_key_order(data, size);
	v = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (v == NULL)
		return 0;
	if (jcs_serialize(v, &c1, &l1) == 0) {
		if (strlen(c1) != l1)
			abort(); /* jansson strings never hold NUL here: keys cannot, values are escaped */
		v2 = json_loadb(c1, l1, JSON_DECODE_ANY, NULL);
		if (v2 == NULL || !json_equal(v, v2) || jcs_serialize(v2, &c2, &l2) != 0 || l1 != l2 ||
		    memcmp(c1, c2, l1) != 0)
			abort();
		json_decref(v2);
	}
	free(c1);
	free(c2);
	json_decref(v);
	return 0;
}
