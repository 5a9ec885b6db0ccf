/*
 * Unit tests: launch measurements (src/snp/measure.c, ovmf.c, vmsa.c,
 * sev_hashes.c) against the reference's vectors in measure/: the OVMF parser
 * on the two fixtures and on images broken in every way it must detect, the
 * VMSA dumps byte for byte, the per-page update traces, and digests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include <nitride/snp_measure.h>

#include "common/hex.h"
#include "common/rbuf.h"
#include "testsupport.h"

#define SUFFIX "measure/fixtures/ovmf_AmdSev_suffix.bin"
#define X64 "measure/fixtures/ovmf_OvmfX64_suffix.bin"
#define SIG_EPYC_V4 0x800F12u

static const uint8_t guid_metadata[16] = { 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
					   0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc };

static void
assert_hex(const uint8_t *got, size_t n, const char *want)
{
	char buf[2 * 64 + 1];

	assert_true(n <= 64);
	hex_encode(got, n, buf);
	assert_string_equal(buf, want);
}

static void
unhex(const char *s, uint8_t *out, size_t n)
{
	assert_int_equal(hex_decode(s, out, n), 0);
}

/* ------------------------------------------------------------------ */
/* OVMF parser: the fixtures                                            */

static void
test_parse_amdsev_fixture(void **state)
{
	static const snp_ovmf_section want[] = {
		{ 0x800000, 0x9000, SNP_SECTION_SEC_MEM },  { 0x80A000, 0x3000, SNP_SECTION_SEC_MEM },
		{ 0x80D000, 0x1000, SNP_SECTION_SECRETS },  { 0x80E000, 0x1000, SNP_SECTION_CPUID },
		{ 0x80F000, 0x1000, SNP_SECTION_SVSM_CAA }, { 0x810000, 0x1000, SNP_SECTION_KERNEL_HASHES },
		{ 0x811000, 0xF000, SNP_SECTION_SEC_MEM },
	};
	snp_ovmf_section s;
	snp_ovmf *o = NULL;
	snp_error err = { 0 };
	uint32_t eip = 0, gpa = 0;
	size_t len, i;
	uint8_t *fw = ts_read_vector(SUFFIX, &len);

	(void)state;
	assert_int_equal(snp_ovmf_parse(fw, len, &o, &err), SNP_OK);
	assert_int_equal(snp_ovmf_size(o), 4096);
	assert_int_equal(snp_ovmf_gpa(o), 0xFFFFF000u);
	assert_ptr_not_equal(snp_ovmf_data(o), fw); /* copied */
	assert_int_equal(snp_ovmf_table_count(o), 5);
	assert_int_equal(snp_ovmf_reset_eip(o, &eip, &err), SNP_OK);
	assert_int_equal(eip, 0x0080B004u);
	assert_int_equal(snp_ovmf_hashes_table_gpa(o, &gpa, &err), SNP_OK);
	assert_int_equal(gpa, 0x810C00u);
	assert_true(snp_ovmf_sev_hashes_supported(o));
	assert_int_equal(snp_ovmf_section_count(o), 7);
	for (i = 0; i < 7; i++) {
		assert_int_equal(snp_ovmf_get_section(o, i, &s), SNP_OK);
		assert_int_equal(s.gpa, want[i].gpa);
		assert_int_equal(s.size, want[i].size);
		assert_int_equal(s.type, want[i].type);
	}
	assert_int_equal(snp_ovmf_get_section(o, 7, &s), SNP_E_ARGUMENT);
	assert_string_equal(snp_section_type_name(SNP_SECTION_KERNEL_HASHES), "SNP_KERNEL_HASHES");
	assert_null(snp_section_type_name(5));
	snp_ovmf_free(o);
	snp_ovmf_free(NULL);
	free(fw);
}

static void
test_parse_ovmfx64_fixture(void **state)
{
	snp_ovmf_section s;
	snp_ovmf *o = NULL;
	snp_error err = { 0 };
	size_t len, i;
	uint8_t *fw = ts_read_vector(X64, &len);

	(void)state;
	assert_int_equal(snp_ovmf_parse_static(fw, len, &o, &err), SNP_OK);
	assert_ptr_equal(snp_ovmf_data(o), fw); /* borrowed */
	assert_int_equal(snp_ovmf_section_count(o), 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(snp_ovmf_get_section(o, i, &s), SNP_OK);
		assert_int_not_equal(s.type, SNP_SECTION_KERNEL_HASHES);
	}
	assert_int_equal(s.gpa, 0x810000u);
	assert_int_equal(s.size, 0x10000u);
	assert_int_equal(s.type, SNP_SECTION_SEC_MEM);
	snp_ovmf_free(o);
	free(fw);
}

