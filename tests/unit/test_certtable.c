/*
 * Extended-report certificate table: the synthetic go-sev-guest Milan table
 * (ARK, ASK, VCEK), round trips, and every parse rule of
 * docs/snp-certtable-kds.md as a negative case.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testsupport.h"

#include <nitride/snp.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TABLE_VEC "snp/synthetic/gosevguest-milan.certtable.bin"
#define REPORT_TABLE_VEC "snp/synthetic/gosevguest-milan.report+certtable.bin"
#define VCEK_VEC "snp/certs/milan-v2-gosevguest.der"

static const uint8_t guid_vcek[16] = { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
				       0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd };
static const uint8_t guid_vlek[16] = { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
				       0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 };
static const uint8_t guid_ask[16] = { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
				      0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 };
static const uint8_t guid_ark[16] = { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
				      0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae };
static const uint8_t guid_crl[16] = { 0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d,
				      0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67, 0xea };
/* Not an AMD GUID (go-sev-guest's ExtraPlatformInfo). */
static const uint8_t guid_other[16] = { 0xec, 0xae, 0x0c, 0x0f, 0x95, 0x02, 0x43, 0xb1,
					0xaf, 0xa2, 0x0a, 0xe2, 0xd5, 0x65, 0xb6, 0xb6 };

/* ---- helpers ---------------------------------------------------------- */

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

/* Write entry i of a hand-made table. */
static void
set_entry(uint8_t *buf, size_t i, const uint8_t guid[16], uint32_t offset, uint32_t length)
{
	if (guid != NULL)
		memcpy(buf + i * 24, guid, 16);
	else
		memset(buf + i * 24, 0, 16);
	put32(buf + i * 24 + 16, offset);
	put32(buf + i * 24 + 20, length);
}

/* Parse a heap copy of exactly len bytes (so that ASan sees any over-read) and
 * return the status; *out gets the table on success (else NULL). */
static int
parse_exact(const uint8_t *buf, size_t len, snp_certtable **out, snp_error *err)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	int r;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, buf, len);
	*out = NULL;
	r = snp_certtable_parse(copy, len, out, err);
	free(copy);
	return r;
}

/* Expect parse to fail with FORMAT, err filled with a detail containing `needle`. */
static void
expect_format(const uint8_t *buf, size_t len, const char *needle)
{
	snp_certtable *t = NULL;
	snp_error err;
	int r;

	memset(&err, 0, sizeof(err));
	r = parse_exact(buf, len, &t, &err);
	if (r != SNP_E_FORMAT)
		fail_msg("expected format error (%s), got %d", needle, r);
	assert_null(t);
	assert_int_equal(err.status, SNP_E_FORMAT);
	if (strstr(err.detail, needle) == NULL)
		fail_msg("detail \"%s\" lacks \"%s\"", err.detail, needle);
}

static uint8_t *
pem_file_to_der(const char *rel, size_t *len)
{
	size_t pem_len;
	uint8_t *pem = ts_read_vector(rel, &pem_len);
	BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
	X509 *x = NULL;
	uint8_t *der = NULL, *p;
	int n;

	assert_non_null(bio);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	assert_non_null(x);
	n = i2d_X509(x, NULL);
	assert_true(n > 0);
	der = malloc((size_t)n);
	assert_non_null(der);
	p = der;
	assert_int_equal(i2d_X509(x, &p), n);
	*len = (size_t)n;
	X509_free(x);
	BIO_free(bio);
	free(pem);
	return der;
}

static void
assert_entries_equal(const snp_certtable *a, const snp_certtable *b)
{
	size_t i, n = snp_certtable_count(a);

	assert_int_equal(snp_certtable_count(b), n);
	for (i = 0; i < n; i++) {
		snp_cert_kind ka, kb;
		const uint8_t *ga, *gb, *ba, *bb;
		size_t la, lb;

		assert_int_equal(snp_certtable_entry(a, i, &ka, &ga, &ba, &la), SNP_OK);
		assert_int_equal(snp_certtable_entry(b, i, &kb, &gb, &bb, &lb), SNP_OK);
		assert_int_equal(ka, kb);
		assert_memory_equal(ga, gb, 16);
		assert_int_equal(la, lb);
		assert_memory_equal(ba, bb, la);
	}
}

/* ---- the vector ------------------------------------------------------- */

