/*
 * KDS URL builders.  The CHIP_IDs and TCBs are those of real reports
 * (vectors/snp/fields.json: milan-v2-gosevguest, genoa-v3-routex, turin-v5-oak);
 * the expected URLs are written out in full.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testsupport.h"

#include <nitride/snp.h>

#include "common/hex.h"

#include <string.h>

#define MILAN_CHIP                                                                         \
	"3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b7" \
	"6a1936776b564ea464cdce40c05f63c9b610c5068b006b5d"
#define GENOA_CHIP                                                                         \
	"9dc99962c063029e430b6f7b734075ec542f4f3ec639e657e14585d3fe559b38532bc42d037d6183" \
	"17694ad6634d2507964e276c8eedeac4978c7006bf89f8e1"
#define TURIN_CHIP                                                                         \
	"3b42092f69c656d30000000000000000000000000000000000000000000000000000000000000000" \
	"000000000000000000000000000000000000000000000000"

#define MILAN_VCEK_URL                                                                     \
	"https://kdsintf.amd.com/vcek/v1/Milan/" MILAN_CHIP                                 \
	"?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68"
#define GENOA_VCEK_URL                                                                     \
	"https://kdsintf.amd.com/vcek/v1/Genoa/" GENOA_CHIP                                 \
	"?blSPL=9&teeSPL=0&snpSPL=23&ucodeSPL=72"
#define TURIN_VCEK_URL                                                                     \
	"https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3"                            \
	"?fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71"

static void
chip(const char *hex, uint8_t out[SNP_CHIP_ID_LEN])
{
	assert_int_equal(strlen(hex), 2 * SNP_CHIP_ID_LEN);
	assert_int_equal(hex_decode(hex, out, SNP_CHIP_ID_LEN), 0);
}

static snp_tcb
legacy_tcb(uint8_t bl, uint8_t tee, uint8_t snp, uint8_t ucode)
{
	snp_tcb t;

	memset(&t, 0, sizeof(t));
	t.bootloader = bl;
	t.tee = tee;
	t.snp = snp;
	t.microcode = ucode;
	return t;
}

static void
test_vcek_milan(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX];

	(void)state;
	chip(MILAN_CHIP, id);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, MILAN_VCEK_URL);
}

static void
test_vcek_genoa(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(9, 0, 23, 72);
	char url[SNP_URL_MAX];

	(void)state;
	chip(GENOA_CHIP, id);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_GENOA, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, GENOA_VCEK_URL);
}

static void
test_vcek_turin(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb;
	char url[SNP_URL_MAX];

	(void)state;
	chip(TURIN_CHIP, id);
	memset(&tcb, 0, sizeof(tcb));
	tcb.has_fmc = true;
	tcb.fmc = 0;
	tcb.bootloader = 1;
	tcb.tee = 0;
	tcb.snp = 2;
	tcb.microcode = 71;
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, TURIN_VCEK_URL);

	/* Same from the report's REPORTED_TCB bytes 00 01 00 02 00 00 00 47. */
	snp_tcb_decode(0x4700000002000100ull, SNP_PRODUCT_TURIN, &tcb);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, TURIN_VCEK_URL);

	/* Distinct values land in their own parameters (no zero padding). */
	tcb.fmc = 3;
	tcb.bootloader = 10;
	tcb.tee = 255;
	tcb.snp = 7;
	tcb.microcode = 100;
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Turin/3b42092f69c656d3"
				 "?fmcSPL=3&blSPL=10&teeSPL=255&snpSPL=7&ucodeSPL=100");
}

static void
test_vcek_chip_id_errors(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX];

	(void)state;
	/* Masked (all-zero) CHIP_ID: no VCEK to name. */
	memset(id, 0, sizeof(id));
	memset(url, 'X', sizeof(url));
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);
	assert_string_equal(url, "");
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_GENOA, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);

	/* Only the last byte set: not masked on Milan, but junk after Turin's 8-byte hwID. */
	id[SNP_CHIP_ID_LEN - 1] = 1;
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);
	assert_string_equal(url, "");

	/* A real Turin id with byte 8 set. */
	chip(TURIN_CHIP, id);
	id[8] = 0x80;
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);
	/* A full 64-byte Milan id is not a Turin id. */
	chip(MILAN_CHIP, id);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_TURIN, id, &tcb, url, sizeof(url)),
			 SNP_E_CHIP_ID);
}

