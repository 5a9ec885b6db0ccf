/* Unit tests: the attestation report codec, products and TCB layouts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nitride/snp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testsupport.h"

struct vector {
	const char *name;
	uint32_t version;
	snp_product cpuid_product;
};

static const struct vector valid[] = {
	{ "milan-v2-gosevguest", 2, SNP_PRODUCT_UNKNOWN },
	{ "milan-v2-virtee", 2, SNP_PRODUCT_UNKNOWN },
	{ "milan-v2-trustee", 2, SNP_PRODUCT_UNKNOWN },
	{ "milan-v3-vlek-trustee", 3, SNP_PRODUCT_MILAN },
	{ "milan-v3-oak-oc-release", 3, SNP_PRODUCT_MILAN },
	{ "genoa-v3-routex", 3, SNP_PRODUCT_GENOA },
	{ "genoa-v5-routex", 5, SNP_PRODUCT_GENOA },
	{ "turin-v5-oak", 5, SNP_PRODUCT_TURIN },
	{ "neg-genoa-signature-garbage", 5, SNP_PRODUCT_GENOA },
	{ "neg-milan-signature-byte42", 2, SNP_PRODUCT_UNKNOWN },
};

static uint8_t *
load_report(const char *name, size_t *len)
{
	char rel[256];

	(void)snprintf(rel, sizeof(rel), "snp/reports/%s.bin", name);
	return ts_read_vector(rel, len);
}

/* Parse a modified copy of `name` and return the status. */
static int
parse_modified(const char *name, size_t off, uint8_t value, snp_error *err)
{
	snp_report *r = NULL;
	uint8_t *buf;
	size_t len;
	int st;

	buf = load_report(name, &len);
	assert_true(off < len);
	buf[off] = value;
	st = snp_report_parse(buf, len, &r, err);
	snp_report_free(r);
	free(buf);
	return st;
}

static void
test_every_vector_round_trips(void **state)
{
	uint8_t out[SNP_REPORT_SIZE];
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		snp_error err = { 0 };
		snp_report *r = NULL;
		uint8_t *buf = load_report(valid[i].name, &len);

		assert_int_equal(len, SNP_REPORT_SIZE);
		if (snp_report_parse(buf, len, &r, &err) != SNP_OK)
			fail_msg("%s: %s", valid[i].name, err.detail);
		assert_int_equal(snp_report_version(r), valid[i].version);
		assert_int_equal(snp_report_cpuid_product(r), valid[i].cpuid_product);
		snp_report_serialize(r, out);
		assert_memory_equal(out, buf, SNP_REPORT_SIZE);
		assert_memory_equal(snp_report_bytes(r), buf, SNP_REPORT_SIZE);
		snp_report_free(r);
		free(buf);
	}
}

static void
test_accessors_read_the_right_offsets(void **state)
{
	snp_report *r = NULL;
	uint8_t *buf;
	size_t len;

	(void)state;
	buf = load_report("genoa-v5-routex", &len);
	assert_int_equal(snp_report_parse(buf, len, &r, NULL), SNP_OK);
	/* Values from vectors/snp/fields.json (an independent parser). */
	assert_int_equal(snp_report_policy(r), 0x30000);
	assert_int_equal(snp_report_platform_info(r), 0x25);
	assert_int_equal(snp_report_reported_tcb(r), 0x581b00000000000aull);
	assert_int_equal(snp_report_cpuid_fam_id(r), 0x19);
	assert_int_equal(snp_report_cpuid_mod_id(r), 0x11);
	assert_int_equal(snp_report_cpuid_step(r), 0x01);
	assert_int_equal(snp_report_chip_id(r)[0], 0xe0);
	assert_int_equal(snp_report_chip_id(r)[63], 0xd8);
	assert_int_equal(snp_report_measurement(r)[0], 0xbe);
	assert_int_equal(snp_report_report_data(r)[0], 0xbb);
	assert_int_equal(snp_report_signature_algo(r), 1);
	assert_int_equal(snp_report_signing_key(r), SNP_SIGNING_KEY_VCEK);
	assert_memory_equal(snp_report_signature_r(r), buf + 0x2A0, 72);
	assert_memory_equal(snp_report_signature_s(r), buf + 0x2E8, 72);
	snp_report_free(r);
	free(buf);

	buf = load_report("milan-v3-vlek-trustee", &len);
	assert_int_equal(snp_report_parse(buf, len, &r, NULL), SNP_OK);
	assert_int_equal(snp_report_signing_key(r), SNP_SIGNING_KEY_VLEK);
	assert_int_equal(snp_report_key_info(r), 4);
	snp_report_free(r);
	free(buf);
}

