/*
 * jcs — RFC 8785 JSON Canonicalization Scheme for jansson values.
 *
 * Supported: objects, arrays, strings, integers, true, false, null.  Real
 * numbers are refused (-EDOM): Nitride's canonical documents (the REPORT_DATA
 * binding, JWK thumbprints, policy digests) never need them, and RFC 8785's
 * ECMAScript number formatting is easy to get subtly wrong.  Integers are
 * accepted only within ±2^53 (exactly representable as an IEEE double, which is
 * what RFC 8785 serialises).
 *
 * Object members are sorted by their names as arrays of UTF-16 code units;
 * strings are escaped as RFC 8785 §3.2.2.2 says (\b \t \n \f \r \" \\ and
 * \u00xx with lowercase hex for the other controls; everything else literal
 * UTF-8).  No whitespace.
 */
#ifndef NITRIDE_COMMON_JCS_H
#define NITRIDE_COMMON_JCS_H

#include <stddef.h>
#include <jansson.h>

#define JCS_MAX_DEPTH 32
#define JCS_MAX_OUTPUT (1024u * 1024u)

/*
 * Canonicalise `v` into a fresh malloc'ed, NUL-terminated buffer (*out, caller
 * frees; *len excludes the NUL).  Returns 0, -EDOM for a real number or an
 * integer beyond ±2^53, -ELOOP deeper than JCS_MAX_DEPTH, -EFBIG beyond
 * JCS_MAX_OUTPUT, -EILSEQ for a string that is not valid UTF-8, -EINVAL for a
 * NULL value, -ENOMEM.  Outputs are written only on success.
 */
__attribute__((warn_unused_result)) int jcs_serialize(const json_t *v, char **out, size_t *len);

/* Compare two NUL-terminated UTF-8 strings by UTF-16 code units (the RFC 8785
 * member order): <0, 0, >0.  Invalid UTF-8 compares by bytes after the valid prefix. */
int jcs_compare_keys(const char *a, const char *b);

#endif
