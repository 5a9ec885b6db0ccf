/*
 * libFuzzer target: snp_certtable_parse.
 *
 * Properties checked (abort() on violation):
 *  - parse never crashes and fails only with SNP_E_FORMAT (the input is the only
 *    thing that varies), leaving *out alone;
 *  - on success the table encodes (size query, then into an exact buffer) to at
 *    most SNP_CERTTABLE_MAX_SIZE bytes, the encoding parses again, and the
 *    re-parsed entries equal the originals (kind, GUID, blob bytes);
 *  - find() agrees with the first entry of each kind;
 *  - each blob is handed to snp_cert_parse (any result is fine, a crash is not).
 */
#include <nitride/snp.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
compare_tables(const snp_certtable *a, const snp_certtable *b)
{
	size_t i, n = snp_certtable_count(a);

	if (snp_certtable_count(b) != n)
		abort();
	for (i = 0; i < n; i++) {
		snp_cert_kind ka, kb;
		const uint8_t *ga, *gb, *ba, *bb;
		size_t la, lb;

		if (snp_certtable_entry(a, i, &ka, &ga, &ba, &la) != SNP_OK ||
		    snp_certtable_entry(b, i, &kb, &gb, &bb, &lb) != SNP_OK)
			abort();
		if (ka != kb || memcmp(ga, gb, 16) != 0 || la != lb || la == 0 ||
		    memcmp(ba, bb, la) != 0)
			abort();
	}
	if (snp_certtable_entry(a, n, NULL, NULL, NULL, NULL) != SNP_E_NOT_FOUND)
		abort();
}

static void
check_find(const snp_certtable *t)
{
	snp_cert_kind k, kind;
	const uint8_t *blob, *eblob;
	size_t len, elen, i, n = snp_certtable_count(t);
	int rc;

	for (k = SNP_CERT_KIND_OTHER; k <= SNP_CERT_KIND_CRL; k++) {
		rc = snp_certtable_find(t, k, &blob, &len);
		for (i = 0; i < n; i++) {
			if (snp_certtable_entry(t, i, &kind, NULL, &eblob, &elen) != SNP_OK)
				abort();
			if (kind == k)
				break;
		}
		if (i == n) {
			if (rc != SNP_E_NOT_FOUND)
				abort();
		} else if (rc != SNP_OK || blob != eblob || len != elen) {
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snp_certtable *t = NULL, *t2 = NULL;
	snp_cert *c = NULL;
	snp_error err;
	uint8_t *enc = NULL;
	const uint8_t *blob;
	size_t need = 0, len, i;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = snp_certtable_parse(data, size, &t, &err);
	if (rc != SNP_OK) {
		if (rc != SNP_E_FORMAT || t != NULL || err.status != rc || err.detail[0] == '\0')
			abort();
		return 0;
	}
	if (t == NULL || snp_certtable_count(t) > SNP_CERTTABLE_MAX_ENTRIES)
		abort();

	if (snp_certtable_serialize(t, NULL, &need) != SNP_OK || need > SNP_CERTTABLE_MAX_SIZE ||
	    need < 24 * (snp_certtable_count(t) + 1))
		abort();
	if ((enc = malloc(need)) == NULL)
		abort();
	len = need;
	if (snp_certtable_serialize(t, enc, &len) != SNP_OK || len != need)
		abort();
	if (snp_certtable_parse(enc, len, &t2, NULL) != SNP_OK)
		abort();
	compare_tables(t, t2);
	check_find(t);

	for (i = 0; i < snp_certtable_count(t); i++) {
		if (snp_certtable_entry(t, i, NULL, NULL, &blob, &len) != SNP_OK)
			abort();
		if (snp_cert_parse(blob, len, &c, NULL) == SNP_OK)
			snp_cert_free(c);
		c = NULL;
	}

	free(enc);
	snp_certtable_free(t2);
	snp_certtable_free(t);
	return 0;
}