static void
test_size_limits(void **state)
{
	snp_error err = { 0 };
	snp_report *r = NULL;
	uint8_t *buf, *big;
	size_t len;

	(void)state;
	buf = load_report("milan-v2-gosevguest", &len);
	assert_int_equal(snp_report_parse(buf, len - 1, &r, &err), SNP_E_FORMAT);
	assert_null(r);
	assert_non_null(strstr(err.detail, "1183 bytes"));
	assert_int_equal(snp_report_parse(buf, 0, &r, &err), SNP_E_FORMAT);
	assert_int_equal(snp_report_parse(NULL, len, &r, &err), SNP_E_ARGUMENT);
	/* A larger buffer with the report first (an extended report) is accepted. */
	big = calloc(1, len + 4096);
	assert_non_null(big);
	memcpy(big, buf, len);
	memset(big + len, 0xA5, 4096);
	assert_int_equal(snp_report_parse(big, len + 4096, &r, &err), SNP_OK);
	snp_report_free(r);
	free(big);
	free(buf);
}

static void
test_versions(void **state)
{
	snp_error err = { 0 };

	(void)state;
	assert_int_equal(parse_modified("genoa-v3-routex", 0, 0, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "VERSION is 0"));
	assert_int_equal(parse_modified("genoa-v3-routex", 0, 1, &err), SNP_E_FORMAT);
	assert_int_equal(parse_modified("genoa-v5-routex", 0, 6, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "VERSION is 6"));
	assert_int_equal(parse_modified("genoa-v3-routex", 3, 1, &err), SNP_E_FORMAT);
	/* Version 4 uses version 3's layout. */
	assert_int_equal(parse_modified("genoa-v3-routex", 0, 4, &err), SNP_OK);
}

/* Each must-be-zero area, per version. */
static void
test_reserved_areas(void **state)
{
	static const struct {
		const char *report;
		size_t off;
	} cases[] = {
		{ "genoa-v5-routex", 0x04C },  /* after KEY_INFO */
		{ "genoa-v5-routex", 0x04F },
		{ "milan-v2-gosevguest", 0x188 }, /* v2: CPUID bytes are reserved */
		{ "milan-v2-gosevguest", 0x18A },
		{ "genoa-v3-routex", 0x18B },  /* v3: after CPUID_STEP */
		{ "genoa-v3-routex", 0x19F },
		{ "genoa-v3-routex", 0x1EB },
		{ "genoa-v3-routex", 0x1EF },
		{ "genoa-v3-routex", 0x1F8 },  /* v3: mitigation vectors are reserved */
		{ "milan-v2-gosevguest", 0x207 },
		{ "genoa-v5-routex", 0x208 },  /* v5: after CURRENT_MIT_VECTOR */
		{ "turin-v5-oak", 0x29F },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snp_error err = { 0 };

		if (parse_modified(cases[i].report, cases[i].off, 0x01, &err) != SNP_E_FORMAT)
			fail_msg("%s byte 0x%zx set: not rejected", cases[i].report, cases[i].off);
		assert_non_null(strstr(err.detail, "reserved"));
	}
	/* In version 5 the mitigation vectors are fields, not reserved. */
	assert_int_equal(parse_modified("genoa-v5-routex", 0x1F8, 0x01, NULL), SNP_OK);
	assert_int_equal(parse_modified("genoa-v5-routex", 0x207, 0x01, NULL), SNP_OK);
}

static void
test_signature_algo_and_key_info(void **state)
{
	snp_error err = { 0 };

	(void)state;
	assert_int_equal(parse_modified("genoa-v5-routex", 0x034, 0, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "SIGNATURE_ALGO is 0"));
	assert_int_equal(parse_modified("genoa-v5-routex", 0x034, 2, &err), SNP_E_FORMAT);
	/* KEY_INFO bit 5 is reserved. */
	assert_int_equal(parse_modified("genoa-v5-routex", 0x048, 0x20, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "KEY_INFO"));
	/* SIGNING_KEY 2..6 are reserved; 7 (none) parses. */
	assert_int_equal(parse_modified("genoa-v5-routex", 0x048, 2 << 2, &err), SNP_E_FORMAT);
	assert_int_equal(parse_modified("genoa-v5-routex", 0x048, 6 << 2, &err), SNP_E_FORMAT);
	assert_int_equal(parse_modified("genoa-v5-routex", 0x048, 7 << 2, &err), SNP_OK);
}

