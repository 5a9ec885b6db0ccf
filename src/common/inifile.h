/*
 * inifile — read a `key = value` configuration file with inih, with the file
 * size capped and every error naming the file and the line.
 */
#ifndef NITRIDE_COMMON_INIFILE_H
#define NITRIDE_COMMON_INIFILE_H

#include <stddef.h>

#define INIFILE_MAX (64u * 1024u)

/*
 * Called for each key.  Return 0 to accept it, or -1 after writing a reason
 * naming the key (not the location) into msg[msglen]; inifile_load adds
 * "path:line: " in front.
 */
typedef int (*inifile_handler)(void *arg, const char *section, const char *key,
			       const char *value, char *msg, size_t msglen);

/* Returns 0, or -1 with "path:line: reason" (or "path: reason") in err[errlen]. */
__attribute__((warn_unused_result)) int inifile_load(const char *path, inifile_handler handler,
						     void *arg, char *err, size_t errlen);

#endif
