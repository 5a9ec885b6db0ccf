/* Products (Milan, Genoa, Turin) and their TCB_VERSION layouts. */
#include "snp/internal.h"

#include <strings.h>
#include <string.h>

static const struct {
	const char *name;     /* lowercase, for files and JSON */
	const char *kds_name; /* AMD's spelling */
} products[SNP_PRODUCT_COUNT] = {
	[SNP_PRODUCT_UNKNOWN] = { "unknown", NULL },
	[SNP_PRODUCT_MILAN] = { "milan", "Milan" },
	[SNP_PRODUCT_GENOA] = { "genoa", "Genoa" },
	[SNP_PRODUCT_TURIN] = { "turin", "Turin" },
};

const char *
snp_product_name(snp_product p)
{
	if ((unsigned)p >= SNP_PRODUCT_COUNT)
		return products[SNP_PRODUCT_UNKNOWN].name;
	return products[p].name;
}

const char *
snp_product_kds_name(snp_product p)
{
	if ((unsigned)p >= SNP_PRODUCT_COUNT)
		return NULL;
	return products[p].kds_name;
}

snp_product
snp_product_from_name(const char *name)
{
	size_t len;
	int p;

	if (name == NULL)
		return SNP_PRODUCT_UNKNOWN;
	/* AMD writes the stepping after a dash in VCEKs ("Milan-B0"); the product is
	 * what comes before it. */
	len = strcspn(name, "-");
	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		if (strlen(products[p].name) == len && strncasecmp(name, products[p].name, len) == 0)
			return (snp_product)p;
	}
	return SNP_PRODUCT_UNKNOWN;
}

snp_product
snp_product_from_cpuid(uint8_t fam_id, uint8_t mod_id)
{
	/* Family 19h: Zen 3 (Milan, models 00h-0Fh) and Zen 4 (Genoa 10h-1Fh; the
	 * Genoa-family parts at A0h-AFh verify against the Genoa chain).
	 * Family 1Ah: Zen 5 (Turin, models 00h-11h). */
	if (fam_id == 0x19) {
		if (mod_id <= 0x0F)
			return SNP_PRODUCT_MILAN;
		if ((mod_id >= 0x10 && mod_id <= 0x1F) || (mod_id >= 0xA0 && mod_id <= 0xAF))
			return SNP_PRODUCT_GENOA;
	} else if (fam_id == 0x1A) {
		if (mod_id <= 0x11)
			return SNP_PRODUCT_TURIN;
	}
	return SNP_PRODUCT_UNKNOWN;
}

void
snp_tcb_decode(uint64_t raw, snp_product product, snp_tcb *out)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(raw >> (8 * i));
	memset(out, 0, sizeof(*out));
	out->raw = raw;
	if (product == SNP_PRODUCT_TURIN) {
		out->has_fmc = true;
		out->fmc = b[0];
		out->bootloader = b[1];
		out->tee = b[2];
		out->snp = b[3];
	} else {
		out->bootloader = b[0];
		out->tee = b[1];
		out->snp = b[6];
	}
	out->microcode = b[7];
}

uint64_t
snp_tcb_encode(const snp_tcb *tcb, snp_product product)
{
	uint64_t raw;

	if (product == SNP_PRODUCT_TURIN)
		raw = (uint64_t)tcb->fmc | (uint64_t)tcb->bootloader << 8 |
		      (uint64_t)tcb->tee << 16 | (uint64_t)tcb->snp << 24;
	else
		raw = (uint64_t)tcb->bootloader | (uint64_t)tcb->tee << 8 |
		      (uint64_t)tcb->snp << 48;
	return raw | (uint64_t)tcb->microcode << 56;
}
