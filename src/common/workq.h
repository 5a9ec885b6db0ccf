/*
 * workq — a fixed pool of threads that run submitted jobs in order of
 * submission.  attestd's event loops hand the P-384 work of each attestation
 * to it, so that every core verifies whichever connection the request came in
 * on (docs/attestd.md, "Threads").
 */
#ifndef NITRIDE_COMMON_WORKQ_H
#define NITRIDE_COMMON_WORKQ_H

#include <stddef.h>

typedef struct workq workq;
typedef void workq_fn(void *arg);

/* Start `threads` threads (1..256).  0, or -1 with *out NULL. */
int workq_start(size_t threads, workq **out);

/* Queue fn(arg).  -1 if the queue is stopping (fn is then not run). */
int workq_submit(workq *q, workq_fn *fn, void *arg);

/* Run every job already queued, then stop and free the pool.  NULL-safe. */
void workq_stop(workq *q);

#endif
