/*
 * Initial VMSAs (the SEV-ES save area each vCPU starts from) as QEMU/KVM,
 * AWS EC2 and Google GCE create them, and the table of QEMU CPU models.
 *
 * Only the fields below are set; every other byte of the 4 KiB page is zero.
 * Offsets are those of the save area in AMD APM vol. 2, table B-4 (the same as
 * the reference's SevEsSaveArea).
 */
#include "snp/internal.h"

#include <nitride/snp_measure.h>

#include "common/rbuf.h"

#include <string.h>

/* Segment registers: {u16 selector, u16 attrib, u32 limit, u64 base}, 16 bytes each. */
#define VMSA_ES 0x000
#define VMSA_CS 0x010
#define VMSA_SS 0x020
#define VMSA_DS 0x030
#define VMSA_FS 0x040
#define VMSA_GS 0x050
#define VMSA_GDTR 0x060
#define VMSA_LDTR 0x070
#define VMSA_IDTR 0x080
#define VMSA_TR 0x090
#define VMSA_EFER 0x0D0
#define VMSA_CR4 0x148
#define VMSA_CR0 0x158
#define VMSA_DR7 0x160
#define VMSA_DR6 0x168
#define VMSA_RFLAGS 0x170
#define VMSA_RIP 0x178
#define VMSA_G_PAT 0x268
#define VMSA_RDX 0x310
#define VMSA_SEV_FEATURES 0x3B0
#define VMSA_XCR0 0x3E8
#define VMSA_MXCSR 0x408
#define VMSA_X87_FCW 0x410

#define PAT_DEFAULT 0x0007040600070406ull /* APM vol. 2, A.3 */
#define PAT_GCE 0x0000000000070106ull     /* GCE overwrites the default */

static void
put_seg(uint8_t *vmsa, size_t off, uint16_t selector, uint16_t attrib, uint32_t limit,
	uint64_t base)
{
	vmsa[off] = (uint8_t)selector;
	vmsa[off + 1] = (uint8_t)(selector >> 8);
	vmsa[off + 2] = (uint8_t)attrib;
	vmsa[off + 3] = (uint8_t)(attrib >> 8);
	put_u32le(vmsa + off + 4, limit);
	put_u64le(vmsa + off + 8, base);
}

int
snp_vmsa_build(snp_vmm_type vmm, uint32_t eip, uint64_t sev_features, uint64_t vcpu_sig,
	       uint8_t out[SNP_VMSA_SIZE])
{
	uint16_t cs_attr = 0x9B, ss_attr = 0x93, tr_attr = 0x8B, fcw = 0;
	uint64_t g_pat = PAT_DEFAULT, rdx = 0x600;
	uint32_t mxcsr = 0;

	if (out == NULL)
		return SNP_E_ARGUMENT;
	switch (vmm) {
	case SNP_VMM_QEMU:
		/* KVM_SEV_INIT2 (host kernel 6.10+) sets MXCSR and FCW to their reset values. */
		rdx = vcpu_sig;
		mxcsr = 0x1F80;
		fcw = 0x37F;
		break;
	case SNP_VMM_EC2:
		/* EC2 leaves the accessed bit clear in the BSP's CS and uses other types. */
		if (eip == SNP_VMSA_BSP_EIP)
			cs_attr = 0x9A;
		ss_attr = 0x92;
		tr_attr = 0x83;
		break;
	case SNP_VMM_GCE:
		g_pat = PAT_GCE;
		break;
	default:
		return SNP_E_ARGUMENT;
	}
	memset(out, 0, SNP_VMSA_SIZE);
	put_seg(out, VMSA_ES, 0, 0x93, 0xFFFF, 0);
	put_seg(out, VMSA_CS, 0xF000, cs_attr, 0xFFFF, eip & 0xFFFF0000u);
	put_seg(out, VMSA_SS, 0, ss_attr, 0xFFFF, 0);
	put_seg(out, VMSA_DS, 0, 0x93, 0xFFFF, 0);
	put_seg(out, VMSA_FS, 0, 0x93, 0xFFFF, 0);
	put_seg(out, VMSA_GS, 0, 0x93, 0xFFFF, 0);
	put_seg(out, VMSA_GDTR, 0, 0, 0xFFFF, 0);
	put_seg(out, VMSA_LDTR, 0, 0x82, 0xFFFF, 0);
	put_seg(out, VMSA_IDTR, 0, 0, 0xFFFF, 0);
	put_seg(out, VMSA_TR, 0, tr_attr, 0xFFFF, 0);
	put_u64le(out + VMSA_EFER, 0x1000);   /* SVME, as KVM sets it */
	put_u64le(out + VMSA_CR4, 0x40);      /* MCE */
	put_u64le(out + VMSA_CR0, 0x10);      /* ET */
	put_u64le(out + VMSA_DR7, 0x400);
	put_u64le(out + VMSA_DR6, 0xFFFF0FF0);
	put_u64le(out + VMSA_RFLAGS, 0x2);
	put_u64le(out + VMSA_RIP, eip & 0xFFFFu);
	put_u64le(out + VMSA_G_PAT, g_pat);
	put_u64le(out + VMSA_RDX, rdx);
	put_u64le(out + VMSA_SEV_FEATURES, sev_features);
	put_u64le(out + VMSA_XCR0, 0x1);
	put_u32le(out + VMSA_MXCSR, mxcsr);
	out[VMSA_X87_FCW] = (uint8_t)fcw;
	out[VMSA_X87_FCW + 1] = (uint8_t)(fcw >> 8);
	return SNP_OK;
}

