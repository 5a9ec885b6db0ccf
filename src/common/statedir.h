/*
 * statedir — a daemon's state directory (DESIGN.md §7): created 0700 if it is
 * missing, refused if it is not a directory or group/other can reach it.
 */
#ifndef NITRIDE_COMMON_STATEDIR_H
#define NITRIDE_COMMON_STATEDIR_H

#include <stddef.h>

/* Returns 0, or -1 with "state_dir DIR: why (what to do)" in err[errlen]. */
__attribute__((warn_unused_result)) int state_dir_ensure(const char *dir, char *err,
							 size_t errlen);

#endif
