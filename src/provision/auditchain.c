/*
 * Audit chain verification (contract in auditchain.h).  Only libcrypto and
 * jansson: the nitride CLI links this file too.
 */
#include "provision/auditchain.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

void
audit_line_hash(const char *line, size_t len, char out[AUDIT_HASH_HEX])
{
	static const char hx[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned n = 0, i;

	if (EVP_Digest(line, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		memset(md, 0xff, sizeof(md));
	for (i = 0; i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = '\0';
}

int
audit_chain_verify(const char *buf, size_t len, size_t *records, char head[AUDIT_HASH_HEX],
		   char *why, size_t whylen)
{
	char prev[AUDIT_HASH_HEX];
	const char *p = buf, *end = buf + len, *nl, *pv;
	json_t *rec;
	json_int_t seq;
	size_t n = 0;

	memset(prev, '0', 64);
	prev[64] = '\0';
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			(void)snprintf(why, whylen, "line %zu: no newline at the end (truncated write?)",
				       n + 1);
			return -1;
		}
		n++;
		rec = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(rec)) {
			json_decref(rec);
			(void)snprintf(why, whylen, "line %zu: not a JSON object", n);
			return -1;
		}
		seq = json_integer_value(json_object_get(rec, "seq"));
		pv = json_string_value(json_object_get(rec, "prev"));
		if (seq != (json_int_t)n) {
			(void)snprintf(why, whylen,
				       "line %zu: seq %lld, expected %zu (record removed, inserted or "
				       "reordered)",
				       n, (long long)seq, n);
			json_decref(rec);
			return -1;
		}
		if (pv == NULL || strcmp(pv, prev) != 0) {
			(void)snprintf(why, whylen,
				       "line %zu: prev does not match the hash of line %zu (a record "
				       "was edited, removed or reordered)",
				       n, n - 1);
			json_decref(rec);
			return -1;
		}
		json_decref(rec);
		audit_line_hash(p, (size_t)(nl - p), prev);
		p = nl + 1;
	}
	*records = n;
	memcpy(head, prev, AUDIT_HASH_HEX);
	return 0;
}