uint32_t
snp_vcpu_sig(unsigned family, unsigned model, unsigned stepping)
{
	uint32_t fam_lo, fam_hi;

	if (family > 0xF) {
		fam_lo = 0xF;
		fam_hi = (family - 0xF) & 0xFF;
	} else {
		fam_lo = family;
		fam_hi = 0;
	}
	return fam_hi << 20 | ((model >> 4) & 0xF) << 16 | fam_lo << 8 | (model & 0xF) << 4 |
	       (stepping & 0xF);
}

/* QEMU's AMD EPYC CPU models (builtin_x86_defs) and their family/model/stepping. */
static const struct {
	const char *name;
	unsigned family, model, stepping;
} vcpu_types[] = {
	{ "EPYC", 23, 1, 2 },
	{ "EPYC-v1", 23, 1, 2 },
	{ "EPYC-v2", 23, 1, 2 },
	{ "EPYC-IBPB", 23, 1, 2 },
	{ "EPYC-v3", 23, 1, 2 },
	{ "EPYC-v4", 23, 1, 2 },
	{ "EPYC-Rome", 23, 49, 0 },
	{ "EPYC-Rome-v1", 23, 49, 0 },
	{ "EPYC-Rome-v2", 23, 49, 0 },
	{ "EPYC-Rome-v3", 23, 49, 0 },
	{ "EPYC-Milan", 25, 1, 1 },
	{ "EPYC-Milan-v1", 25, 1, 1 },
	{ "EPYC-Milan-v2", 25, 1, 1 },
	{ "EPYC-Genoa", 25, 17, 0 },
	{ "EPYC-Genoa-v1", 25, 17, 0 },
	{ "EPYC-Turin", 26, 0, 0 },
};

int
snp_vcpu_type_sig(const char *name, uint32_t *sig)
{
	size_t i;

	if (name == NULL || sig == NULL)
		return SNP_E_ARGUMENT;
	for (i = 0; i < sizeof(vcpu_types) / sizeof(vcpu_types[0]); i++) {
		if (strcmp(vcpu_types[i].name, name) == 0) {
			*sig = snp_vcpu_sig(vcpu_types[i].family, vcpu_types[i].model,
					    vcpu_types[i].stepping);
			return SNP_OK;
		}
	}
	return SNP_E_NOT_FOUND;
}

const char *
snp_vcpu_type_name(size_t i)
{
	return i < sizeof(vcpu_types) / sizeof(vcpu_types[0]) ? vcpu_types[i].name : NULL;
}
