/*
 * Helpers shared by the unit tests.
 */
#ifndef NITRIDE_TESTSUPPORT_H
#define NITRIDE_TESTSUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The vectors directory: $NITRIDE_VECTORS, else the build's default.  Never NULL. */
const char *ts_vectors_dir(void);
/* Read `rel` (relative to the vectors directory) into a malloc'ed buffer; fails the
 * test (cmocka fail_msg) if it cannot.  Caller frees. */
uint8_t *ts_read_vector(const char *rel, size_t *len);
/* Read an absolute or relative path; fails the test if it cannot. */
uint8_t *ts_read_file(const char *path, size_t *len);
/* Skip the whole test program (exit 77) with a message when the vectors are absent. */
void ts_require_vectors(void);
/* A new private directory <$NITRIDE_TEST_TMP or /tmp>/<tag>-<random>
 * (mkdtemp); fails the test if it cannot.  Caller frees the path and
 * removes what it put there. */
char *ts_scratch_dir(const char *tag);
/* Start `exe --config config` and wait (up to 10 s) until the Unix socket
 * `sock` accepts a connection; fails the test if it does not.  The pid. */
pid_t ts_daemon_start(const char *exe, const char *config, const char *sock);
/* SIGTERM the daemon and reap it; 0 if it exited with status 0 (a pid <= 0
 * is nothing to stop: 0). */
int ts_daemon_stop(pid_t pid);

#endif