static void
test_parse_vector(void **state)
{
	static const snp_cert_kind kinds[3] = { SNP_CERT_KIND_ARK, SNP_CERT_KIND_ASK,
						SNP_CERT_KIND_VCEK };
	const uint8_t *guids[3] = { guid_ark, guid_ask, guid_vcek };
	size_t len, vcek_len, ark_len, ask_len, i;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);
	uint8_t *vcek = ts_read_vector(VCEK_VEC, &vcek_len);
	uint8_t *ark = pem_file_to_der("amd/ark_milan.pem", &ark_len);
	uint8_t *ask = pem_file_to_der("amd/ask_milan.pem", &ask_len);
	snp_certtable *t = NULL;
	snp_error err;
	const uint8_t *blob, *guid;
	size_t blen;
	snp_cert_kind kind;

	(void)state;
	memset(&err, 0x5a, sizeof(err));
	assert_int_equal(snp_certtable_parse(buf, len, &t, &err), SNP_OK);
	assert_non_null(t);
	assert_int_equal(err.status, 0x5a5a5a5a); /* untouched on success */
	assert_int_equal(snp_certtable_count(t), 3);

	for (i = 0; i < 3; i++) {
		const uint8_t *p;
		X509 *x;

		assert_int_equal(snp_certtable_entry(t, i, &kind, &guid, &blob, &blen), SNP_OK);
		assert_int_equal(kind, kinds[i]);
		assert_memory_equal(guid, guids[i], 16);
		/* Each blob is exactly one DER certificate. */
		p = blob;
		x = d2i_X509(NULL, &p, (long)blen);
		assert_non_null(x);
		assert_ptr_equal(p, blob + blen);
		X509_free(x);
	}

	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_VCEK, &blob, &blen), SNP_OK);
	assert_int_equal(blen, vcek_len);
	assert_memory_equal(blob, vcek, vcek_len);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_ARK, &blob, &blen), SNP_OK);
	assert_int_equal(blen, ark_len);
	assert_memory_equal(blob, ark, ark_len);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_ASK, &blob, &blen), SNP_OK);
	assert_int_equal(blen, ask_len);
	assert_memory_equal(blob, ask, ask_len);

	/* The blob is a copy: it survives the input. */
	memset(buf, 0, len);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_VCEK, &blob, &blen), SNP_OK);
	assert_memory_equal(blob, vcek, vcek_len);

	snp_certtable_free(t);
	free(buf);
	free(vcek);
	free(ark);
	free(ask);
}

static void
test_find_not_found_and_args(void **state)
{
	size_t len, blen = 12345;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);
	snp_certtable *t = NULL;
	const uint8_t *blob = (const uint8_t *)"x";
	snp_cert_kind kind = SNP_CERT_KIND_CRL;

	(void)state;
	assert_int_equal(snp_certtable_parse(buf, len, &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_VLEK, &blob, &blen), SNP_E_NOT_FOUND);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_CRL, &blob, &blen), SNP_E_NOT_FOUND);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_OTHER, &blob, &blen), SNP_E_NOT_FOUND);
	/* Outputs untouched on failure. */
	assert_string_equal((const char *)blob, "x");
	assert_int_equal(blen, 12345);
	assert_int_equal(snp_certtable_find(NULL, SNP_CERT_KIND_VCEK, &blob, &blen), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_find(t, (snp_cert_kind)99, &blob, &blen), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_entry(t, 3, &kind, NULL, NULL, NULL), SNP_E_NOT_FOUND);
	assert_int_equal(kind, SNP_CERT_KIND_CRL);
	assert_int_equal(snp_certtable_entry(NULL, 0, &kind, NULL, NULL, NULL), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_count(NULL), 0);
	assert_int_equal(snp_certtable_parse(buf, len, NULL, NULL), SNP_E_ARGUMENT);
	snp_certtable_free(t);
	snp_certtable_free(NULL);
	free(buf);
}

static void
test_report_plus_table(void **state)
{
	size_t len, tlen;
	uint8_t *both = ts_read_vector(REPORT_TABLE_VEC, &len);
	uint8_t *table = ts_read_vector(TABLE_VEC, &tlen);
	snp_certtable *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(len, SNP_REPORT_SIZE + tlen);
	assert_int_equal(snp_certtable_parse(both + SNP_REPORT_SIZE, len - SNP_REPORT_SIZE, &a, NULL),
			 SNP_OK);
	assert_int_equal(snp_certtable_parse(table, tlen, &b, NULL), SNP_OK);
	assert_entries_equal(a, b);
	snp_certtable_free(a);
	snp_certtable_free(b);
	free(both);
	free(table);
}