/* ------------------------------------------------------------------ */
/* OVMF parser: malformed images                                        */

/* Offsets inside the AmdSev fixture, found through the parser itself. */
struct layout {
	size_t footer;   /* the footer entry header (u16 size, GUID) */
	size_t meta_ent; /* data of the metadata table entry (u32 offset from end) */
	size_t asev;     /* the ASEV header */
	size_t desc;     /* the first section descriptor */
};

static uint8_t *
load_suffix(size_t *len, struct layout *l)
{
	uint8_t *fw = ts_read_vector(SUFFIX, len);
	const uint8_t *p = NULL;
	snp_ovmf *o = NULL;
	size_t n = 0;

	assert_int_equal(snp_ovmf_parse_static(fw, *len, &o, NULL), SNP_OK);
	assert_int_equal(snp_ovmf_table_entry(o, guid_metadata, &p, &n), SNP_OK);
	assert_int_equal(n, 4);
	l->footer = *len - 32 - 18;
	l->meta_ent = (size_t)(p - fw);
	l->asev = *len - ((size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16);
	l->desc = l->asev + 16;
	assert_memory_equal(fw + l->asev, "ASEV", 4);
	snp_ovmf_free(o);
	return fw;
}

static void
put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* Parse must fail with SNP_E_FORMAT, leave *out untouched, and name `word`. */
static void
expect_format(const uint8_t *fw, size_t len, const char *word)
{
	snp_ovmf *o = (snp_ovmf *)(uintptr_t)0x1;
	snp_error err = { 0 };

	assert_int_equal(snp_ovmf_parse(fw, len, &o, &err), SNP_E_FORMAT);
	assert_int_equal(err.status, SNP_E_FORMAT);
	assert_ptr_equal(o, (snp_ovmf *)(uintptr_t)0x1);
	if (strstr(err.detail, word) == NULL)
		fail_msg("detail \"%s\" lacks \"%s\"", err.detail, word);
}

static void
test_truncated(void **state)
{
	struct layout l;
	size_t len;
	uint8_t *fw = load_suffix(&len, &l);

	(void)state;
	expect_format(fw, 0, "too short");
	expect_format(fw + len - 49, 49, "too short");
	/* The last KiB only: the footer is intact, the metadata offset points before the start. */
	expect_format(fw + len - 1024, 1024, "outside");
	/* Just the table and what follows: the table fits, the metadata does not. */
	expect_format(fw + len - 0x100, 0x100, "outside");
	free(fw);
}

static void
test_bad_footer_guid(void **state)
{
	snp_measure_params p;
	snp_ovmf *o = NULL;
	snp_error err = { 0 };
	uint8_t ld[SNP_LD_LEN];
	struct layout l;
	size_t len, ld_len;
	uint32_t eip;
	uint8_t *fw = load_suffix(&len, &l);

	(void)state;
	fw[l.footer + 2] ^= 0xFF;
	/* As the reference: no footer GUID, no table, no error… */
	assert_int_equal(snp_ovmf_parse_static(fw, len, &o, &err), SNP_OK);
	assert_int_equal(snp_ovmf_table_count(o), 0);
	assert_int_equal(snp_ovmf_section_count(o), 0);
	assert_int_equal(snp_ovmf_reset_eip(o, &eip, &err), SNP_E_NOT_FOUND);
	/* …but nothing to start the vCPUs from, so no SNP measurement. */
	snp_measure_params_init(&p);
	p.ovmf = o;
	p.vcpu_sig = SIG_EPYC_V4;
	memset(&err, 0, sizeof(err));
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "SEV_ES_RESET_BLOCK_GUID"));
	/* SEV mode needs neither. */
	p.mode = SNP_MODE_SEV;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_int_equal(ld_len, SNP_SEV_LD_LEN);
	snp_ovmf_free(o);
	free(fw);
}

