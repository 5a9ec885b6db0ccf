/* Status classes and the error-filling helpers every libsnp module uses. */
#include "snp/internal.h"

#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char *
snp_status_class(int status)
{
	switch (status) {
	case SNP_OK: return "ok";
	case SNP_E_FORMAT: return "format";
	case SNP_E_SIGNATURE: return "signature";
	case SNP_E_CHAIN: return "chain";
	case SNP_E_EXPIRED: return "expired";
	case SNP_E_REVOKED: return "revoked";
	case SNP_E_TCB: return "tcb";
	case SNP_E_CHIP_ID: return "chip_id";
	case SNP_E_SIGNING_KEY: return "signing_key";
	case SNP_E_PRODUCT: return "product";
	case SNP_E_NOMEM: return "nomem";
	case SNP_E_ARGUMENT: return "argument";
	case SNP_E_IO: return "io";
	case SNP_E_INTERNAL: return "internal";
	case SNP_E_NOT_FOUND: return "not_found";
	case SNP_E_UNAVAILABLE: return "unavailable";
	case SNP_E_FIRMWARE: return "firmware";
	case SNP_E_BUSY: return "busy";
	case SNP_E_CONFLICT: return "conflict";
	default: return "unknown";
	}
}

int
snp_fail(snp_error *err, int status, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return status;
	err->status = status;
	va_start(ap, fmt);
	(void)vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
	return status;
}

void
snp_fail_append_openssl(snp_error *err)
{
	unsigned long e = ERR_peek_error();
	char buf[160];
	size_t used;

	if (err != NULL && e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		used = strnlen(err->detail, sizeof(err->detail));
		if (used < sizeof(err->detail) - 1)
			(void)snprintf(err->detail + used, sizeof(err->detail) - used, " (%s)", buf);
	}
	ERR_clear_error();
}

int
snp_asn1_time(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		ERR_clear_error();
		return -1;
	}
	*out = timegm(&tm);
	return 0;
}

bool
snp_all_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}
