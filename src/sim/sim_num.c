#include "sim/sim_num.h"

#include "common/hex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int
parse_base(const char *s, int base, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end = NULL;

	/* strtoull would skip whitespace and accept a sign; we do not. */
	if (s == NULL || s[0] == '\0')
		return -1;
	if (base == 16 ? strchr("0123456789abcdefABCDEF", s[0]) == NULL
		       : (s[0] < '0' || s[0] > '9'))
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno != 0 || end == s || *end != '\0' || v > max)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

int
sim_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (s != NULL && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return parse_base(s + 2, 16, max, out);
	return parse_base(s, 10, max, out);
}

int
sim_parse_dec(const char *s, uint64_t max, uint64_t *out)
{
	return parse_base(s, 10, max, out);
}

int
sim_parse_hex(const char *s, uint8_t *out, size_t n)
{
	uint8_t tmp[64];

	if (s == NULL)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (n > sizeof(tmp) || strlen(s) != 2 * n || hex_decode(s, tmp, n) != 0)
		return -1;
	memcpy(out, tmp, n);
	return 0;
}