static void
test_lying_lengths(void **state)
{
	struct layout l;
	size_t len, last_entry;
	uint8_t *fw = load_suffix(&len, &l);
	uint8_t *bad = malloc(len);

	(void)state;
	assert_non_null(bad);
	/* Table size bigger than everything before the footer. */
	memcpy(bad, fw, len);
	put_u16(bad + l.footer, 0xFFFF);
	expect_format(bad, len, "before the start");
	/* Table size smaller than the footer itself. */
	memcpy(bad, fw, len);
	put_u16(bad + l.footer, 17);
	expect_format(bad, len, "smaller than");
	/* The entry just below the footer: size below its header, then beyond the table. */
	last_entry = l.footer - 18;
	memcpy(bad, fw, len);
	put_u16(bad + last_entry, 3);
	expect_format(bad, len, "smaller than its");
	memcpy(bad, fw, len);
	put_u16(bad + last_entry, 0x1000);
	expect_format(bad, len, "exceeds");
	/* Metadata offset past the start of the image, and below its own header. */
	memcpy(bad, fw, len);
	put_u32le(bad + l.meta_ent, (uint32_t)len + 1);
	expect_format(bad, len, "outside");
	memcpy(bad, fw, len);
	put_u32le(bad + l.meta_ent, 8);
	expect_format(bad, len, "outside");
	/* ASEV size past the end of the image, or too small for its sections. */
	memcpy(bad, fw, len);
	put_u32le(bad + l.asev + 4, 0x10000);
	expect_format(bad, len, "size");
	memcpy(bad, fw, len);
	put_u32le(bad + l.asev + 4, 16 + 12 * 6);
	expect_format(bad, len, "do not fit");
	/* A section count that would run far past the image. */
	memcpy(bad, fw, len);
	put_u32le(bad + l.asev + 12, 0xFFFFFFFFu);
	expect_format(bad, len, "do not fit");
	/* Signature and version. */
	memcpy(bad, fw, len);
	bad[l.asev] = 'B';
	expect_format(bad, len, "ASEV");
	memcpy(bad, fw, len);
	put_u32le(bad + l.asev + 8, 2);
	expect_format(bad, len, "version 2");
	/* The untouched copy still parses (the mutations, not the copying, failed). */
	memcpy(bad, fw, len);
	{
		snp_ovmf *o = NULL;

		assert_int_equal(snp_ovmf_parse(bad, len, &o, NULL), SNP_OK);
		snp_ovmf_free(o);
	}
	free(bad);
	free(fw);
}

/* Set descriptor i to gpa/size/type. */
static void
set_desc(uint8_t *fw, const struct layout *l, unsigned i, uint32_t gpa, uint32_t size,
	 uint32_t type)
{
	put_u32le(fw + l->desc + 12 * i, gpa);
	put_u32le(fw + l->desc + 12 * i + 4, size);
	put_u32le(fw + l->desc + 12 * i + 8, type);
}

static void
test_bad_sections(void **state)
{
	struct layout l;
	size_t len;
	uint8_t *fw = load_suffix(&len, &l);
	uint8_t *bad = malloc(len);

	(void)state;
	assert_non_null(bad);
	/* Section 1 (0x80A000/0x3000) moved into section 0 (0x800000/0x9000). */
	memcpy(bad, fw, len);
	set_desc(bad, &l, 1, 0x808000, 0x3000, SNP_SECTION_SEC_MEM);
	expect_format(bad, len, "overlap");
	/* CPUID at the SECRETS page. */
	memcpy(bad, fw, len);
	set_desc(bad, &l, 3, 0x80D000, 0x1000, SNP_SECTION_CPUID);
	expect_format(bad, len, "overlap");
	/* A section running past 4 GiB. */
	memcpy(bad, fw, len);
	set_desc(bad, &l, 6, 0xFFFFE000u, 0x3000, SNP_SECTION_SEC_MEM);
	expect_format(bad, len, "past 4 GiB");
	/* A section over the firmware image itself (0xFFFFF000). */
	memcpy(bad, fw, len);
	set_desc(bad, &l, 6, 0xFFFFF000u, 0x1000, SNP_SECTION_SEC_MEM);
	expect_format(bad, len, "overlaps the firmware");
	/* Not page-aligned, a size that is not whole pages, an unknown type. */
	memcpy(bad, fw, len);
	set_desc(bad, &l, 6, 0x811800, 0xF000, SNP_SECTION_SEC_MEM);
	expect_format(bad, len, "page-aligned");
	memcpy(bad, fw, len);
	set_desc(bad, &l, 6, 0x811000, 0xF001, SNP_SECTION_SEC_MEM);
	expect_format(bad, len, "multiple of 4096");
	memcpy(bad, fw, len);
	set_desc(bad, &l, 6, 0x811000, 0xF000, 7);
	expect_format(bad, len, "unknown type 0x7");
	free(bad);
	free(fw);
}

