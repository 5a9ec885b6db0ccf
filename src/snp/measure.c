/*
 * Launch measurements: the SNP launch digest (a SHA-384 chain over the
 * PAGE_INFO of every SNP_LAUNCH_UPDATE), and the SEV / SEV-ES SHA-256 digests.
 *
 * SNP order (docs/measure.md): firmware pages as NORMAL pages ending at
 * 4 GiB (or a given seed instead), then the SEV metadata sections in image
 * order (EC2 moves CPUID pages to the end), then one VMSA per vCPU.
 */
#include "snp/internal.h"

#include <nitride/snp_measure.h>

#include "common/rbuf.h"

#include <stdlib.h>
#include <string.h>

#define PAGE_INFO_LEN 0x70u
#define GPA_LIMIT (1ull << 52) /* SNP GPAs are at most 52 bits */
#define FOUR_GIB 0x100000000ull

struct snp_ld {
	uint8_t ld[SNP_LD_LEN];
	EVP_MD *sha384;  /* fetched once: implicit fetches per digest cost more than the hash */
	EVP_MD_CTX *ctx; /* reused for every digest */
	uint64_t updates;
	snp_ld_trace_fn trace;
	void *trace_arg;
};

const char *
snp_vmm_type_name(snp_vmm_type vmm)
{
	switch (vmm) {
	case SNP_VMM_QEMU: return "QEMU";
	case SNP_VMM_EC2: return "ec2";
	case SNP_VMM_GCE: return "gce";
	default: return NULL;
	}
}

const char *
snp_measure_mode_name(snp_measure_mode mode)
{
	switch (mode) {
	case SNP_MODE_SNP: return "snp";
	case SNP_MODE_SNP_OVMF_HASH: return "snp:ovmf-hash";
	case SNP_MODE_SEV_ES: return "seves";
	case SNP_MODE_SEV: return "sev";
	default: return NULL;
	}
}

int
snp_ld_new(const uint8_t *seed, snp_ld **out, snp_error *err)
{
	snp_ld *ld = NULL;
	int r;

	if (out == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_ld_new: NULL argument");
		goto out;
	}
	if ((ld = calloc(1, sizeof(*ld))) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "out of memory");
		goto out;
	}
	if (seed != NULL)
		memcpy(ld->ld, seed, SNP_LD_LEN);
	if ((ld->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL)) == NULL ||
	    (ld->ctx = EVP_MD_CTX_new()) == NULL) {
		r = snp_fail(err, SNP_E_INTERNAL, "SHA-384 unavailable");
		snp_fail_append_openssl(err);
		goto out;
	}
	*out = ld;
	ld = NULL;
	r = SNP_OK;
out:
	snp_ld_free(ld);
	return r;
}

void
snp_ld_free(snp_ld *ld)
{
	if (ld == NULL)
		return;
	EVP_MD_CTX_free(ld->ctx);
	EVP_MD_free(ld->sha384);
	free(ld);
}

void
snp_ld_set_trace(snp_ld *ld, snp_ld_trace_fn fn, void *arg)
{
	ld->trace = fn;
	ld->trace_arg = arg;
}

void
snp_ld_get(const snp_ld *ld, uint8_t out[SNP_LD_LEN])
{
	memcpy(out, ld->ld, SNP_LD_LEN);
}

uint64_t
snp_ld_updates(const snp_ld *ld)
{
	return ld->updates;
}

static int
sha384(snp_ld *ld, const uint8_t *data, size_t len, uint8_t out[SNP_LD_LEN], snp_error *err)
{
	unsigned int n = 0;

	if (EVP_DigestInit_ex2(ld->ctx, ld->sha384, NULL) != 1 ||
	    EVP_DigestUpdate(ld->ctx, data, len) != 1 ||
	    EVP_DigestFinal_ex(ld->ctx, out, &n) != 1 || n != SNP_LD_LEN) {
		snp_fail(err, SNP_E_INTERNAL, "SHA-384 failed");
		snp_fail_append_openssl(err);
		return SNP_E_INTERNAL;
	}
	return SNP_OK;
}

