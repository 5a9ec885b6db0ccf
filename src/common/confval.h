/*
 * confval — the value syntaxes shared by every daemon's configuration file.
 * Each returns 0, or -1 when the text is not exactly one value of the kind
 * (the caller names the file, line and key in its message).
 */
#ifndef NITRIDE_COMMON_CONFVAL_H
#define NITRIDE_COMMON_CONFVAL_H

#include <stdbool.h>
#include <stddef.h>

/* Copy a string into a fixed buffer; -1 if it does not fit. */
int conf_str(char *dst, size_t cap, const char *v);
/* Decimal digits only, in [lo, hi]. */
__attribute__((warn_unused_result)) int conf_uint(const char *v, unsigned long lo,
						  unsigned long hi, unsigned *out);
/* yes/no, true/false, on/off, 1/0. */
__attribute__((warn_unused_result)) int conf_bool(const char *v, bool *out);
/* "HOST:PORT" or "[V6]:PORT", port 0..65535. */
__attribute__((warn_unused_result)) int conf_hostport(const char *v, char *host, size_t hostcap,
						      unsigned *port);

/* A loopback host ("localhost", 127.0.0.0/8, ::1): where plain HTTP is allowed. */
bool conf_is_loopback(const char *host);

#endif