static void
test_oversized_and_null(void **state)
{
	snp_ovmf *o = NULL;
	snp_error err = { 0 };
	static const uint8_t one = 0;

	(void)state;
	assert_int_equal(snp_ovmf_parse(&one, (size_t)SNP_OVMF_MAX_SIZE + 1, &o, &err),
			 SNP_E_FORMAT);
	assert_null(o);
	assert_int_equal(snp_ovmf_parse(NULL, 10, &o, &err), SNP_E_ARGUMENT);
	assert_int_equal(snp_ovmf_parse(&one, 1, NULL, &err), SNP_E_ARGUMENT);
}

/* ------------------------------------------------------------------ */
/* VMSAs                                                                */

static void
expect_vmsa(const char *file, snp_vmm_type vmm, uint32_t eip, uint64_t features, uint64_t sig)
{
	char rel[256];
	uint8_t page[SNP_VMSA_SIZE];
	size_t len, i;
	uint8_t *want;

	(void)snprintf(rel, sizeof(rel), "measure/vmsa/%s", file);
	want = ts_read_vector(rel, &len);
	assert_int_equal(len, SNP_VMSA_SIZE);
	assert_int_equal(snp_vmsa_build(vmm, eip, features, sig, page), SNP_OK);
	for (i = 0; i < SNP_VMSA_SIZE; i++)
		if (page[i] != want[i])
			fail_msg("%s: byte 0x%zx is %02x, expected %02x", file, i, page[i], want[i]);
	free(want);
}

static void
test_vmsa_dumps(void **state)
{
	uint8_t page[SNP_VMSA_SIZE];

	(void)state;
	expect_vmsa("qemu_epycv4_f1_bsp.bin", SNP_VMM_QEMU, SNP_VMSA_BSP_EIP, 0x1, SIG_EPYC_V4);
	expect_vmsa("qemu_epycv4_f1_ap.bin", SNP_VMM_QEMU, 0x0080B004, 0x1, SIG_EPYC_V4);
	expect_vmsa("qemu_epycv4_f21_bsp.bin", SNP_VMM_QEMU, SNP_VMSA_BSP_EIP, 0x21, SIG_EPYC_V4);
	expect_vmsa("qemu_epycv4_f21_ap.bin", SNP_VMM_QEMU, 0x0080B004, 0x21, SIG_EPYC_V4);
	/* EC2 and GCE ignore the signature (rdx is 0x600). */
	expect_vmsa("ec2_f1_bsp.bin", SNP_VMM_EC2, SNP_VMSA_BSP_EIP, 0x1, 0);
	expect_vmsa("ec2_f1_ap.bin", SNP_VMM_EC2, 0x0080B004, 0x1, 0x12345);
	expect_vmsa("gce_f1_bsp.bin", SNP_VMM_GCE, SNP_VMSA_BSP_EIP, 0x1, 0);
	expect_vmsa("gce_f1_ap.bin", SNP_VMM_GCE, 0x0080B004, 0x1, 0);
	assert_int_equal(snp_vmsa_build((snp_vmm_type)9, 0, 0, 0, page), SNP_E_ARGUMENT);
}

static void
test_measure_vmsa_matches_dump(void **state)
{
	snp_measure_params p;
	snp_ovmf *o = NULL;
	uint8_t page[SNP_VMSA_SIZE];
	size_t len, wlen;
	uint8_t *fw = ts_read_vector(SUFFIX, &len);
	uint8_t *ap = ts_read_vector("measure/vmsa/qemu_epycv4_f21_ap.bin", &wlen);

	(void)state;
	assert_int_equal(snp_ovmf_parse_static(fw, len, &o, NULL), SNP_OK);
	snp_measure_params_init(&p);
	p.ovmf = o;
	p.vcpus = 2;
	p.vcpu_sig = SIG_EPYC_V4;
	p.guest_features = 0x21;
	assert_int_equal(snp_measure_vmsa(&p, 1, page, NULL), SNP_OK);
	assert_memory_equal(page, ap, SNP_VMSA_SIZE);
	assert_int_equal(snp_measure_vmsa(&p, 2, page, NULL), SNP_E_ARGUMENT);
	/* SEV-ES VMSAs carry no features. */
	p.mode = SNP_MODE_SEV_ES;
	assert_int_equal(snp_measure_vmsa(&p, 1, page, NULL), SNP_OK);
	assert_int_equal(page[0x3B0], 0);
	p.mode = SNP_MODE_SEV;
	assert_int_equal(snp_measure_vmsa(&p, 0, page, NULL), SNP_E_ARGUMENT);
	snp_ovmf_free(o);
	free(ap);
	free(fw);
}

