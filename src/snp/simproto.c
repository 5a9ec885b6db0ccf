#include "snp/simproto.h"

#include "common/rbuf.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Wait until fd is ready for `events`, at most SIMPROTO_TIMEOUT_MS. */
static int
wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	do {
		n = poll(&p, 1, SIMPROTO_TIMEOUT_MS);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	return 0;
}

static int
write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n;
		int r;

		if ((r = wait_fd(fd, POLLOUT)) != 0)
			return r;
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes; -EPIPE if the stream ends first. */
static int
read_all(int fd, uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n;
		int r;

		if ((r = wait_fd(fd, POLLIN)) != 0)
			return r;
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
simproto_write(int fd, uint16_t type, const uint8_t *payload, size_t len)
{
	uint8_t hdr[SIMPROTO_HDR_SIZE];
	int r;

	if (len > SIMPROTO_MAX_PAYLOAD || (len > 0 && payload == NULL))
		return -EMSGSIZE;
	memcpy(hdr, SIMPROTO_MAGIC, 4);
	hdr[4] = SIMPROTO_VERSION & 0xff;
	hdr[5] = SIMPROTO_VERSION >> 8;
	hdr[6] = (uint8_t)type;
	hdr[7] = (uint8_t)(type >> 8);
	put_u32le(hdr + 8, (uint32_t)len);
	if ((r = write_all(fd, hdr, sizeof(hdr))) != 0)
		return r;
	return len > 0 ? write_all(fd, payload, len) : 0;
}

int
simproto_read(int fd, uint16_t *type, uint8_t **payload, size_t *len, size_t max)
{
	uint8_t hdr[SIMPROTO_HDR_SIZE];
	uint8_t *buf = NULL;
	uint32_t plen;
	struct rbuf b;
	int r;

	if (max > SIMPROTO_MAX_PAYLOAD)
		max = SIMPROTO_MAX_PAYLOAD;
	if ((r = read_all(fd, hdr, sizeof(hdr))) != 0)
		return r;
	rbuf_init(&b, hdr, sizeof(hdr));
	if (memcmp(hdr, SIMPROTO_MAGIC, 4) != 0 || hdr[4] != SIMPROTO_VERSION || hdr[5] != 0)
		return -EPROTO;
	if (rbuf_skip(&b, 8) != 0 || rbuf_get_u32le(&b, &plen) != 0 || plen > max)
		return -EPROTO;
	if (plen > 0) {
		if ((buf = malloc(plen)) == NULL)
			return -ENOMEM;
		if ((r = read_all(fd, buf, plen)) != 0) {
			free(buf);
			return r == -EPIPE ? -EPROTO : r;
		}
	}
	*type = (uint16_t)(hdr[6] | hdr[7] << 8);
	*payload = buf;
	*len = plen;
	return 0;
}
