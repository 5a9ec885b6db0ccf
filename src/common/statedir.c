#include "common/statedir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int
state_dir_ensure(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		(void)snprintf(err, errlen, "state_dir %s: cannot create: %s", dir, strerror(errno));
		return -1;
	}
	/* stat, not lstat: systemd's DynamicUser= makes state directories symlinks. */
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		(void)snprintf(err, errlen, "state_dir %s: not a directory", dir);
		return -1;
	}
	if ((st.st_mode & 077) != 0) {
		(void)snprintf(err, errlen, "state_dir %s: mode %03o, must be 0700 (chmod 700 %s)", dir,
			       (unsigned)(st.st_mode & 0777), dir);
		return -1;
	}
	return 0;
}