static void
test_vcpu_sigs(void **state)
{
	uint32_t sig = 0;
	size_t i;

	(void)state;
	assert_int_equal(snp_vcpu_sig(14, 1, 2), 0x0E12);
	assert_int_equal(snp_vcpu_sig(23, 1, 2), 0x800F12);
	assert_int_equal(snp_vcpu_sig(25, 17, 0), 0xA10F10);
	assert_int_equal(snp_vcpu_type_sig("EPYC-v4", &sig), SNP_OK);
	assert_int_equal(sig, 0x800F12);
	assert_int_equal(snp_vcpu_type_sig("EPYC-Rome-v3", &sig), SNP_OK);
	assert_int_equal(sig, 0x830F10);
	assert_int_equal(snp_vcpu_type_sig("EPYC-Milan-v2", &sig), SNP_OK);
	assert_int_equal(sig, 0xA00F11);
	assert_int_equal(snp_vcpu_type_sig("EPYC-Genoa", &sig), SNP_OK);
	assert_int_equal(sig, 0xA10F10);
	assert_int_equal(snp_vcpu_type_sig("EPYC-Turin", &sig), SNP_OK);
	assert_int_equal(sig, 0xB00F00);
	assert_int_equal(snp_vcpu_type_sig("epyc-v4", &sig), SNP_E_NOT_FOUND);
	for (i = 0; snp_vcpu_type_name(i) != NULL; i++)
		assert_int_equal(snp_vcpu_type_sig(snp_vcpu_type_name(i), &sig), SNP_OK);
	assert_int_equal(i, 16);
}

/* ------------------------------------------------------------------ */
/* SEV hashes table                                                     */

static bool
snp_all_zero_outside(const uint8_t *page, size_t off, size_t n)
{
	size_t i;

	for (i = 0; i < SNP_PAGE_SIZE; i++)
		if ((i < off || i >= off + n) && page[i] != 0)
			return false;
	return true;
}