/* The vector has no padding: its last blob ends at its last byte, so encoding the
 * parsed table must give back exactly the same bytes. */
static void
test_roundtrip_vector(void **state)
{
	size_t len, need = 0, small;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);
	uint8_t *out = NULL;
	snp_certtable *t = NULL, *t2 = NULL;

	(void)state;
	assert_int_equal(snp_certtable_parse(buf, len, &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, &need), SNP_OK);
	assert_int_equal(need, len);
	out = malloc(need);
	assert_non_null(out);
	small = need - 1;
	assert_int_equal(snp_certtable_serialize(t, out, &small), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_serialize(t, out, &need), SNP_OK);
	assert_int_equal(need, len);
	assert_memory_equal(out, buf, len);
	assert_int_equal(snp_certtable_parse(out, need, &t2, NULL), SNP_OK);
	assert_entries_equal(t, t2);
	assert_int_equal(snp_certtable_serialize(NULL, NULL, &need), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_serialize(t, NULL, NULL), SNP_E_ARGUMENT);
	snp_certtable_free(t);
	snp_certtable_free(t2);
	free(out);
	free(buf);
}

/* Page padding after the last blob (as the kernel returns) is accepted and dropped
 * by serialize, which then reproduces the table up to the last blob's end. */
static void
test_trailing_padding(void **state)
{
	size_t len, plen = 8192, need = 0;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);
	uint8_t *padded = calloc(1, plen);
	uint8_t *out = NULL;
	snp_certtable *t = NULL;

	(void)state;
	assert_non_null(padded);
	memcpy(padded, buf, len);
	assert_int_equal(snp_certtable_parse(padded, plen, &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_count(t), 3);
	assert_int_equal(snp_certtable_serialize(t, NULL, &need), SNP_OK);
	assert_int_equal(need, len);
	out = malloc(need);
	assert_non_null(out);
	assert_int_equal(snp_certtable_serialize(t, out, &need), SNP_OK);
	assert_memory_equal(out, buf, len);
	snp_certtable_free(t);
	free(out);
	free(padded);
	free(buf);
}

static void
test_build_then_parse(void **state)
{
	static const uint8_t ark[] = "ark-bytes", ask[] = "ask", vcek[] = "vcek-blob-contents";
	static const uint8_t crl[] = { 0x30, 0x00 }, vlek[] = { 1 };
	snp_certtable *t = NULL, *t2 = NULL;
	const uint8_t *blob, *guid;
	snp_cert_kind kind;
	size_t need = 0, blen;
	uint8_t *out = NULL;

	(void)state;
	assert_int_equal(snp_certtable_new(&t), SNP_OK);
	assert_int_equal(snp_certtable_count(t), 0);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, vcek, sizeof(vcek)), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_ASK, ask, sizeof(ask)), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_ARK, ark, sizeof(ark)), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_CRL, crl, sizeof(crl)), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VLEK, vlek, sizeof(vlek)), SNP_OK);
	/* Refused: a second VCEK, OTHER (no GUID), empty or NULL blobs, a bad kind. */
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, vcek, sizeof(vcek)), SNP_E_FORMAT);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_OTHER, vcek, sizeof(vcek)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, vcek, 0), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, NULL, 4), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_add(t, (snp_cert_kind)42, vcek, 4), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_add(NULL, SNP_CERT_KIND_VCEK, vcek, 4), SNP_E_ARGUMENT);
	assert_int_equal(snp_certtable_count(t), 5);

	assert_int_equal(snp_certtable_serialize(t, NULL, &need), SNP_OK);
	assert_int_equal(need, 6 * 24 + sizeof(vcek) + sizeof(ask) + sizeof(ark) + sizeof(crl) +
				       sizeof(vlek));
	out = malloc(need);
	assert_non_null(out);
	assert_int_equal(snp_certtable_serialize(t, out, &need), SNP_OK);
	/* Layout: first offset (n+1)*24, then the preceding lengths; a zero terminator. */
	assert_memory_equal(out, guid_vcek, 16);
	assert_int_equal(out[16] | out[17] << 8, 6 * 24);
	assert_int_equal(out[20], sizeof(vcek));
	assert_memory_equal(out + 24, guid_ask, 16);
	assert_int_equal(out[24 + 16] | out[24 + 17] << 8, 6 * 24 + sizeof(vcek));
	assert_memory_equal(out + 48, guid_ark, 16);
	assert_memory_equal(out + 72, guid_crl, 16);
	assert_memory_equal(out + 96, guid_vlek, 16);
	{
		static const uint8_t zero[24];

		assert_memory_equal(out + 5 * 24, zero, 24);
	}
	assert_memory_equal(out + 6 * 24, vcek, sizeof(vcek));

	assert_int_equal(snp_certtable_parse(out, need, &t2, NULL), SNP_OK);
	assert_entries_equal(t, t2);
	assert_int_equal(snp_certtable_entry(t2, 3, &kind, &guid, &blob, &blen), SNP_OK);
	assert_int_equal(kind, SNP_CERT_KIND_CRL);
	assert_memory_equal(guid, guid_crl, 16);
	assert_int_equal(blen, sizeof(crl));
	assert_int_equal(snp_certtable_find(t2, SNP_CERT_KIND_VLEK, &blob, &blen), SNP_OK);
	assert_int_equal(blen, 1);
	assert_int_equal(blob[0], 1);

	snp_certtable_free(t);
	snp_certtable_free(t2);
	free(out);
}

