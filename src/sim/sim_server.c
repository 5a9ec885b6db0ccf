/* snpsimd's Unix socket server (sim_server.h). */
#include "sim/sim_server.h"

#include "common/rbuf.h"
#include "sim/sim_log.h"
#include "snp/simproto.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>

struct sim_server {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int lfd;
	const struct sim_fw *fw;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	int conns[SIM_SERVER_MAX_CONN]; /* open connection fds, -1 when free */
	int nconns;
	unsigned long requests;
};

struct conn_arg {
	struct sim_server *srv;
	int slot;
	int fd;
};

/* SIM_MSG_ERROR: u32le snp_status, then text. */
static int
send_error(int fd, int code, const char *text)
{
	uint8_t buf[4 + 160];
	size_t n = strlen(text);

	if (n > sizeof(buf) - 4)
		n = sizeof(buf) - 4;
	put_u32le(buf, (uint32_t)code);
	memcpy(buf + 4, text, n);
	return simproto_write(fd, SIM_MSG_ERROR, buf, 4 + n);
}

static const char *
type_name(uint16_t t)
{
	switch (t) {
	case SIM_MSG_REPORT: return "report";
	case SIM_MSG_EXT_REPORT: return "extended report";
	case SIM_MSG_KEY: return "derived key";
	default: return "unknown";
	}
}