/*
 * One PAGE_INFO (SNP ABI, SNP_LAUNCH_UPDATE): DIGEST_CUR, CONTENTS, LENGTH 0x70,
 * PAGE_TYPE, IMI_PAGE 0, VMPL3/2/1 permissions 0, reserved, GPA; the new digest
 * is its SHA-384.
 */
static int
ld_update(snp_ld *ld, unsigned type, uint64_t gpa, const uint8_t contents[SNP_LD_LEN],
	  snp_error *err)
{
	uint8_t info[PAGE_INFO_LEN];
	int r;

	memcpy(info, ld->ld, SNP_LD_LEN);
	memcpy(info + 0x30, contents, SNP_LD_LEN);
	info[0x60] = (uint8_t)PAGE_INFO_LEN;
	info[0x61] = 0;
	info[0x62] = (uint8_t)type;
	memset(info + 0x63, 0, 5);
	put_u64le(info + 0x68, gpa);
	if ((r = sha384(ld, info, sizeof(info), ld->ld, err)) != SNP_OK)
		return r;
	ld->updates++;
	if (ld->trace != NULL)
		ld->trace(ld->trace_arg, type, gpa, contents, ld->ld);
	return SNP_OK;
}

/* [gpa, gpa+len) must be whole pages below 2^52. */
static int
check_range(const char *what, uint64_t gpa, uint64_t len, snp_error *err)
{
	if (gpa % SNP_PAGE_SIZE != 0 || len % SNP_PAGE_SIZE != 0)
		return snp_fail(err, SNP_E_ARGUMENT,
				"%s: gpa 0x%llx length 0x%llx are not whole pages", what,
				(unsigned long long)gpa, (unsigned long long)len);
	if (gpa >= GPA_LIMIT || len > GPA_LIMIT - gpa)
		return snp_fail(err, SNP_E_ARGUMENT, "%s: gpa 0x%llx length 0x%llx exceed 52 bits",
				what, (unsigned long long)gpa, (unsigned long long)len);
	return SNP_OK;
}

int
snp_ld_update_normal(snp_ld *ld, uint64_t gpa, const uint8_t *data, size_t len, snp_error *err)
{
	uint8_t h[SNP_LD_LEN];
	size_t off;
	int r;

	if (ld == NULL || (data == NULL && len > 0))
		return snp_fail(err, SNP_E_ARGUMENT, "snp_ld_update_normal: NULL argument");
	if ((r = check_range("normal pages", gpa, len, err)) != SNP_OK)
		return r;
	for (off = 0; off < len; off += SNP_PAGE_SIZE) {
		if ((r = sha384(ld, data + off, SNP_PAGE_SIZE, h, err)) != SNP_OK ||
		    (r = ld_update(ld, SNP_PAGE_NORMAL, gpa + off, h, err)) != SNP_OK)
			return r;
	}
	return SNP_OK;
}