static void
test_hashes_table(void **state)
{
	uint8_t k[SNP_SHA256_LEN], i[SNP_SHA256_LEN], c[SNP_SHA256_LEN];
	uint8_t table[SNP_SEV_HASHES_TABLE_SIZE], page[SNP_PAGE_SIZE], h[SNP_LD_LEN];
	unsigned int hlen = 0;
	char path[4096];
	size_t len;
	uint8_t *want = ts_read_vector("measure/inputs/hashes_table_kernel_initrd_append.bin", &len);

	(void)state;
	(void)snprintf(path, sizeof(path), "%s/measure/inputs/kernel.bin", ts_vectors_dir());
	assert_int_equal(snp_sha256_file(path, k, NULL), SNP_OK);
	assert_hex(k, 32, "1720d41b2585edd83d1ba06f0f2e18921abee329f0406c38fd561e7729203fb7");
	(void)snprintf(path, sizeof(path), "%s/measure/inputs/initrd.bin", ts_vectors_dir());
	assert_int_equal(snp_sha256_file(path, i, NULL), SNP_OK);
	assert_hex(i, 32, "c78bc06abd1f3d30ef3893476b6c6678ba3ee86f92d01b7920fce5c4849f3e30");
	assert_int_equal(snp_sev_hash_cmdline("console=ttyS0 loglevel=7", c), SNP_OK);
	assert_hex(c, 32, "321c8eec6a77bad179511397f913a083067ad8cb737bb260aacbfe8df70fc50a");
	snp_sev_hashes_table(k, i, c, table);
	assert_int_equal(len, SNP_SEV_HASHES_TABLE_SIZE);
	assert_memory_equal(table, want, SNP_SEV_HASHES_TABLE_SIZE);
	/* The page at offset 0xC00 hashes to row 16 of the QEMU trace. */
	assert_int_equal(snp_sev_hashes_page(table, 0xC00, page), SNP_OK);
	assert_int_equal(EVP_Digest(page, sizeof(page), h, &hlen, EVP_sha384(), NULL), 1);
	assert_hex(h, hlen,
		   "055116cc96e055d84b34cfde6e7ff87a499614b92c320d672022dce70639f1aef38b640692294abce6b4f6c829ae2ee9");
	assert_memory_equal(page + 0xC00, want, SNP_SEV_HASHES_TABLE_SIZE);
	assert_true(snp_all_zero_outside(page, 0xC00, SNP_SEV_HASHES_TABLE_SIZE));
	free(want);
	/* SHA-256 of a buffer: the empty string. */
	assert_int_equal(snp_sha256(NULL, 0, h), SNP_OK);
	assert_hex(h, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(snp_sev_hashes_page(table, SNP_PAGE_SIZE - SNP_SEV_HASHES_TABLE_SIZE + 1,
					     page), SNP_E_ARGUMENT);
	/* Absent command line and empty one are the same NUL. */
	assert_int_equal(snp_sev_hash_cmdline(NULL, c), SNP_OK);
	assert_hex(c, 32, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
	assert_int_equal(snp_sev_hash_cmdline("", k), SNP_OK);
	assert_memory_equal(c, k, 32);
	assert_int_equal(snp_sha256_file("/nonexistent/kernel", k, NULL), SNP_E_IO);
}

/* ------------------------------------------------------------------ */
/* The launch digest                                                    */

static void
test_ld_primitives(void **state)
{
	uint8_t seed[SNP_LD_LEN], out[SNP_LD_LEN], page[SNP_PAGE_SIZE] = { 0 };
	snp_ld *ld = NULL;
	snp_error err = { 0 };

	(void)state;
	/* Trace row 0 of every trace: the fixture's one page at 0xFFFFF000 from zeros. */
	unhex("086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74",
	      seed, sizeof(seed));
	assert_int_equal(snp_ld_new(seed, &ld, NULL), SNP_OK);
	snp_ld_get(ld, out);
	assert_memory_equal(out, seed, SNP_LD_LEN);
	/* Row 1 of the QEMU trace: a ZERO page at 0x800000. */
	assert_int_equal(snp_ld_update_zero(ld, 0x800000, 0x1000, &err), SNP_OK);
	snp_ld_get(ld, out);
	assert_hex(out, SNP_LD_LEN,
		   "cb97f2e22ca4c090feb9453ef6cb076f8ded7ae48c9bbb892569c328b133f089f711d5c5a57afc127cf91d7a32e0736a");
	assert_int_equal(snp_ld_updates(ld), 1);
	/* Misuse is refused without touching the digest. */
	assert_int_equal(snp_ld_update_zero(ld, 0x800000, 0x800, &err), SNP_E_ARGUMENT);
	assert_int_equal(snp_ld_update_normal(ld, 0x800800, page, sizeof(page), &err),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_ld_update_normal(ld, 0x800000, page, 100, &err), SNP_E_ARGUMENT);
	assert_int_equal(snp_ld_update_unmeasured(ld, (1ull << 52) - 0x1000, 0x2000, &err),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_ld_updates(ld), 1);
	snp_ld_get(ld, seed);
	assert_memory_equal(out, seed, SNP_LD_LEN);
	snp_ld_free(ld);
	snp_ld_free(NULL);
}

struct trace_row {
	unsigned type;
	uint64_t gpa;
	uint8_t contents[SNP_LD_LEN];
	uint8_t ld[SNP_LD_LEN];
};

struct trace {
	struct trace_row rows[128];
	size_t n;       /* rows expected */
	size_t seen;    /* callbacks so far */
	uint8_t final[SNP_LD_LEN];
	const char *name;
};

/* Copy tab-separated field `idx` of `line` into out (NUL-terminated). */
static void
field(const char *line, unsigned idx, char *out, size_t outlen)
{
	const char *p = line, *end;
	size_t n;

	while (idx-- > 0) {
		p = strchr(p, '\t');
		assert_non_null(p);
		p++;
	}
	end = p + strcspn(p, "\t\n");
	n = (size_t)(end - p);
	assert_true(n < outlen);
	memcpy(out, p, n);
	out[n] = '\0';
}

static uint64_t
parse_u64(const char *s, int base)
{
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, base);

	assert_true(end != s);
	return v;
}

static void
load_trace(const char *rel, struct trace *t)
{
	char buf[256];
	size_t len;
	uint8_t *text = ts_read_vector(rel, &len); /* NUL-terminated by file_read_all */
	char *line = (char *)text, *next;

	memset(t, 0, sizeof(*t));
	t->name = rel;
	for (; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(line, "#final\t", 7) == 0) {
			unhex(line + 7, t->final, SNP_LD_LEN);
			continue;
		}
		if (line[0] == '#' || line[0] == '\0')
			continue;
		assert_true(t->n < 128);
		field(line, 0, buf, sizeof(buf));
		assert_int_equal(parse_u64(buf, 10), t->n);
		field(line, 1, buf, sizeof(buf));
		t->rows[t->n].type = (unsigned)parse_u64(buf, 10);
		field(line, 2, buf, sizeof(buf));
		t->rows[t->n].gpa = parse_u64(buf, 16);
		field(line, 3, buf, sizeof(buf));
		unhex(buf, t->rows[t->n].contents, SNP_LD_LEN);
		field(line, 4, buf, sizeof(buf));
		unhex(buf, t->rows[t->n].ld, SNP_LD_LEN);
		t->n++;
	}
	assert_true(t->n > 30);
	free(text);
}