/* Answer one request.  Returns 0, or -1 when the connection should end. */
static int
handle(const struct sim_fw *fw, int fd, uint16_t type, const uint8_t *req, size_t len)
{
	uint8_t *out = NULL;
	size_t out_len = 0, tlen = 0;
	const uint8_t *table;
	uint32_t status;
	int r = -1;

	switch (type) {
	case SIM_MSG_REPORT:
	case SIM_MSG_EXT_REPORT:
		table = sim_fw_certtable(fw, &tlen);
		out_len = MSG_REPORT_RSP_SIZE + (type == SIM_MSG_EXT_REPORT ? tlen : 0);
		if ((out = malloc(out_len)) == NULL)
			goto out;
		if (sim_fw_report_msg(fw, req, len, out) != 0) {
			sim_log(SIM_LOG_WARN, "%s request of %zu bytes, MSG_REPORT_REQ has %u",
				type_name(type), len, MSG_REPORT_REQ_SIZE);
			r = send_error(fd, SNP_E_FORMAT, "MSG_REPORT_REQ must be 96 bytes") == 0 ? 0 : -1;
			goto out;
		}
		status = (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 |
			 (uint32_t)out[3] << 24;
		/* A refused extended request carries no table, as with the firmware. */
		if (type == SIM_MSG_EXT_REPORT) {
			if (status == SNP_FW_STATUS_SUCCESS)
				memcpy(out + MSG_REPORT_RSP_SIZE, table, tlen);
			else
				out_len = MSG_REPORT_RSP_SIZE;
		}
		sim_log(SIM_LOG_INFO, "%s: status 0x%02x (%s)", type_name(type), status,
			guestmsg_fw_status_name(status));
		r = simproto_write(fd, (uint16_t)(type | SIM_MSG_RESPONSE), out, out_len) == 0 ? 0 : -1;
		break;
	case SIM_MSG_KEY:
		out_len = MSG_KEY_RSP_SIZE;
		if ((out = malloc(out_len)) == NULL)
			goto out;
		if (sim_fw_key_msg(fw, req, len, out) != 0) {
			sim_log(SIM_LOG_WARN, "key request of %zu bytes, MSG_KEY_REQ has %u", len,
				MSG_KEY_REQ_SIZE);
			r = send_error(fd, SNP_E_FORMAT, "MSG_KEY_REQ must be 32 bytes") == 0 ? 0 : -1;
			goto out;
		}
		status = (uint32_t)out[0] | (uint32_t)out[1] << 8;
		sim_log(SIM_LOG_INFO, "derived key: status 0x%02x (%s)", status,
			guestmsg_fw_status_name(status));
		r = simproto_write(fd, SIM_MSG_KEY | SIM_MSG_RESPONSE, out, out_len) == 0 ? 0 : -1;
		break;
	default:
		sim_log(SIM_LOG_WARN, "unknown request type 0x%x", (unsigned)type);
		r = send_error(fd, SNP_E_FORMAT, "unknown request type") == 0 ? 0 : -1;
		break;
	}
out:
	if (out != NULL) {
		OPENSSL_cleanse(out, out_len); /* a key response holds a derived key */
		free(out);
	}
	return r;
}

unsigned
sim_server_serve_fd(const struct sim_fw *fw, int fd)
{
	unsigned n = 0;

	for (;;) {
		uint8_t *req = NULL;
		size_t len = 0;
		uint16_t type = 0;
		int e = simproto_read(fd, &type, &req, &len, SIM_SERVER_MAX_REQUEST);

		if (e == -EPIPE)
			break; /* the peer is done */
		if (e != 0) {
			sim_log(SIM_LOG_WARN, "connection: %s", e == -EPROTO ? "malformed frame" :
								  e == -ETIMEDOUT ? "timed out" : strerror(-e));
			if (e == -EPROTO)
				(void)send_error(fd, SNP_E_FORMAT, "malformed frame (magic, version or length)");
			break;
		}
		e = handle(fw, fd, type, req, len);
		free(req);
		if (e != 0)
			break;
		n++;
	}
	return n;
}

static void *
conn_thread(void *p)
{
	struct conn_arg *a = p;
	struct sim_server *srv = a->srv;
	unsigned n = sim_server_serve_fd(srv->fw, a->fd);

	pthread_mutex_lock(&srv->lock);
	(void)close(a->fd);
	srv->conns[a->slot] = -1;
	srv->nconns--;
	srv->requests += n;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
	free(a);
	return NULL;
}

int
sim_server_start(const char *path, const struct sim_fw *fw, struct sim_server **out, char *err,
		 size_t errlen)
{
	struct sim_server *srv = NULL;
	struct sockaddr_un sa;
	struct stat sb;
	mode_t old;
	int i, r = -1;

	if (strlen(path) >= sizeof(sa.sun_path))
		return sim_fail(err, errlen, "%s: a Unix socket path must be shorter than %zu bytes", path,
			    sizeof(sa.sun_path));
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return sim_fail(err, errlen, "out of memory");
	srv->lfd = -1;
	srv->fw = fw;
	for (i = 0; i < SIM_SERVER_MAX_CONN; i++)
		srv->conns[i] = -1;
	if (pthread_mutex_init(&srv->lock, NULL) != 0 || pthread_cond_init(&srv->idle, NULL) != 0) {
		free(srv);
		return sim_fail(err, errlen, "cannot create a mutex");
	}
	memcpy(srv->path, path, strlen(path) + 1);
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			(void)sim_fail(err, errlen, "%s exists and is not a socket", path);
			goto out;
		}
		(void)unlink(path); /* left over from a previous run */
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		(void)sim_fail(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	old = umask(0177); /* the socket is created 0600 */
	i = bind(srv->lfd, (const struct sockaddr *)&sa, sizeof(sa));
	(void)umask(old);
	if (i != 0) {
		(void)sim_fail(err, errlen, "%s: bind: %s", path, strerror(errno));
		goto out;
	}
	if (chmod(path, 0600) != 0 || listen(srv->lfd, 16) != 0) {
		(void)sim_fail(err, errlen, "%s: %s", path, strerror(errno));
		(void)unlink(path);
		goto out;
	}
	*out = srv;
	srv = NULL;
	r = 0;
out:
	if (srv != NULL) {
		if (srv->lfd >= 0)
			(void)close(srv->lfd);
		pthread_cond_destroy(&srv->idle);
		pthread_mutex_destroy(&srv->lock);
		free(srv);
	}
	return r;
}

int
sim_server_fd(const struct sim_server *srv)
{
	return srv->lfd;
}

unsigned long
sim_server_requests(struct sim_server *srv)
{
	unsigned long n;

	pthread_mutex_lock(&srv->lock);
	n = srv->requests;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

void
sim_server_accept(struct sim_server *srv)
{
	for (;;) {
		struct conn_arg *a = NULL;
		pthread_attr_t attr;
		pthread_t tid;
		int fd, slot = -1, i;

		fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				sim_log(SIM_LOG_WARN, "accept: %s", strerror(errno));
			return;
		}
		pthread_mutex_lock(&srv->lock);
		for (i = 0; i < SIM_SERVER_MAX_CONN && slot < 0; i++) {
			if (srv->conns[i] < 0)
				slot = i;
		}
		if (slot >= 0) {
			srv->conns[slot] = fd;
			srv->nconns++;
		}
		pthread_mutex_unlock(&srv->lock);
		if (slot < 0) {
			sim_log(SIM_LOG_WARN, "%d connections open; refusing another", SIM_SERVER_MAX_CONN);
			(void)close(fd);
			continue;
		}
		if ((a = malloc(sizeof(*a))) != NULL) {
			a->srv = srv;
			a->slot = slot;
			a->fd = fd;
			if (pthread_attr_init(&attr) == 0) {
				(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
				i = pthread_create(&tid, &attr, conn_thread, a);
				pthread_attr_destroy(&attr);
				if (i == 0)
					continue;
			}
			free(a);
		}
		sim_log(SIM_LOG_ERROR, "cannot start a connection thread");
		pthread_mutex_lock(&srv->lock);
		srv->conns[slot] = -1;
		srv->nconns--;
		pthread_mutex_unlock(&srv->lock);
		(void)close(fd);
	}
}

void
sim_server_stop(struct sim_server *srv)
{
	struct timespec deadline;
	int i;

	if (srv == NULL)
		return;
	(void)close(srv->lfd);
	(void)unlink(srv->path);
	pthread_mutex_lock(&srv->lock);
	/* Wake threads blocked in a read: they see end of stream and finish. */
	for (i = 0; i < SIM_SERVER_MAX_CONN; i++) {
		if (srv->conns[i] >= 0)
			(void)shutdown(srv->conns[i], SHUT_RDWR);
	}
	(void)clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	while (srv->nconns > 0) {
		if (pthread_cond_timedwait(&srv->idle, &srv->lock, &deadline) != 0)
			break;
	}
	i = srv->nconns;
	pthread_mutex_unlock(&srv->lock);
	if (i > 0) {
		/* Threads still hold srv: leak it rather than free it under them. */
		sim_log(SIM_LOG_WARN, "%d connection threads did not finish", i);
		return;
	}
	pthread_cond_destroy(&srv->idle);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}
