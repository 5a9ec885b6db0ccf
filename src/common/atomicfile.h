/*
 * atomicfile — write a whole file so that readers see the old or the new
 * content, never a half-written one (temp file + fsync + rename + fsync dir).
 */
#ifndef NITRIDE_COMMON_ATOMICFILE_H
#define NITRIDE_COMMON_ATOMICFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Replace `path` with `len` bytes of `data`, created with `mode`.  Returns 0 or
 * -errno; on failure `path` is untouched and no temporary file is left. */
__attribute__((warn_unused_result)) int atomic_write_file(const char *path, const uint8_t *data,
							  size_t len, mode_t mode);

#endif