/* Exactly one byte short fails and leaves "" (no truncated URL); the exact size works;
 * nothing is written past outlen. */
static void
test_small_buffer(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX + 8];
	size_t need = strlen(MILAN_VCEK_URL) + 1, i;

	(void)state;
	chip(MILAN_CHIP, id);
	memset(url, 'X', sizeof(url));
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, need - 1),
			 SNP_E_ARGUMENT);
	assert_int_equal(url[0], '\0');
	for (i = need - 1; i < sizeof(url); i++)
		assert_int_equal(url[i], 'X');

	memset(url, 'X', sizeof(url));
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, need), SNP_OK);
	assert_string_equal(url, MILAN_VCEK_URL);
	for (i = need; i < sizeof(url); i++)
		assert_int_equal(url[i], 'X');

	/* The other builders too. */
	need = strlen("https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain") + 1;
	memset(url, 'X', sizeof(url));
	assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_GENOA, false, url, need - 1), SNP_E_ARGUMENT);
	assert_int_equal(url[0], '\0');
	assert_int_equal(url[need - 1], 'X');
	assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_GENOA, false, url, need), SNP_OK);
	assert_string_equal(url, "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain");

	need = strlen("https://kdsintf.amd.com/vlek/v1/Milan/crl") + 1;
	assert_int_equal(snp_kds_crl_url(SNP_PRODUCT_MILAN, true, url, need - 1), SNP_E_ARGUMENT);
	assert_string_equal(url, "");
	assert_int_equal(snp_kds_crl_url(SNP_PRODUCT_MILAN, true, url, need), SNP_OK);

	need = strlen("https://kdsintf.amd.com/vlek/v1/Milan/cert?blSPL=2&teeSPL=0&snpSPL=5&"
		      "ucodeSPL=68") + 1;
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_MILAN, &tcb, url, need - 1), SNP_E_ARGUMENT);
	assert_string_equal(url, "");
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_MILAN, &tcb, url, need), SNP_OK);

	/* outlen 1: only room for the NUL. */
	url[0] = 'X';
	assert_int_equal(snp_kds_crl_url(SNP_PRODUCT_MILAN, false, url, 1), SNP_E_ARGUMENT);
	assert_int_equal(url[0], '\0');
}

static void
test_unknown_product(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX];
	const snp_product bad[] = { SNP_PRODUCT_UNKNOWN, (snp_product)SNP_PRODUCT_COUNT,
				    (snp_product)-1, (snp_product)77 };
	size_t i;

	(void)state;
	chip(MILAN_CHIP, id);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(url, 'X', sizeof(url));
		assert_int_equal(snp_kds_vcek_url(bad[i], id, &tcb, url, sizeof(url)), SNP_E_PRODUCT);
		assert_string_equal(url, "");
		assert_int_equal(snp_kds_vlek_url(bad[i], &tcb, url, sizeof(url)), SNP_E_PRODUCT);
		assert_int_equal(snp_kds_chain_url(bad[i], false, url, sizeof(url)), SNP_E_PRODUCT);
		assert_int_equal(snp_kds_chain_url(bad[i], true, url, sizeof(url)), SNP_E_PRODUCT);
		assert_int_equal(snp_kds_crl_url(bad[i], false, url, sizeof(url)), SNP_E_PRODUCT);
		assert_int_equal(snp_kds_crl_url(bad[i], true, url, sizeof(url)), SNP_E_PRODUCT);
		assert_string_equal(url, "");
	}
}

static void
test_null_args(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX];

	(void)state;
	chip(MILAN_CHIP, id);
	url[0] = 'X';
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, NULL, &tcb, url, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(url[0], '\0');
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, NULL, url, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, NULL, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_MILAN, id, &tcb, url, 0), SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_MILAN, NULL, url, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_MILAN, &tcb, NULL, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_MILAN, false, NULL, sizeof(url)),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_chain_url(SNP_PRODUCT_MILAN, false, url, 0), SNP_E_ARGUMENT);
	assert_int_equal(snp_kds_crl_url(SNP_PRODUCT_MILAN, false, NULL, sizeof(url)),
			 SNP_E_ARGUMENT);
	/* NULL arguments are reported before an unknown product. */
	assert_int_equal(snp_kds_crl_url(SNP_PRODUCT_UNKNOWN, false, NULL, 0), SNP_E_ARGUMENT);
}

