/*
 * The SEV hashes table of measured direct boot: QEMU writes the SHA-256 of
 * the kernel, initrd and command line it loads into a table inside the
 * firmware's reserved page, and OVMF refuses to boot anything that does not
 * match.  The layout must be byte-identical to QEMU's (target/i386/sev.c).
 */
#include "snp/internal.h"

#include <nitride/snp_measure.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define TABLE_LEN 168u /* header (GUID + u16) and three 50-byte entries */
#define ENTRY_LEN 50u  /* GUID + u16 length + SHA-256 */

static const uint8_t guid_table_header[16] = { 0x06, 0xd6, 0x38, 0x94, 0x22, 0x4f, 0xc9, 0x4c,
					       0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21 };
static const uint8_t guid_cmdline[16] = { 0xd8, 0x2d, 0xd0, 0x97, 0x20, 0xbd, 0x94, 0x4c,
					  0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a };
static const uint8_t guid_initrd[16] = { 0x31, 0xf7, 0xba, 0x44, 0x2f, 0x3a, 0xd7, 0x4b,
					 0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d };
static const uint8_t guid_kernel[16] = { 0x37, 0x94, 0xe7, 0x4d, 0xd2, 0xab, 0x7f, 0x42,
					 0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b };

int
snp_sha256(const uint8_t *data, size_t len, uint8_t out[SNP_SHA256_LEN])
{
	static const uint8_t empty = 0;
	unsigned int n = 0;

	if (out == NULL || (data == NULL && len > 0))
		return SNP_E_ARGUMENT;
	if (EVP_Digest(data != NULL ? data : &empty, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != SNP_SHA256_LEN)
		return SNP_E_INTERNAL;
	return SNP_OK;
}

int
snp_sha256_file(const char *path, uint8_t out[SNP_SHA256_LEN], snp_error *err)
{
	EVP_MD_CTX *ctx = NULL;
	FILE *f = NULL;
	uint8_t buf[65536];
	unsigned int n = 0;
	size_t got;
	int r;

	if (path == NULL || out == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_sha256_file: NULL argument");
		goto out;
	}
	if ((f = fopen(path, "rbe")) == NULL) {
		r = snp_fail(err, SNP_E_IO, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = snp_fail(err, SNP_E_INTERNAL, "SHA-256 unavailable");
		goto out;
	}
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (EVP_DigestUpdate(ctx, buf, got) != 1) {
			r = snp_fail(err, SNP_E_INTERNAL, "SHA-256 update failed");
			goto out;
		}
	}
	if (ferror(f)) {
		r = snp_fail(err, SNP_E_IO, "%s: read error", path);
		goto out;
	}
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != SNP_SHA256_LEN) {
		r = snp_fail(err, SNP_E_INTERNAL, "SHA-256 final failed");
		goto out;
	}
	r = SNP_OK;
out:
	EVP_MD_CTX_free(ctx);
	if (f != NULL)
		fclose(f);
	return r;
}

int
snp_sev_hash_cmdline(const char *cmdline, uint8_t out[SNP_SHA256_LEN])
{
	static const uint8_t nul = 0;
	EVP_MD_CTX *ctx = NULL;
	unsigned int n = 0;
	int r = SNP_E_INTERNAL;

	if (out == NULL)
		return SNP_E_ARGUMENT;
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	if (cmdline != NULL && EVP_DigestUpdate(ctx, cmdline, strlen(cmdline)) != 1)
		goto out;
	if (EVP_DigestUpdate(ctx, &nul, 1) != 1 || EVP_DigestFinal_ex(ctx, out, &n) != 1 ||
	    n != SNP_SHA256_LEN)
		goto out;
	r = SNP_OK;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

static void
put_entry(uint8_t *p, const uint8_t guid[16], const uint8_t hash[SNP_SHA256_LEN])
{
	memcpy(p, guid, 16);
	p[16] = (uint8_t)ENTRY_LEN;
	p[17] = 0;
	memcpy(p + 18, hash, SNP_SHA256_LEN);
}

void
snp_sev_hashes_table(const uint8_t kernel[SNP_SHA256_LEN], const uint8_t initrd[SNP_SHA256_LEN],
		     const uint8_t cmdline[SNP_SHA256_LEN], uint8_t out[SNP_SEV_HASHES_TABLE_SIZE])
{
	memset(out, 0, SNP_SEV_HASHES_TABLE_SIZE);
	memcpy(out, guid_table_header, 16);
	out[16] = (uint8_t)TABLE_LEN;
	out[17] = 0;
	/* The order is QEMU's: command line, initrd, kernel. */
	put_entry(out + 18, guid_cmdline, cmdline);
	put_entry(out + 18 + ENTRY_LEN, guid_initrd, initrd);
	put_entry(out + 18 + 2 * ENTRY_LEN, guid_kernel, kernel);
}

int
snp_sev_hashes_page(const uint8_t table[SNP_SEV_HASHES_TABLE_SIZE], uint32_t offset,
		    uint8_t out[SNP_PAGE_SIZE])
{
	if (table == NULL || out == NULL || offset > SNP_PAGE_SIZE - SNP_SEV_HASHES_TABLE_SIZE)
		return SNP_E_ARGUMENT;
	memset(out, 0, SNP_PAGE_SIZE);
	memcpy(out + offset, table, SNP_SEV_HASHES_TABLE_SIZE);
	return SNP_OK;
}