int
snp_ld_update_vmsa(snp_ld *ld, const uint8_t page[SNP_VMSA_SIZE], snp_error *err)
{
	uint8_t h[SNP_LD_LEN];
	int r;

	if (ld == NULL || page == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_ld_update_vmsa: NULL argument");
	if ((r = sha384(ld, page, SNP_VMSA_SIZE, h, err)) != SNP_OK)
		return r;
	return ld_update(ld, SNP_PAGE_VMSA, SNP_VMSA_GPA, h, err);
}

static int
update_empty_pages(snp_ld *ld, unsigned type, uint64_t gpa, uint64_t len, snp_error *err)
{
	static const uint8_t zeros[SNP_LD_LEN];
	uint64_t off;
	int r;

	if (ld == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_ld_update: NULL argument");
	if ((r = check_range(type == SNP_PAGE_ZERO ? "zero pages" : "unmeasured pages", gpa, len,
			     err)) != SNP_OK)
		return r;
	for (off = 0; off < len; off += SNP_PAGE_SIZE)
		if ((r = ld_update(ld, type, gpa + off, zeros, err)) != SNP_OK)
			return r;
	return SNP_OK;
}

int
snp_ld_update_zero(snp_ld *ld, uint64_t gpa, uint64_t len, snp_error *err)
{
	return update_empty_pages(ld, SNP_PAGE_ZERO, gpa, len, err);
}

int
snp_ld_update_unmeasured(snp_ld *ld, uint64_t gpa, uint64_t len, snp_error *err)
{
	return update_empty_pages(ld, SNP_PAGE_UNMEASURED, gpa, len, err);
}

int
snp_ld_update_secrets(snp_ld *ld, uint64_t gpa, snp_error *err)
{
	return update_empty_pages(ld, SNP_PAGE_SECRETS, gpa, SNP_PAGE_SIZE, err);
}

int
snp_ld_update_cpuid(snp_ld *ld, uint64_t gpa, snp_error *err)
{
	return update_empty_pages(ld, SNP_PAGE_CPUID, gpa, SNP_PAGE_SIZE, err);
}

/* ------------------------------------------------------------------ */

void
snp_measure_params_init(snp_measure_params *p)
{
	memset(p, 0, sizeof(*p));
	p->mode = SNP_MODE_SNP;
	p->vmm = SNP_VMM_QEMU;
	p->vcpus = 1;
	p->guest_features = 0x1;
	/* These cannot fail with valid arguments; keep the zeros if OpenSSL is broken
	 * (snp_measure then fails on its own digests). */
	if (snp_sha256(NULL, 0, p->initrd_sha256) != SNP_OK ||
	    snp_sev_hash_cmdline(NULL, p->cmdline_sha256) != SNP_OK)
		memset(p->initrd_sha256, 0, sizeof(p->initrd_sha256));
}

static int
check_params(const snp_measure_params *p, snp_error *err)
{
	if (p == NULL || p->ovmf == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: no firmware");
	if (snp_measure_mode_name(p->mode) == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: unknown mode %d", (int)p->mode);
	if (snp_vmm_type_name(p->vmm) == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: unknown VMM type %d", (int)p->vmm);
	if (p->vcpus > SNP_MEASURE_MAX_VCPUS)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: %u vCPUs, at most %u", p->vcpus,
				SNP_MEASURE_MAX_VCPUS);
	if (p->ovmf_hash != NULL && p->mode != SNP_MODE_SNP)
		return snp_fail(err, SNP_E_ARGUMENT, "SNP OVMF hash only works with SNP");
	return SNP_OK;
}

/* The AP reset EIP, required by every mode with VMSAs (even with one vCPU, as
 * the reference does); 0 is accepted only when there are no APs. */
static int
vmsa_eips(const snp_measure_params *p, uint32_t *ap_eip, snp_error *err)
{
	int r;

	r = snp_ovmf_reset_eip(p->ovmf, ap_eip, err);
	if (r == SNP_E_NOT_FOUND)
		return snp_fail(err, SNP_E_FORMAT,
				"Can't find SEV_ES_RESET_BLOCK_GUID entry in OVMF table");
	if (r != SNP_OK)
		return r;
	if (*ap_eip == 0 && p->vcpus > 1)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: the SEV-ES reset block gives AP reset EIP 0, so %u vCPUs "
				"cannot start", p->vcpus);
	return SNP_OK;
}

int
snp_measure_vmsa(const snp_measure_params *p, unsigned index, uint8_t out[SNP_VMSA_SIZE],
		 snp_error *err)
{
	uint64_t features;
	uint32_t ap_eip = 0;
	int r;

	if ((r = check_params(p, err)) != SNP_OK)
		return r;
	if (out == NULL || index >= p->vcpus)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: vCPU %u of %u", index, p->vcpus);
	if (p->mode != SNP_MODE_SNP && p->mode != SNP_MODE_SEV_ES)
		return snp_fail(err, SNP_E_ARGUMENT, "measure: mode %s has no VMSAs",
				snp_measure_mode_name(p->mode));
	if ((r = vmsa_eips(p, &ap_eip, err)) != SNP_OK)
		return r;
	features = p->mode == SNP_MODE_SEV_ES ? 0 : p->guest_features;
	return snp_vmsa_build(p->vmm, index == 0 ? SNP_VMSA_BSP_EIP : ap_eip, features, p->vcpu_sig,
			      out);
}

static int
measure_section(const snp_measure_params *p, snp_ld *ld, const snp_ovmf_section *s,
		snp_error *err)
{
	uint8_t table[SNP_SEV_HASHES_TABLE_SIZE];
	uint8_t page[SNP_PAGE_SIZE];
	uint32_t rv_gpa = 0;
	int r;

	switch (s->type) {
	case SNP_SECTION_SEC_MEM:
		if (p->vmm == SNP_VMM_GCE)
			return snp_ld_update_unmeasured(ld, s->gpa, s->size, err);
		return snp_ld_update_zero(ld, s->gpa, s->size, err);
	case SNP_SECTION_SECRETS:
		return snp_ld_update_secrets(ld, s->gpa, err);
	case SNP_SECTION_CPUID:
		if (p->vmm == SNP_VMM_EC2)
			return SNP_OK; /* measured after every other section */
		return snp_ld_update_cpuid(ld, s->gpa, err);
	case SNP_SECTION_SVSM_CAA:
		return snp_ld_update_zero(ld, s->gpa, s->size, err);
	case SNP_SECTION_KERNEL_HASHES:
		if (!p->has_kernel)
			return snp_ld_update_zero(ld, s->gpa, s->size, err);
		/* The table's in-page offset comes from the RV entry; the page goes at the
		 * section's GPA. */
		r = snp_ovmf_hashes_table_gpa(p->ovmf, &rv_gpa, err);
		if (r == SNP_E_NOT_FOUND)
			return snp_fail(err, SNP_E_FORMAT,
					"Can't find SEV_HASH_TABLE_RV_GUID entry in OVMF table");
		if (r != SNP_OK)
			return r;
		if (s->size != SNP_PAGE_SIZE)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SNP_KERNEL_HASHES section at gpa 0x%x has size 0x%x, "
					"expected one page", s->gpa, s->size);
		snp_sev_hashes_table(p->kernel_sha256, p->initrd_sha256, p->cmdline_sha256, table);
		if (snp_sev_hashes_page(table, rv_gpa & (SNP_PAGE_SIZE - 1), page) != SNP_OK)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV hashes table at gpa 0x%x does not fit in its page",
					rv_gpa);
		return snp_ld_update_normal(ld, s->gpa, page, sizeof(page), err);
	default:
		return snp_fail(err, SNP_E_FORMAT, "firmware: unknown section type 0x%x", s->type);
	}
}

static int
measure_snp(const snp_measure_params *p, uint8_t out[SNP_LD_LEN], snp_error *err)
{
	const snp_ovmf *fw = p->ovmf;
	uint8_t vmsa[2][SNP_VMSA_SIZE];
	snp_ovmf_section s;
	snp_ld *ld = NULL;
	uint32_t ap_eip = 0;
	bool hashes_section = false;
	size_t i, n = snp_ovmf_section_count(fw);
	unsigned v;
	int r;

	if (p->ovmf_hash == NULL && snp_ovmf_size(fw) % SNP_PAGE_SIZE != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "firmware: size %zu is not a multiple of 4096",
			     snp_ovmf_size(fw));
		goto out;
	}
	if ((r = snp_ld_new(p->ovmf_hash, &ld, err)) != SNP_OK)
		goto out;
	snp_ld_set_trace(ld, p->trace, p->trace_arg);
	if (p->ovmf_hash == NULL &&
	    (r = snp_ld_update_normal(ld, snp_ovmf_gpa(fw), snp_ovmf_data(fw), snp_ovmf_size(fw),
				      err)) != SNP_OK)
		goto out;
	if (p->mode == SNP_MODE_SNP_OVMF_HASH)
		goto done;
	for (i = 0; i < n; i++) {
		if ((r = snp_ovmf_get_section(fw, i, &s)) != SNP_OK ||
		    (r = measure_section(p, ld, &s, err)) != SNP_OK)
			goto out;
		hashes_section |= s.type == SNP_SECTION_KERNEL_HASHES;
	}
	if (p->vmm == SNP_VMM_EC2) {
		for (i = 0; i < n; i++) {
			if ((r = snp_ovmf_get_section(fw, i, &s)) != SNP_OK)
				goto out;
			if (s.type == SNP_SECTION_CPUID &&
			    (r = snp_ld_update_cpuid(ld, s.gpa, err)) != SNP_OK)
				goto out;
		}
	}
	if (p->has_kernel && !hashes_section) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "Kernel specified but OVMF metadata doesn't include SNP_KERNEL_HASHES "
			     "section");
		goto out;
	}
	if ((r = vmsa_eips(p, &ap_eip, err)) != SNP_OK ||
	    (r = snp_vmsa_build(p->vmm, SNP_VMSA_BSP_EIP, p->guest_features, p->vcpu_sig,
				vmsa[0])) != SNP_OK ||
	    (r = snp_vmsa_build(p->vmm, ap_eip, p->guest_features, p->vcpu_sig, vmsa[1])) != SNP_OK)
		goto out;
	for (v = 0; v < p->vcpus; v++)
		if ((r = snp_ld_update_vmsa(ld, vmsa[v == 0 ? 0 : 1], err)) != SNP_OK)
			goto out;
