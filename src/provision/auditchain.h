/*
 * auditchain — the hash chain of provd's audit log, shared by provd (which
 * writes it) and `nitride audit verify` (which checks it).
 *
 * The log is JSON lines.  Record n (n = 1, 2, …) is one compact JSON object on
 * one line whose "seq" is n and whose "prev" is the lowercase hex SHA-256 of
 * line n-1 exactly as written (without its newline); record 1 has 64 zeros.
 * Editing, removing, inserting or reordering any record breaks the chain at
 * the next record; an edit of the last record or a truncated tail shows only
 * against a head (the last line's hash) kept elsewhere.
 */
#ifndef NITRIDE_PROVISION_AUDITCHAIN_H
#define NITRIDE_PROVISION_AUDITCHAIN_H

#include <stddef.h>

#define AUDIT_HASH_HEX 65u

/* Check the whole log in buf[0..len).  Returns 0 with *records and head (the
 * hash of the last line; 64 zeros for an empty log), or -1 with why naming
 * the first bad line. */
__attribute__((warn_unused_result)) int audit_chain_verify(const char *buf, size_t len,
							   size_t *records,
							   char head[AUDIT_HASH_HEX], char *why,
							   size_t whylen);

/* Hex SHA-256 of a line (without its newline). */
void audit_line_hash(const char *line, size_t len, char out[AUDIT_HASH_HEX]);

#endif
