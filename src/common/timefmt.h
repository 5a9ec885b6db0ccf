/*
 * timefmt — RFC 3339 instants (UTC on output).
 */
#ifndef NITRIDE_COMMON_TIMEFMT_H
#define NITRIDE_COMMON_TIMEFMT_H

#include <time.h>

#define RFC3339_LEN 21 /* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

/* Parse "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" ('t'/'z' and a space separator
 * accepted, fractions ignored).  Returns 0, or -1 if the text is not exactly
 * one such instant with in-range fields. */
__attribute__((warn_unused_result)) int rfc3339_parse(const char *s, time_t *out);
/* Format t as "YYYY-MM-DDTHH:MM:SSZ" into out[RFC3339_LEN]. */
void rfc3339_format(time_t t, char out[RFC3339_LEN]);

#endif
