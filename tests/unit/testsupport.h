/*
 * Helpers shared by the unit tests.
 */
#ifndef NITRIDE_TESTSUPPORT_H
#define NITRIDE_TESTSUPPORT_H

#include <stddef.h>
#include <stdint.h>

/* The vectors directory: $NITRIDE_VECTORS, else the build's default.  Never NULL. */
const char *ts_vectors_dir(void);
/* Read `rel` (relative to the vectors directory) into a malloc'ed buffer; fails the
 * test (cmocka fail_msg) if it cannot.  Caller frees. */
uint8_t *ts_read_vector(const char *rel, size_t *len);
/* Read an absolute or relative path; fails the test if it cannot. */
uint8_t *ts_read_file(const char *path, size_t *len);
/* Skip the whole test program (exit 77) with a message when the vectors are absent. */
void ts_require_vectors(void);

#endif
