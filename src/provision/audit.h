/*
 * audit — provd's append-only audit log (format in auditchain.h).
 *
 * One record per release decision and per admin change.  Appends are
 * serialised by a mutex and written with one write(2) each (O_APPEND), so a
 * reader never sees half a record.
 *
 * Durability is group-committed: a syncer thread runs fdatasync over every
 * record written before the sync started, so concurrent records share one
 * flush, and a caller may compute while its record is being flushed
 * (audit_write, then audit_wait before acting on the decision).  A failed
 * fdatasync marks the log failed for good: Linux may report a write-back
 * error only once, so no later flush can prove those records durable, and
 * every later wait and append fails (provd then releases nothing until it
 * is restarted and the log checked).
 */
#ifndef NITRIDE_PROVISION_AUDIT_H
#define NITRIDE_PROVISION_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "provision/auditchain.h"

typedef struct audit_log audit_log;

/* Open (creating, mode 0600) the log at path; the existing chain is verified
 * and continued, and the syncer thread started.  Returns 0 or -1 with err (a
 * broken chain refuses to start: the operator must move the file aside). */
__attribute__((warn_unused_result)) int audit_open(const char *path, audit_log **out, char *err,
						   size_t errlen);
/* Flushes what was written, stops the syncer and closes; NULL is accepted. */
void audit_close(audit_log *a);

/* Append `rec` (borrowed; "seq" and "prev" are set here, first in the line)
 * and wait until it is durable.  Returns 0 or -1 (not written, or not
 * durable: treat as "not logged"). */
__attribute__((warn_unused_result)) int audit_append(audit_log *a, json_t *rec);

/* Write `rec` (as audit_append) without waiting for it to be durable; *ticket
 * names it for audit_wait.  The record is in the file and the chain when this
 * returns 0; nothing that depends on it may leave the process before
 * audit_wait(ticket) returned 0. */
__attribute__((warn_unused_result)) int audit_write(audit_log *a, json_t *rec, uint64_t *ticket);

/* Block until the record `ticket` (and every one before it) is durable.
 * Returns 0, or -1 when a flush failed (the log is then failed for good). */
__attribute__((warn_unused_result)) int audit_wait(audit_log *a, uint64_t ticket);

/* Records so far and the head hash. */
void audit_head(audit_log *a, size_t *records, char head[AUDIT_HASH_HEX]);

/* The path given to audit_open (borrowed). */
const char *audit_path(const audit_log *a);

/* Tests only: replace fdatasync(fd) with fn(fd, arg) (0 = durable, else failed).
 * Call before the first write. */
typedef int (*audit_sync_fn)(int fd, void *arg);
void audit_set_sync(audit_log *a, audit_sync_fn fn, void *arg);

#endif