done:
	snp_ld_get(ld, out);
	r = SNP_OK;
out:
	snp_ld_free(ld);
	return r;
}

static int
measure_sev(const snp_measure_params *p, uint8_t out[SNP_SEV_LD_LEN], snp_error *err)
{
	uint8_t table[SNP_SEV_HASHES_TABLE_SIZE];
	uint8_t vmsa[2][SNP_VMSA_SIZE];
	EVP_MD_CTX *ctx = NULL;
	uint32_t ap_eip = 0;
	unsigned int n = 0;
	unsigned v;
	int r;

	if (p->has_kernel && !snp_ovmf_sev_hashes_supported(p->ovmf)) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "Kernel specified but OVMF doesn't support kernel/initrd/cmdline "
			     "measurement");
		goto out;
	}
	if (p->mode == SNP_MODE_SEV_ES &&
	    ((r = vmsa_eips(p, &ap_eip, err)) != SNP_OK ||
	     (r = snp_vmsa_build(p->vmm, SNP_VMSA_BSP_EIP, 0, p->vcpu_sig, vmsa[0])) != SNP_OK ||
	     (r = snp_vmsa_build(p->vmm, ap_eip, 0, p->vcpu_sig, vmsa[1])) != SNP_OK))
		goto out;
	r = SNP_E_INTERNAL;
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, snp_ovmf_data(p->ovmf), snp_ovmf_size(p->ovmf)) != 1) {
		snp_fail(err, r, "SHA-256 failed");
		goto out;
	}
	if (p->has_kernel) {
		snp_sev_hashes_table(p->kernel_sha256, p->initrd_sha256, p->cmdline_sha256, table);
		if (EVP_DigestUpdate(ctx, table, sizeof(table)) != 1) {
			snp_fail(err, r, "SHA-256 failed");
			goto out;
		}
	}
	if (p->mode == SNP_MODE_SEV_ES) {
		for (v = 0; v < p->vcpus; v++) {
			if (EVP_DigestUpdate(ctx, vmsa[v == 0 ? 0 : 1], SNP_VMSA_SIZE) != 1) {
				snp_fail(err, r, "SHA-256 failed");
				goto out;
			}
		}
	}
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != SNP_SEV_LD_LEN) {
		snp_fail(err, r, "SHA-256 failed");
		goto out;
	}
	r = SNP_OK;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int
snp_measure(const snp_measure_params *p, uint8_t out[SNP_LD_LEN], size_t *out_len,
	    snp_error *err)
{
	uint8_t digest[SNP_LD_LEN];
	size_t len;
	int r;

	if ((r = check_params(p, err)) != SNP_OK)
		return r;
	if (out == NULL || out_len == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_measure: NULL argument");
	if (p->mode == SNP_MODE_SNP || p->mode == SNP_MODE_SNP_OVMF_HASH) {
		r = measure_snp(p, digest, err);
		len = SNP_LD_LEN;
	} else {
		r = measure_sev(p, digest, err);
		len = SNP_SEV_LD_LEN;
	}
	if (r != SNP_OK)
		return r;
	memcpy(out, digest, len);
	*out_len = len;
	return SNP_OK;
}
