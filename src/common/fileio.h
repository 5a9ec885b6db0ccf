/*
 * fileio — read a whole file with a hard size cap.
 */
#ifndef NITRIDE_COMMON_FILEIO_H
#define NITRIDE_COMMON_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/*
 * Read `path` into a fresh malloc'ed buffer of at most `cap` bytes.
 * Returns 0 and sets *out (caller frees) and *len; on failure returns -errno
 * (-EFBIG when the file exceeds cap) and leaves *out untouched.  The buffer
 * gets one extra NUL byte after *len so text parsers may treat it as a string.
 */
__attribute__((warn_unused_result)) int file_read_all(const char *path, size_t cap, uint8_t **out,
						      size_t *len);

#endif