static void
test_empty_table(void **state)
{
	static const uint8_t zero[24];
	snp_certtable *t = NULL;
	uint8_t out[24];
	size_t need = 0;
	const uint8_t *blob;
	size_t blen;

	(void)state;
	assert_int_equal(parse_exact(zero, sizeof(zero), &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_count(t), 0);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_VCEK, &blob, &blen), SNP_E_NOT_FOUND);
	snp_certtable_free(t);

	assert_int_equal(snp_certtable_new(&t), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, &need), SNP_OK);
	assert_int_equal(need, 24);
	memset(out, 0xff, sizeof(out));
	assert_int_equal(snp_certtable_serialize(t, out, &need), SNP_OK);
	assert_memory_equal(out, zero, 24);
	snp_certtable_free(t);
	assert_int_equal(snp_certtable_new(NULL), SNP_E_ARGUMENT);
}

/* Unknown GUIDs are kept as OTHER with their GUID, and survive a round trip. */
static void
test_other_guid_kept(void **state)
{
	uint8_t buf[48 + 4];
	snp_certtable *t = NULL;
	const uint8_t *guid, *blob;
	snp_cert_kind kind;
	size_t blen, need = 0;
	uint8_t out[sizeof(buf)];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_other, 48, 4);
	memcpy(buf + 48, "\x01\x00\x00\x00", 4);
	assert_int_equal(parse_exact(buf, sizeof(buf), &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_entry(t, 0, &kind, &guid, &blob, &blen), SNP_OK);
	assert_int_equal(kind, SNP_CERT_KIND_OTHER);
	assert_memory_equal(guid, guid_other, 16);
	assert_int_equal(blen, 4);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_OTHER, &blob, &blen), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, &need), SNP_OK);
	assert_int_equal(need, sizeof(buf));
	assert_int_equal(snp_certtable_serialize(t, out, &need), SNP_OK);
	assert_memory_equal(out, buf, sizeof(buf));
	snp_certtable_free(t);
}

/* Two entries may point at the same bytes (documented as allowed). */
static void
test_overlap_allowed(void **state)
{
	uint8_t buf[72 + 8];
	snp_certtable *t = NULL;
	const uint8_t *a, *b;
	size_t la, lb;

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 72, 8);
	set_entry(buf, 1, guid_ask, 76, 4);
	memcpy(buf + 72, "ABCDEFGH", 8);
	assert_int_equal(parse_exact(buf, sizeof(buf), &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_VCEK, &a, &la), SNP_OK);
	assert_int_equal(snp_certtable_find(t, SNP_CERT_KIND_ASK, &b, &lb), SNP_OK);
	assert_int_equal(la, 8);
	assert_int_equal(lb, 4);
	assert_memory_equal(b, "EFGH", 4);
	snp_certtable_free(t);
}

/* ---- negatives -------------------------------------------------------- */

static void
test_truncated_entry_area(void **state)
{
	size_t len;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);

	(void)state;
	expect_format(buf, 0, "entry 0");
	expect_format(buf, 23, "entry 0");
	expect_format(buf, 50, "entry 2");
	expect_format(buf, 95, "entry 3");
	free(buf);
}

