/*
 * sim_num — the one place snpsimd turns text into numbers and bytes.
 */
#ifndef NITRIDE_SIM_NUM_H
#define NITRIDE_SIM_NUM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse an unsigned integer: decimal, or hexadecimal with a "0x"/"0X" prefix.
 * The whole string must be the number (no sign, no whitespace, no suffix) and
 * at most `max`.  Returns 0 and sets *out, or -1 (out untouched).
 */
__attribute__((warn_unused_result)) int sim_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* Decimal only (no prefix), as in URL query strings; same contract. */
__attribute__((warn_unused_result)) int sim_parse_dec(const char *s, uint64_t max, uint64_t *out);

/*
 * Parse exactly 2*n hex digits (an optional "0x" prefix is allowed) into out[n] (n <= 64).
 * Returns 0, or -1 (out untouched).
 */
__attribute__((warn_unused_result)) int sim_parse_hex(const char *s, uint8_t *out, size_t n);

#endif
