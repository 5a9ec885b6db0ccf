/*
 * libFuzzer target: snp_ovmf_parse (the OVMF footer GUID table and the SEV
 * metadata sections) and the SNP measurement of whatever it accepts.
 *
 * Properties checked (abort() on violation, so libFuzzer keeps the input):
 *  - parse never crashes; it fails only with a negative status that is also in
 *    err.status, and then leaves *out untouched;
 *  - the copying and the borrowing parser agree;
 *  - on success every table entry lies inside the image, there are at most
 *    SNP_OVMF_MAX_SECTIONS sections, each of a known type, page-aligned, below
 *    4 GiB, clear of the image and of each other;
 *  - measuring an accepted image (SNP, QEMU and GCE, with and without a
 *    kernel, 2 vCPUs) either succeeds or fails as SNP_E_FORMAT: malformed
 *    firmware is never an argument or internal error.  The measurement runs
 *    only when the sections cover at most 64 MiB, to keep each input fast
 *    (the library's own bound is the 4 GiB the sections cannot overlap in).
 */
#include <nitride/snp_measure.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_SPAN_MAX (64ull << 20)

static const uint8_t guids[][16] = {
	/* SEV_ES_RESET_BLOCK, OVMF_SEV_METADATA, SEV_HASH_TABLE_RV */
	{ 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f, 0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e },
	{ 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47, 0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc },
	{ 0x1f, 0x37, 0x55, 0x72, 0x3b, 0x3a, 0x04, 0x4b, 0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54 },
};

static void
check_accepted(const snp_ovmf *o, const uint8_t *data, size_t size)
{
	snp_ovmf_section s, t;
	const uint8_t *p;
	uint64_t span = 0, fw_gpa = 0x100000000ull - size;
	size_t n, i, j, len;

	if (snp_ovmf_size(o) != size || snp_ovmf_gpa(o) != fw_gpa)
		abort();
	for (i = 0; i < sizeof(guids) / sizeof(guids[0]); i++) {
		if (snp_ovmf_table_entry(o, guids[i], &p, &len) == SNP_OK &&
		    (p < snp_ovmf_data(o) || len > size ||
		     (size_t)(p - snp_ovmf_data(o)) > size - len))
			abort();
	}
	n = snp_ovmf_section_count(o);
	if (n > SNP_OVMF_MAX_SECTIONS || snp_ovmf_get_section(o, n, &s) != SNP_E_ARGUMENT)
		abort();
	for (i = 0; i < n; i++) {
		uint64_t a_len;

		if (snp_ovmf_get_section(o, i, &s) != SNP_OK ||
		    snp_section_type_name(s.type) == NULL || s.gpa % SNP_PAGE_SIZE != 0)
			abort();
		a_len = s.size < SNP_PAGE_SIZE ? SNP_PAGE_SIZE : s.size;
		if ((uint64_t)s.gpa + a_len > 0x100000000ull && s.size >= SNP_PAGE_SIZE)
			abort();
		if ((uint64_t)s.gpa < fw_gpa + size && fw_gpa < (uint64_t)s.gpa + s.size)
			abort();
		for (j = 0; j < i; j++) {
			if (snp_ovmf_get_section(o, j, &t) != SNP_OK)
				abort();
			if (s.size > 0 && t.size > 0 && s.gpa < (uint64_t)t.gpa + t.size &&
			    t.gpa < (uint64_t)s.gpa + s.size)
				abort();
		}
		span += s.size;
	}
	(void)data;
	if (span > FUZZ_SPAN_MAX)
		return;
	for (i = 0; i < 4; i++) {
		snp_measure_params prm;
		snp_error err;
		uint8_t ld[SNP_LD_LEN];
		size_t ld_len = 0;
		int rc;

		memset(&err, 0, sizeof(err));
		snp_measure_params_init(&prm);
		prm.ovmf = o;
		prm.vcpus = 2;
		prm.vcpu_sig = 0x800F12;
		prm.vmm = (i & 1) ? SNP_VMM_GCE : SNP_VMM_QEMU;
		prm.has_kernel = (i & 2) != 0;
		rc = snp_measure(&prm, ld, &ld_len, &err);
		if (rc == SNP_OK ? ld_len != SNP_LD_LEN : (rc != SNP_E_FORMAT || err.status != rc))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snp_ovmf *o = NULL, *b = NULL;
	snp_error err;
	int rc, rb;

	memset(&err, 0, sizeof(err));
	rc = snp_ovmf_parse(data, size, &o, &err);
	if (rc != SNP_OK) {
		if (o != NULL || rc >= 0 || err.status != rc || err.detail[0] == '\0')
			abort();
	}
	rb = snp_ovmf_parse_static(data, size, &b, NULL);
	if (rb != rc || (rb == SNP_OK) != (b != NULL))
		abort();
	if (rc == SNP_OK) {
		if (o == NULL || snp_ovmf_section_count(o) != snp_ovmf_section_count(b) ||
		    snp_ovmf_table_count(o) != snp_ovmf_table_count(b) ||
		    (size > 0 && memcmp(snp_ovmf_data(o), data, size) != 0))
			abort();
		check_accepted(o, data, size);
	}
	snp_ovmf_free(o);
	snp_ovmf_free(b);
	return 0;
}
