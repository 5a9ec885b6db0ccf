#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int
file_read_all(const char *path, size_t cap, uint8_t **out, size_t *len)
{
	uint8_t *buf = NULL;
	size_t used = 0;
	int fd = -1, r = 0;

	if (path == NULL || out == NULL || len == NULL || cap == SIZE_MAX)
		return -EINVAL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		r = -errno;
		goto out;
	}
	if ((buf = malloc(cap + 1)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* Read up to cap + 1 bytes: one byte more than allowed proves the file too big,
	 * whatever st_size claims (pipes, /proc, files growing under us). */
	for (;;) {
		ssize_t n;

		if (used == cap + 1)
			break;
		n = read(fd, buf + used, cap + 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	if (used > cap) {
		r = -EFBIG;
		goto out;
	}
	buf[used] = '\0';
	*out = buf;
	*len = used;
	buf = NULL;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}