static void
check_step(void *arg, unsigned type, uint64_t gpa, const uint8_t contents[SNP_LD_LEN],
	   const uint8_t ld[SNP_LD_LEN])
{
	struct trace *t = arg;
	const struct trace_row *want;

	if (t->seen >= t->n)
		fail_msg("%s: update %zu beyond the %zu traced", t->name, t->seen, t->n);
	want = &t->rows[t->seen];
	if (type != want->type || gpa != want->gpa)
		fail_msg("%s: update %zu is type %u gpa 0x%llx, traced type %u gpa 0x%llx", t->name,
			 t->seen, type, (unsigned long long)gpa, want->type,
			 (unsigned long long)want->gpa);
	if (memcmp(contents, want->contents, SNP_LD_LEN) != 0 || memcmp(ld, want->ld, SNP_LD_LEN) != 0)
		fail_msg("%s: update %zu (type %u gpa 0x%llx): contents or digest differ", t->name,
			 t->seen, type, (unsigned long long)gpa);
	t->seen++;
}

static void
run_trace(const char *rel, snp_vmm_type vmm, bool kernel)
{
	struct trace *t = malloc(sizeof(*t));
	snp_measure_params p;
	snp_ovmf *o = NULL;
	uint8_t ld[SNP_LD_LEN];
	char path[4096];
	size_t len, ld_len = 0;
	uint8_t *fw = ts_read_vector(SUFFIX, &len);

	assert_non_null(t);
	load_trace(rel, t);
	assert_int_equal(snp_ovmf_parse_static(fw, len, &o, NULL), SNP_OK);
	snp_measure_params_init(&p);
	p.ovmf = o;
	p.vmm = vmm;
	p.vcpus = 2;
	p.vcpu_sig = SIG_EPYC_V4;
	p.guest_features = 0x1;
	if (kernel) {
		p.has_kernel = true;
		(void)snprintf(path, sizeof(path), "%s/measure/inputs/kernel.bin", ts_vectors_dir());
		assert_int_equal(snp_sha256_file(path, p.kernel_sha256, NULL), SNP_OK);
		(void)snprintf(path, sizeof(path), "%s/measure/inputs/initrd.bin", ts_vectors_dir());
		assert_int_equal(snp_sha256_file(path, p.initrd_sha256, NULL), SNP_OK);
		assert_int_equal(snp_sev_hash_cmdline("console=ttyS0 loglevel=7", p.cmdline_sha256),
				 SNP_OK);
	}
	p.trace = check_step;
	p.trace_arg = t;
	assert_int_equal(snp_measure(&p, ld, &ld_len, NULL), SNP_OK);
	assert_int_equal(t->seen, t->n);
	assert_int_equal(ld_len, SNP_LD_LEN);
	assert_memory_equal(ld, t->final, SNP_LD_LEN);
	snp_ovmf_free(o);
	free(fw);
	free(t);
}

static void
test_trace_qemu_kernel(void **state)
{
	(void)state;
	run_trace("measure/traces/suf_qemu_epycv4_2vcpu_f1_K_I_A.tsv", SNP_VMM_QEMU, true);
}

static void
test_trace_ec2(void **state)
{
	(void)state;
	run_trace("measure/traces/suf_ec2_2vcpu_f1_noK.tsv", SNP_VMM_EC2, false);
}

static void
test_trace_gce(void **state)
{
	(void)state;
	run_trace("measure/traces/suf_gce_2vcpu_f1_noK.tsv", SNP_VMM_GCE, false);
}

