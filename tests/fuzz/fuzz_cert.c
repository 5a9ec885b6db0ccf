/*
 * libFuzzer target: snp_cert_parse (DER or PEM, with AMD's extensions).
 *
 * Properties checked (abort() on violation):
 *  - parse never crashes and fails only with a negative status, leaving *out alone;
 *  - on success every accessor works and returns values inside its documented
 *    range (role and product in their enums, hwID 0/8/64 bytes, a non-empty DER);
 *  - the DER the object hands out parses again to a certificate with the same
 *    fingerprint and role.
 */
#include <nitride/snp.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static void
consume_bytes(const uint8_t *p, size_t n)
{
	uint64_t acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc = acc * 31 + p[i];
	sink ^= acc;
}

static void
call_accessors(const snp_cert *c)
{
	snp_cert_role role = snp_cert_get_role(c);
	snp_product product = snp_cert_product(c);
	const char *name;
	const uint8_t *p;
	uint8_t digest[32];
	size_t len = 12345;
	snp_tcb tcb;
	int rc;

	if ((unsigned)role > SNP_ROLE_VLEK || (unsigned)product >= SNP_PRODUCT_COUNT)
		abort();
	if (snp_cert_role_name(role) == NULL)
		abort();
	sink ^= (uint64_t)strlen(snp_cert_role_name(role));
	if ((name = snp_cert_product_name(c)) != NULL)
		sink ^= (uint64_t)strlen(name);
	sink ^= (uint64_t)(int64_t)snp_cert_struct_version(c);

	memset(&tcb, 0, sizeof(tcb));
	rc = snp_cert_tcb(c, &tcb);
	if (rc != SNP_OK && rc != SNP_E_NOT_FOUND)
		abort();
	sink ^= tcb.raw;

	p = snp_cert_hwid(c, &len);
	if (p == NULL) {
		if (len != 0)
			abort();
	} else {
		if (len != SNP_HWID_LEN_LEGACY && len != SNP_HWID_LEN_TURIN)
			abort();
		consume_bytes(p, len);
	}

	snp_cert_spki_sha256(c, digest);
	consume_bytes(digest, sizeof(digest));
	snp_cert_fingerprint(c, digest);
	consume_bytes(digest, sizeof(digest));
	sink ^= (uint64_t)snp_cert_not_before(c);
	sink ^= (uint64_t)snp_cert_not_after(c);
	p = snp_cert_der(c, &len);
	if (p == NULL || len == 0)
		abort();
	consume_bytes(p, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snp_cert *c = NULL, *again = NULL;
	snp_error err;
	uint8_t fp1[32], fp2[32];
	const uint8_t *der;
	size_t der_len = 0;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = snp_cert_parse(data, size, &c, &err);
	if (rc != SNP_OK) {
		if (c != NULL || rc >= 0 || err.status != rc)
			abort();
		return 0;
	}
	if (c == NULL)
		abort();
	call_accessors(c);

	der = snp_cert_der(c, &der_len);
	if (snp_cert_parse(der, der_len, &again, NULL) != SNP_OK)
		abort();
	snp_cert_fingerprint(c, fp1);
	snp_cert_fingerprint(again, fp2);
	if (memcmp(fp1, fp2, sizeof(fp1)) != 0 ||
	    snp_cert_get_role(c) != snp_cert_get_role(again))
		abort();

	snp_cert_free(again);
	snp_cert_free(c);
	return 0;
}