static void
test_missing_terminator(void **state)
{
	uint8_t buf[48 + 8];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 48, 8);
	set_entry(buf, 1, guid_ask, 48, 8);
	memcpy(buf + 48, "12345678", 8);
	/* The third entry would start at 48 with only 8 bytes left. */
	expect_format(buf, sizeof(buf), "terminator");
}

static void
test_offset_inside_header(void **state)
{
	uint8_t buf[72 + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 72, 4);
	set_entry(buf, 1, guid_ask, 0, 4); /* the first entry itself */
	expect_format(buf, sizeof(buf), "entry 1 (ASK): offset 0 is inside the entry area (ends at 72)");
	set_entry(buf, 1, guid_ask, 48, 4); /* the terminator */
	expect_format(buf, sizeof(buf), "offset 48 is inside");
	set_entry(buf, 1, guid_ask, 71, 4); /* last terminator byte */
	expect_format(buf, sizeof(buf), "offset 71 is inside");
	set_entry(buf, 1, guid_ask, 72, 4); /* just after: fine */
	{
		snp_certtable *t = NULL;

		assert_int_equal(parse_exact(buf, sizeof(buf), &t, NULL), SNP_OK);
		assert_int_equal(snp_certtable_count(t), 2);
		snp_certtable_free(t);
	}
}

static void
test_blob_past_end(void **state)
{
	uint8_t buf[48 + 4];
	snp_certtable *t = NULL;

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 48, 5);
	expect_format(buf, sizeof(buf), "offset 48 + length 5 exceeds the table size 52");
	set_entry(buf, 0, guid_vcek, 49, 4);
	expect_format(buf, sizeof(buf), "exceeds the table size");
	set_entry(buf, 0, guid_vcek, 53, 1); /* offset itself past the end */
	expect_format(buf, sizeof(buf), "exceeds the table size");
	set_entry(buf, 0, guid_vcek, 48, 4); /* exact fit */
	assert_int_equal(parse_exact(buf, sizeof(buf), &t, NULL), SNP_OK);
	snp_certtable_free(t);
}

static void
test_blob_overflow_32(void **state)
{
	uint8_t buf[48 + 32];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 48, 0xFFFFFFFFu);
	expect_format(buf, sizeof(buf), "length 4294967295 exceeds");
	/* offset + length wraps to 16 in 32 bits */
	set_entry(buf, 0, guid_vcek, 0xFFFFFFF0u, 0x20u);
	expect_format(buf, sizeof(buf), "offset 4294967280 + length 32 exceeds");
	set_entry(buf, 0, guid_vcek, 0xFFFFFFFFu, 0xFFFFFFFFu);
	expect_format(buf, sizeof(buf), "exceeds");
}