/* Whole digests: default parameters, the seed path and the error of kernel + OvmfX64. */
static void
test_launch_digests(void **state)
{
	snp_measure_params p;
	snp_ovmf *o = NULL, *x64 = NULL;
	snp_error err = { 0 };
	uint8_t ld[SNP_LD_LEN], seed[SNP_LD_LEN];
	size_t len, xlen, ld_len = 0;
	uint8_t *fw = ts_read_vector(SUFFIX, &len);
	uint8_t *xfw = ts_read_vector(X64, &xlen);

	(void)state;
	assert_int_equal(snp_ovmf_parse_static(fw, len, &o, NULL), SNP_OK);
	assert_int_equal(snp_ovmf_parse_static(xfw, xlen, &x64, NULL), SNP_OK);
	snp_measure_params_init(&p);
	p.ovmf = o;
	p.vcpu_sig = SIG_EPYC_V4;
	/* suf_snp_1_noK_f1 */
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_hex(ld, ld_len,
		   "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d");
	/* snp:ovmf-hash, then the same digest from that seed. */
	p.mode = SNP_MODE_SNP_OVMF_HASH;
	assert_int_equal(snp_measure(&p, seed, &ld_len, &err), SNP_OK);
	assert_hex(seed, ld_len,
		   "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74");
	p.mode = SNP_MODE_SNP;
	p.ovmf_hash = seed;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_hex(ld, ld_len,
		   "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d");
	/* A seed outside SNP mode is misuse. */
	p.mode = SNP_MODE_SEV;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_ARGUMENT);
	p.ovmf_hash = NULL;
	/* sig0_2vcpu: a zero signature is a signature. */
	p.mode = SNP_MODE_SNP;
	p.vcpus = 2;
	p.vcpu_sig = 0;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_hex(ld, ld_len,
		   "9c2d327d3c04cf05853eb1ff13e021ac794a9fbd4457bc36cc3c7caf821e950039776a9413badbd29e7a95e4b4500ff8");
	/* x64suf_snp_1_f1, then with a kernel: no SNP_KERNEL_HASHES section. */
	p.ovmf = x64;
	p.vcpus = 1;
	p.vcpu_sig = SIG_EPYC_V4;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_hex(ld, ld_len,
		   "da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005");
	p.has_kernel = true;
	memset(ld, 0xAA, sizeof(ld));
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_FORMAT);
	assert_string_equal(err.detail,
			    "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES section");
	assert_int_equal(ld[0], 0xAA); /* nothing written on failure */
	/* SEV with OvmfX64 and no kernel is the SHA-256 of the file. */
	p.has_kernel = false;
	p.mode = SNP_MODE_SEV;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	assert_hex(ld, ld_len, "b4c021e085fb83ceffe6571a3d357b4a98773c83c474e47f76c876708fe316da");
	/* Too many vCPUs, no firmware. */
	p.mode = SNP_MODE_SNP;
	p.vcpus = SNP_MEASURE_MAX_VCPUS + 1;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_ARGUMENT);
	p.vcpus = 1;
	p.ovmf = NULL;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_ARGUMENT);
	snp_ovmf_free(x64);
	snp_ovmf_free(o);
	free(xfw);
	free(fw);
}

/* An image that is not whole pages is refused by SNP (not by SEV, as the reference). */
static void
test_unaligned_image(void **state)
{
	snp_measure_params p;
	snp_ovmf *o = NULL;
	snp_error err = { 0 };
	uint8_t ld[SNP_LD_LEN];
	size_t len, ld_len;
	uint8_t *fw = ts_read_vector(SUFFIX, &len);
	uint8_t *big = calloc(1, len + 100);

	(void)state;
	assert_non_null(big);
	memcpy(big + 100, fw, len); /* same tail, 100 leading bytes */
	assert_int_equal(snp_ovmf_parse_static(big, len + 100, &o, &err), SNP_OK);
	snp_measure_params_init(&p);
	p.ovmf = o;
	p.vcpu_sig = SIG_EPYC_V4;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_E_FORMAT);
	assert_non_null(strstr(err.detail, "multiple of 4096"));
	p.mode = SNP_MODE_SEV;
	assert_int_equal(snp_measure(&p, ld, &ld_len, &err), SNP_OK);
	snp_ovmf_free(o);
	free(big);
	free(fw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_amdsev_fixture),
		cmocka_unit_test(test_parse_ovmfx64_fixture),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_footer_guid),
		cmocka_unit_test(test_lying_lengths),
		cmocka_unit_test(test_bad_sections),
		cmocka_unit_test(test_oversized_and_null),
		cmocka_unit_test(test_vmsa_dumps),
		cmocka_unit_test(test_measure_vmsa_matches_dump),
		cmocka_unit_test(test_vcpu_sigs),
		cmocka_unit_test(test_hashes_table),
		cmocka_unit_test(test_ld_primitives),
		cmocka_unit_test(test_trace_qemu_kernel),
		cmocka_unit_test(test_trace_ec2),
		cmocka_unit_test(test_trace_gce),
		cmocka_unit_test(test_launch_digests),
		cmocka_unit_test(test_unaligned_image),
	};
	char probe[4096];
	FILE *f;

	(void)snprintf(probe, sizeof(probe), "%s/measure/cases.tsv", ts_vectors_dir());
	if ((f = fopen(probe, "r")) == NULL) {
		fprintf(stderr, "SKIP: measurement vectors not found at %s\n", probe);
		return 77;
	}
	fclose(f);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