static void
test_products(void **state)
{
	(void)state;
	assert_int_equal(snp_product_from_cpuid(0x19, 0x01), SNP_PRODUCT_MILAN);
	assert_int_equal(snp_product_from_cpuid(0x19, 0x0F), SNP_PRODUCT_MILAN);
	assert_int_equal(snp_product_from_cpuid(0x19, 0x11), SNP_PRODUCT_GENOA);
	assert_int_equal(snp_product_from_cpuid(0x19, 0xA0), SNP_PRODUCT_GENOA);
	assert_int_equal(snp_product_from_cpuid(0x19, 0x20), SNP_PRODUCT_UNKNOWN);
	assert_int_equal(snp_product_from_cpuid(0x1A, 0x02), SNP_PRODUCT_TURIN);
	assert_int_equal(snp_product_from_cpuid(0x1A, 0x50), SNP_PRODUCT_UNKNOWN);
	assert_int_equal(snp_product_from_cpuid(0x17, 0x01), SNP_PRODUCT_UNKNOWN);
	assert_int_equal(snp_product_from_name("Milan-B0"), SNP_PRODUCT_MILAN);
	assert_int_equal(snp_product_from_name("genoa"), SNP_PRODUCT_GENOA);
	assert_int_equal(snp_product_from_name("TURIN"), SNP_PRODUCT_TURIN);
	assert_int_equal(snp_product_from_name("Milanx"), SNP_PRODUCT_UNKNOWN);
	assert_int_equal(snp_product_from_name(""), SNP_PRODUCT_UNKNOWN);
	assert_int_equal(snp_product_from_name(NULL), SNP_PRODUCT_UNKNOWN);
	assert_string_equal(snp_product_name(SNP_PRODUCT_TURIN), "turin");
	assert_string_equal(snp_product_kds_name(SNP_PRODUCT_GENOA), "Genoa");
	assert_null(snp_product_kds_name(SNP_PRODUCT_UNKNOWN));
	assert_string_equal(snp_product_name((snp_product)99), "unknown");
}

static void
test_tcb_layouts(void **state)
{
	snp_tcb t;

	(void)state;
	/* Milan 0300000000000873 (bytes): bl 3, tee 0, snp 8, ucode 115. */
	snp_tcb_decode(0x7308000000000003ull, SNP_PRODUCT_MILAN, &t);
	assert_false(t.has_fmc);
	assert_int_equal(t.bootloader, 3);
	assert_int_equal(t.tee, 0);
	assert_int_equal(t.snp, 8);
	assert_int_equal(t.microcode, 115);
	assert_int_equal(snp_tcb_encode(&t, SNP_PRODUCT_MILAN), 0x7308000000000003ull);
	/* Turin 0x5a00000005020301: fmc 1, bl 3, tee 2, snp 5, ucode 90. */
	snp_tcb_decode(0x5a00000005020301ull, SNP_PRODUCT_TURIN, &t);
	assert_true(t.has_fmc);
	assert_int_equal(t.fmc, 1);
	assert_int_equal(t.bootloader, 3);
	assert_int_equal(t.tee, 2);
	assert_int_equal(t.snp, 5);
	assert_int_equal(t.microcode, 90);
	assert_int_equal(snp_tcb_encode(&t, SNP_PRODUCT_TURIN), 0x5a00000005020301ull);
}

static void
test_status_classes(void **state)
{
	(void)state;
	assert_string_equal(snp_status_class(SNP_OK), "ok");
	assert_string_equal(snp_status_class(SNP_E_FORMAT), "format");
	assert_string_equal(snp_status_class(SNP_E_SIGNATURE), "signature");
	assert_string_equal(snp_status_class(SNP_E_CHAIN), "chain");
	assert_string_equal(snp_status_class(SNP_E_EXPIRED), "expired");
	assert_string_equal(snp_status_class(SNP_E_REVOKED), "revoked");
	assert_string_equal(snp_status_class(SNP_E_TCB), "tcb");
	assert_string_equal(snp_status_class(SNP_E_CHIP_ID), "chip_id");
	assert_string_equal(snp_status_class(SNP_E_SIGNING_KEY), "signing_key");
	assert_string_equal(snp_status_class(SNP_E_PRODUCT), "product");
	assert_string_equal(snp_status_class(12345), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_vector_round_trips),
		cmocka_unit_test(test_accessors_read_the_right_offsets),
		cmocka_unit_test(test_size_limits),
		cmocka_unit_test(test_versions),
		cmocka_unit_test(test_reserved_areas),
		cmocka_unit_test(test_signature_algo_and_key_info),
		cmocka_unit_test(test_products),
		cmocka_unit_test(test_tcb_layouts),
		cmocka_unit_test(test_status_classes),
	};

	ts_require_vectors();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
