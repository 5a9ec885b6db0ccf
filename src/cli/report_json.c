/* Attestation report → JSON, with the field names of the firmware ABI in snake_case. */
#include "cli/cli.h"

#include "common/hex.h"

#include <inttypes.h>
#include <stdio.h>

static int
set_hex(json_t *o, const char *key, const uint8_t *p, size_t n)
{
	char buf[2 * SNP_SIG_COMPONENT_LEN + 1]; /* the longest field is 72 bytes */

	if (n > SNP_SIG_COMPONENT_LEN)
		return -1;
	hex_encode(p, n, buf);
	return json_object_set_new(o, key, json_string(buf));
}

static int
set_u64_hex(json_t *o, const char *key, uint64_t v)
{
	char buf[2 + 16 + 1];

	(void)snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
	return json_object_set_new(o, key, json_string(buf));
}

static int
set_int(json_t *o, const char *key, uint64_t v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

json_t *
tcb_to_json(uint64_t raw, snp_product product)
{
	json_t *o = json_object();
	snp_tcb t;

	if (o == NULL)
		return NULL;
	snp_tcb_decode(raw, product, &t);
	if (set_u64_hex(o, "raw", raw) != 0 ||
	    (t.has_fmc && set_int(o, "fmc", t.fmc) != 0) ||
	    set_int(o, "bootloader", t.bootloader) != 0 || set_int(o, "tee", t.tee) != 0 ||
	    set_int(o, "snp", t.snp) != 0 || set_int(o, "microcode", t.microcode) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *
report_to_json(const snp_report *r, snp_product product)
{
	json_t *o = json_object();
	int bad = 0;

	if (o == NULL)
		return NULL;
	bad |= set_int(o, "version", snp_report_version(r));
	bad |= set_int(o, "guest_svn", snp_report_guest_svn(r));
	bad |= set_u64_hex(o, "policy", snp_report_policy(r));
	bad |= set_hex(o, "family_id", snp_report_family_id(r), SNP_ID_LEN);
	bad |= set_hex(o, "image_id", snp_report_image_id(r), SNP_ID_LEN);
	bad |= set_int(o, "vmpl", snp_report_vmpl(r));
	bad |= set_int(o, "signature_algo", snp_report_signature_algo(r));
	bad |= json_object_set_new(o, "current_tcb", tcb_to_json(snp_report_current_tcb(r), product));
	bad |= set_u64_hex(o, "platform_info", snp_report_platform_info(r));
	bad |= set_int(o, "key_info", snp_report_key_info(r));
	bad |= set_hex(o, "report_data", snp_report_report_data(r), SNP_REPORT_DATA_LEN);
	bad |= set_hex(o, "measurement", snp_report_measurement(r), SNP_MEASUREMENT_LEN);
	bad |= set_hex(o, "host_data", snp_report_host_data(r), SNP_HOST_DATA_LEN);
	bad |= set_hex(o, "id_key_digest", snp_report_id_key_digest(r), SNP_KEY_DIGEST_LEN);
	bad |= set_hex(o, "author_key_digest", snp_report_author_key_digest(r), SNP_KEY_DIGEST_LEN);
	bad |= set_hex(o, "report_id", snp_report_report_id(r), SNP_REPORT_ID_LEN);
	bad |= set_hex(o, "report_id_ma", snp_report_report_id_ma(r), SNP_REPORT_ID_LEN);
	bad |= json_object_set_new(o, "reported_tcb", tcb_to_json(snp_report_reported_tcb(r), product));
	bad |= set_int(o, "cpuid_fam_id", snp_report_cpuid_fam_id(r));
	bad |= set_int(o, "cpuid_mod_id", snp_report_cpuid_mod_id(r));
	bad |= set_int(o, "cpuid_step", snp_report_cpuid_step(r));
	bad |= set_hex(o, "chip_id", snp_report_chip_id(r), SNP_CHIP_ID_LEN);
	bad |= json_object_set_new(o, "committed_tcb", tcb_to_json(snp_report_committed_tcb(r), product));
	bad |= set_int(o, "current_build", snp_report_current_build(r));
	bad |= set_int(o, "current_minor", snp_report_current_minor(r));
	bad |= set_int(o, "current_major", snp_report_current_major(r));
	bad |= set_int(o, "committed_build", snp_report_committed_build(r));
	bad |= set_int(o, "committed_minor", snp_report_committed_minor(r));
	bad |= set_int(o, "committed_major", snp_report_committed_major(r));
	bad |= json_object_set_new(o, "launch_tcb", tcb_to_json(snp_report_launch_tcb(r), product));
	bad |= set_u64_hex(o, "launch_mit_vector", snp_report_launch_mit_vector(r));
	bad |= set_u64_hex(o, "current_mit_vector", snp_report_current_mit_vector(r));
	bad |= set_hex(o, "signature_r", snp_report_signature_r(r), SNP_SIG_COMPONENT_LEN);
	bad |= set_hex(o, "signature_s", snp_report_signature_s(r), SNP_SIG_COMPONENT_LEN);
	bad |= json_object_set_new(o, "signing_key",
				   json_string(snp_report_signing_key(r) == SNP_SIGNING_KEY_VCEK ? "vcek" :
					       snp_report_signing_key(r) == SNP_SIGNING_KEY_VLEK ? "vlek" : "none"));
	bad |= json_object_set_new(o, "product", json_string(snp_product_name(product)));
	if (bad != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
