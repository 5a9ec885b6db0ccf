/*
 * AMD Key Distribution Service URLs (reference/snp-format.md §8).  Pure string
 * builders: nothing here touches the network.
 *
 * Every builder writes a NUL-terminated URL into out[0..outlen) or fails; it
 * never truncates.  On failure out is left as "" when outlen > 0.
 */
#include "snp/internal.h"

#include "common/hex.h"

#include <stdarg.h>
#include <stdio.h>

/* Leading bytes of CHIP_ID that name a Turin chip (its hwID); the rest are zero. */
#define KDS_TURIN_HWID_LEN SNP_HWID_LEN_TURIN

/*
 * printf into out[0..outlen).  Returns SNP_OK, or SNP_E_ARGUMENT when the result
 * (with its NUL) does not fit, in which case out becomes "".  outlen must be > 0.
 */
static int
__attribute__((format(printf, 3, 4)))
url_printf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return SNP_E_ARGUMENT;
	}
	return SNP_OK;
}

/* Common argument checks: out usable, product known.  Sets *name on success. */
static int
check_common(snp_product p, char *out, size_t outlen, const char **name)
{
	if (out == NULL || outlen == 0)
		return SNP_E_ARGUMENT;
	out[0] = '\0';
	if ((*name = snp_product_kds_name(p)) == NULL)
		return SNP_E_PRODUCT;
	return SNP_OK;
}

/* The SPL query string for `p`'s TCB layout (Turin adds fmcSPL first).  Fields are
 * printed in decimal without padding, as go-sev-guest does. */
static int
spl_query(snp_product p, const snp_tcb *tcb, char *q, size_t qlen)
{
	if (p == SNP_PRODUCT_TURIN)
		return url_printf(q, qlen, "fmcSPL=%u&blSPL=%u&teeSPL=%u&snpSPL=%u&ucodeSPL=%u",
				  (unsigned)tcb->fmc, (unsigned)tcb->bootloader, (unsigned)tcb->tee,
				  (unsigned)tcb->snp, (unsigned)tcb->microcode);
	return url_printf(q, qlen, "blSPL=%u&teeSPL=%u&snpSPL=%u&ucodeSPL=%u",
			  (unsigned)tcb->bootloader, (unsigned)tcb->tee, (unsigned)tcb->snp,
			  (unsigned)tcb->microcode);
}

int
snp_kds_vcek_url(snp_product p, const uint8_t chip_id[SNP_CHIP_ID_LEN], const snp_tcb *tcb,
		 char *out, size_t outlen)
{
	char hwid_hex[2 * SNP_CHIP_ID_LEN + 1];
	char query[128];
	const char *name = NULL;
	size_t hwid_len;
	int r;

	if (chip_id == NULL || tcb == NULL) {
		if (out != NULL && outlen > 0)
			out[0] = '\0';
		return SNP_E_ARGUMENT;
	}
	if ((r = check_common(p, out, outlen, &name)) != SNP_OK)
		return r;
	if (p == SNP_PRODUCT_TURIN) {
		/* Turin's hwID is CHIP_ID[0..7]; anything after it means this is not a
		 * Turin CHIP_ID (or not one firmware wrote). */
		hwid_len = KDS_TURIN_HWID_LEN;
		if (!snp_all_zero(chip_id + KDS_TURIN_HWID_LEN, SNP_CHIP_ID_LEN - KDS_TURIN_HWID_LEN))
			return SNP_E_CHIP_ID;
	} else {
		hwid_len = SNP_CHIP_ID_LEN;
	}
	/* MASK_CHIP_ID=1 makes firmware report zeros: there is no VCEK to name. */
	if (snp_all_zero(chip_id, hwid_len))
		return SNP_E_CHIP_ID;
	hex_encode(chip_id, hwid_len, hwid_hex);
	if ((r = spl_query(p, tcb, query, sizeof(query))) != SNP_OK)
		return SNP_E_INTERNAL; /* five u8 values always fit */
	return url_printf(out, outlen, "%s/vcek/v1/%s/%s?%s", SNP_KDS_BASE_URL, name, hwid_hex,
			  query);
}

int
snp_kds_vlek_url(snp_product p, const snp_tcb *tcb, char *out, size_t outlen)
{
	char query[128];
	const char *name = NULL;
	int r;

	if (tcb == NULL) {
		if (out != NULL && outlen > 0)
			out[0] = '\0';
		return SNP_E_ARGUMENT;
	}
	if ((r = check_common(p, out, outlen, &name)) != SNP_OK)
		return r;
	if ((r = spl_query(p, tcb, query, sizeof(query))) != SNP_OK)
		return SNP_E_INTERNAL;
	return url_printf(out, outlen, "%s/vlek/v1/%s/cert?%s", SNP_KDS_BASE_URL, name, query);
}

int
snp_kds_chain_url(snp_product p, bool vlek, char *out, size_t outlen)
{
	const char *name = NULL;
	int r;

	if ((r = check_common(p, out, outlen, &name)) != SNP_OK)
		return r;
	return url_printf(out, outlen, "%s/%s/v1/%s/cert_chain", SNP_KDS_BASE_URL,
			  vlek ? "vlek" : "vcek", name);
}

int
snp_kds_crl_url(snp_product p, bool vlek, char *out, size_t outlen)
{
	const char *name = NULL;
	int r;

	if ((r = check_common(p, out, outlen, &name)) != SNP_OK)
		return r;
	return url_printf(out, outlen, "%s/%s/v1/%s/crl", SNP_KDS_BASE_URL, vlek ? "vlek" : "vcek",
			  name);
}
