/*
 * libFuzzer target: snp_report_parse.
 *
 * Properties checked (abort() on violation, so libFuzzer keeps the input):
 *  - parse never crashes, and fails only with a status (never SNP_OK with no object);
 *  - on success, serialize reproduces the input's first SNP_REPORT_SIZE bytes and
 *    snp_report_bytes() is those same bytes (the parser accepts only reports whose
 *    reserved areas are zero, so the encoding is unique);
 *  - every accessor can be called on any accepted report.
 */
#include <nitride/snp.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Accessor results are folded in here so that the calls are not optimised away. */
static volatile uint64_t sink;

static void
consume_bytes(const uint8_t *p, size_t n)
{
	uint64_t acc = 0;
	size_t i;

	if (p == NULL)
		abort();
	for (i = 0; i < n; i++)
		acc = acc * 31 + p[i];
	sink ^= acc;
}

static void
call_accessors(const snp_report *r)
{
	snp_tcb tcb;
	snp_product p;

	sink ^= snp_report_version(r);
	sink ^= snp_report_guest_svn(r);
	sink ^= snp_report_policy(r);
	consume_bytes(snp_report_family_id(r), SNP_ID_LEN);
	consume_bytes(snp_report_image_id(r), SNP_ID_LEN);
	sink ^= snp_report_vmpl(r);
	sink ^= snp_report_signature_algo(r);
	sink ^= snp_report_current_tcb(r);
	sink ^= snp_report_platform_info(r);
	sink ^= snp_report_key_info(r);
	sink ^= snp_report_signing_key(r);
	consume_bytes(snp_report_report_data(r), SNP_REPORT_DATA_LEN);
	consume_bytes(snp_report_measurement(r), SNP_MEASUREMENT_LEN);
	consume_bytes(snp_report_host_data(r), SNP_HOST_DATA_LEN);
	consume_bytes(snp_report_id_key_digest(r), SNP_KEY_DIGEST_LEN);
	consume_bytes(snp_report_author_key_digest(r), SNP_KEY_DIGEST_LEN);
	consume_bytes(snp_report_report_id(r), SNP_REPORT_ID_LEN);
	consume_bytes(snp_report_report_id_ma(r), SNP_REPORT_ID_LEN);
	sink ^= snp_report_reported_tcb(r);
	sink ^= snp_report_cpuid_fam_id(r);
	sink ^= snp_report_cpuid_mod_id(r);
	sink ^= snp_report_cpuid_step(r);
	consume_bytes(snp_report_chip_id(r), SNP_CHIP_ID_LEN);
	sink ^= snp_report_committed_tcb(r);
	sink ^= snp_report_current_build(r);
	sink ^= snp_report_current_minor(r);
	sink ^= snp_report_current_major(r);
	sink ^= snp_report_committed_build(r);
	sink ^= snp_report_committed_minor(r);
	sink ^= snp_report_committed_major(r);
	sink ^= snp_report_launch_tcb(r);
	sink ^= snp_report_launch_mit_vector(r);
	sink ^= snp_report_current_mit_vector(r);
	consume_bytes(snp_report_signature_r(r), SNP_SIG_COMPONENT_LEN);
	consume_bytes(snp_report_signature_s(r), SNP_SIG_COMPONENT_LEN);
	consume_bytes(snp_report_bytes(r), SNP_REPORT_SIZE);
	p = snp_report_cpuid_product(r);
	if ((unsigned)p >= SNP_PRODUCT_COUNT)
		abort();
	if (snp_report_version(r) < 3 && p != SNP_PRODUCT_UNKNOWN)
		abort();
	/* Decoding a TCB for the report's product (whatever it is) must be safe. */
	snp_tcb_decode(snp_report_reported_tcb(r), p, &tcb);
	sink ^= snp_tcb_encode(&tcb, p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snp_report *r = NULL;
	snp_error err;
	uint8_t out[SNP_REPORT_SIZE];
	int rc;

	memset(&err, 0, sizeof(err));
	rc = snp_report_parse(data, size, &r, &err);
	if (rc != SNP_OK) {
		if (r != NULL || rc >= 0 || err.status != rc)
			abort();
		return 0;
	}
	if (r == NULL || size < SNP_REPORT_SIZE)
		abort();
	snp_report_serialize(r, out);
	if (memcmp(out, data, SNP_REPORT_SIZE) != 0)
		abort();
	if (memcmp(snp_report_bytes(r), data, SNP_REPORT_SIZE) != 0)
		abort();
	call_accessors(r);
	snp_report_free(r);
	return 0;
}