static void
test_vlek(void **state)
{
	snp_tcb tcb = legacy_tcb(2, 0, 5, 68);
	char url[SNP_URL_MAX];

	(void)state;
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_MILAN, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, "https://kdsintf.amd.com/vlek/v1/Milan/cert"
				 "?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68");
	tcb = legacy_tcb(9, 0, 23, 72);
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_GENOA, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, "https://kdsintf.amd.com/vlek/v1/Genoa/cert"
				 "?blSPL=9&teeSPL=0&snpSPL=23&ucodeSPL=72");
	snp_tcb_decode(0x4700000002000100ull, SNP_PRODUCT_TURIN, &tcb);
	assert_int_equal(snp_kds_vlek_url(SNP_PRODUCT_TURIN, &tcb, url, sizeof(url)), SNP_OK);
	assert_string_equal(url, "https://kdsintf.amd.com/vlek/v1/Turin/cert"
				 "?fmcSPL=0&blSPL=1&teeSPL=0&snpSPL=2&ucodeSPL=71");
}

static void
test_chain_and_crl(void **state)
{
	static const struct {
		snp_product p;
		bool vlek;
		const char *chain, *crl;
	} cases[] = {
		{ SNP_PRODUCT_MILAN, false, "https://kdsintf.amd.com/vcek/v1/Milan/cert_chain",
		  "https://kdsintf.amd.com/vcek/v1/Milan/crl" },
		{ SNP_PRODUCT_MILAN, true, "https://kdsintf.amd.com/vlek/v1/Milan/cert_chain",
		  "https://kdsintf.amd.com/vlek/v1/Milan/crl" },
		{ SNP_PRODUCT_GENOA, false, "https://kdsintf.amd.com/vcek/v1/Genoa/cert_chain",
		  "https://kdsintf.amd.com/vcek/v1/Genoa/crl" },
		{ SNP_PRODUCT_GENOA, true, "https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain",
		  "https://kdsintf.amd.com/vlek/v1/Genoa/crl" },
		{ SNP_PRODUCT_TURIN, false, "https://kdsintf.amd.com/vcek/v1/Turin/cert_chain",
		  "https://kdsintf.amd.com/vcek/v1/Turin/crl" },
		{ SNP_PRODUCT_TURIN, true, "https://kdsintf.amd.com/vlek/v1/Turin/cert_chain",
		  "https://kdsintf.amd.com/vlek/v1/Turin/crl" },
	};
	char url[SNP_URL_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(snp_kds_chain_url(cases[i].p, cases[i].vlek, url, sizeof(url)),
				 SNP_OK);
		assert_string_equal(url, cases[i].chain);
		assert_int_equal(snp_kds_crl_url(cases[i].p, cases[i].vlek, url, sizeof(url)),
				 SNP_OK);
		assert_string_equal(url, cases[i].crl);
	}
}

/* The longest URL (Milan/Genoa VCEK with three-digit SPLs) fits SNP_URL_MAX. */
static void
test_url_max(void **state)
{
	uint8_t id[SNP_CHIP_ID_LEN];
	snp_tcb tcb = legacy_tcb(255, 255, 255, 255);
	char url[SNP_URL_MAX];

	(void)state;
	memset(id, 0xff, sizeof(id));
	assert_int_equal(snp_kds_vcek_url(SNP_PRODUCT_GENOA, id, &tcb, url, sizeof(url)), SNP_OK);
	assert_true(strlen(url) < SNP_URL_MAX);
	assert_non_null(strstr(url, "?blSPL=255&teeSPL=255&snpSPL=255&ucodeSPL=255"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcek_milan),
		cmocka_unit_test(test_vcek_genoa),
		cmocka_unit_test(test_vcek_turin),
		cmocka_unit_test(test_vcek_chip_id_errors),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_unknown_product),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_vlek),
		cmocka_unit_test(test_chain_and_crl),
		cmocka_unit_test(test_url_max),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
