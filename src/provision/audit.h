/*
 * audit — provd's append-only audit log (format in auditchain.h).
 *
 * One record per release decision and per admin change.  Appends are
 * serialised by a mutex and written with one write(2) + fdatasync per record
 * (O_APPEND), so a reader never sees half a record.
 */
#ifndef NITRIDE_PROVISION_AUDIT_H
#define NITRIDE_PROVISION_AUDIT_H

#include <stddef.h>

#include <jansson.h>

#include "provision/auditchain.h"

typedef struct audit_log audit_log;

/* Open (creating, mode 0600) the log at path; the existing chain is verified
 * and continued.  Returns 0 or -1 with err (a broken chain refuses to start:
 * the operator must move the file aside). */
__attribute__((warn_unused_result)) int audit_open(const char *path, audit_log **out, char *err,
						   size_t errlen);
void audit_close(audit_log *a);

/* Append `rec` (borrowed; "seq" and "prev" are set here, first in the line).
 * Returns 0 or -1. */
__attribute__((warn_unused_result)) int audit_append(audit_log *a, json_t *rec);

/* Records so far and the head hash. */
void audit_head(audit_log *a, size_t *records, char head[AUDIT_HASH_HEX]);

/* The path given to audit_open (borrowed). */
const char *audit_path(const audit_log *a);

#endif