/* 32 entries (+ terminator) are accepted; 33 are not. */
static void
test_entry_limit(void **state)
{
	size_t n = SNP_CERTTABLE_MAX_ENTRIES + 1, i, len = (n + 1) * 24 + 1;
	uint8_t *buf = calloc(1, len);
	snp_certtable *t = NULL;

	(void)state;
	assert_non_null(buf);
	for (i = 0; i < n; i++)
		set_entry(buf, i, guid_other, (uint32_t)(len - 1), 1);
	buf[len - 1] = 0xAA;
	expect_format(buf, len, "entry 32: more than 32 entries");

	/* Same shape with 32 entries: the 33rd slot becomes the terminator. */
	memset(buf, 0, len);
	for (i = 0; i < SNP_CERTTABLE_MAX_ENTRIES; i++)
		set_entry(buf, i, guid_other, (uint32_t)(len - 1), 1);
	buf[len - 1] = 0xAA;
	assert_int_equal(parse_exact(buf, len, &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_count(t), SNP_CERTTABLE_MAX_ENTRIES);
	snp_certtable_free(t);
	free(buf);
}

static void
test_oversized(void **state)
{
	size_t len = SNP_CERTTABLE_MAX_SIZE + 1, vlen;
	uint8_t *buf = calloc(1, len);
	uint8_t *vec = ts_read_vector(TABLE_VEC, &vlen);
	snp_certtable *t = NULL;

	(void)state;
	assert_non_null(buf);
	memcpy(buf, vec, vlen);
	expect_format(buf, len, "size 65537 exceeds the limit 65536");
	/* At the limit, the same padded table is fine. */
	assert_int_equal(parse_exact(buf, len - 1, &t, NULL), SNP_OK);
	assert_int_equal(snp_certtable_count(t), 3);
	snp_certtable_free(t);
	free(buf);
	free(vec);
}

/* Overlapping blobs may not add up to more than a table may hold (so that the
 * parsed table always encodes to something parse accepts). */
static void
test_overlap_total_limit(void **state)
{
	size_t len = SNP_CERTTABLE_MAX_SIZE, i, blob_len = 30000;
	uint8_t *buf = calloc(1, len);

	(void)state;
	assert_non_null(buf);
	set_entry(buf, 0, guid_vcek, 96, (uint32_t)blob_len);
	set_entry(buf, 1, guid_ask, 96, (uint32_t)blob_len);
	set_entry(buf, 2, guid_ark, 96, (uint32_t)blob_len);
	for (i = 96; i < 96 + blob_len; i++)
		buf[i] = 0x42;
	expect_format(buf, len, "entry 2 (ARK): blobs total 60000 + 30000 bytes exceed the limit");
	free(buf);
}

static void
test_duplicate_vcek(void **state)
{
	uint8_t buf[72 + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 72, 4);
	set_entry(buf, 1, guid_vcek, 72, 4);
	expect_format(buf, sizeof(buf), "entry 1: second VCEK entry (first is entry 0)");
	/* Two unknown GUIDs, even equal ones, are kept. */
	{
		snp_certtable *t = NULL;

		set_entry(buf, 0, guid_other, 72, 4);
		set_entry(buf, 1, guid_other, 72, 4);
		assert_int_equal(parse_exact(buf, sizeof(buf), &t, NULL), SNP_OK);
		assert_int_equal(snp_certtable_count(t), 2);
		snp_certtable_free(t);
	}
}

static void
test_zero_guid_nonzero_entry(void **state)
{
	uint8_t buf[72 + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 72, 4);
	set_entry(buf, 1, NULL, 72, 4);
	expect_format(buf, sizeof(buf), "entry 1: zero GUID with offset 72 length 4");
	set_entry(buf, 1, NULL, 0, 1);
	expect_format(buf, sizeof(buf), "zero GUID");
	set_entry(buf, 1, NULL, 1, 0);
	expect_format(buf, sizeof(buf), "zero GUID");
}

static void
test_zero_length(void **state)
{
	uint8_t buf[48 + 4];

	(void)state;
	memset(buf, 0, sizeof(buf));
	set_entry(buf, 0, guid_vcek, 48, 0);
	expect_format(buf, sizeof(buf), "entry 0 (VCEK): length 0");
}

/* Every prefix of the vector: never a crash, only FORMAT, and since the last blob
 * ends at the last byte, only the whole table parses. */
static void
test_truncation_loop(void **state)
{
	size_t len, l;
	uint8_t *buf = ts_read_vector(TABLE_VEC, &len);
	snp_certtable *t = NULL;
	snp_error err;
	int r;

	(void)state;
	for (l = 0; l <= len; l++) {
		r = parse_exact(buf, l, &t, &err);
		if (l < len) {
			if (r != SNP_E_FORMAT)
				fail_msg("prefix %zu: status %d, expected format", l, r);
			assert_null(t);
		} else {
			assert_int_equal(r, SNP_OK);
			assert_int_equal(snp_certtable_count(t), 3);
		}
		snp_certtable_free(t);
		t = NULL;
	}
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_vector),
		cmocka_unit_test(test_find_not_found_and_args),
		cmocka_unit_test(test_report_plus_table),
		cmocka_unit_test(test_roundtrip_vector),
		cmocka_unit_test(test_trailing_padding),
		cmocka_unit_test(test_build_then_parse),
		cmocka_unit_test(test_empty_table),
		cmocka_unit_test(test_other_guid_kept),
		cmocka_unit_test(test_overlap_allowed),
		cmocka_unit_test(test_truncated_entry_area),
		cmocka_unit_test(test_missing_terminator),
		cmocka_unit_test(test_offset_inside_header),
		cmocka_unit_test(test_blob_past_end),
		cmocka_unit_test(test_blob_overflow_32),
		cmocka_unit_test(test_entry_limit),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_overlap_total_limit),
		cmocka_unit_test(test_duplicate_vcek),
		cmocka_unit_test(test_zero_guid_nonzero_entry),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_truncation_loop),
	};

	ts_require_vectors();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
