#include "nitride/serve.h"

#include "vhsm/proto.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define REQ_MAX (16u * 1024u) /* a request is a name and a JWK */
#define STATUS_UNAVAILABLE 18u /* VHSM_E_UNAVAILABLE, positive on the wire */
#define STATUS_ARGUMENT 5u
#define STATUS_PROTOCOL 1u

struct worker {
	int fd;
	const struct serve_config *sc;
};

int
serve_listen(const char *path)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "nitrided: socket path too long: %s\n", path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "nitrided: %s exists and is not a socket\n", path);
			return -1;
		}
		(void)unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(path, 0666) != 0 ||
	    listen(fd, 16) != 0) {
		fprintf(stderr, "nitrided: cannot listen on %s: %s\n", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static int
recv_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = recv(fd, p, n, 0);

		if (r == 0)
			return -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int
send_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* A text TLV as a NUL-terminated copy (malloc'ed), or NULL. */
static char *
tlv_text(const struct vhsm_frame *f, uint16_t tag)
{
	const uint8_t *v;
	size_t l;
	char *s;

	if (vhsm_tlv_find(f->body, f->body_len, tag, &v, &l) != 0 || l == 0 || memchr(v, 0, l) != NULL ||
	    (s = malloc(l + 1)) == NULL)
		return NULL;
	memcpy(s, v, l);
	s[l] = 0;
	return s;
}

/* Serve one request into w (a whole response frame). */
static void
handle(const struct serve_config *sc, const struct vhsm_frame *f, struct vhsm_wbuf *w)
{
	char *name = NULL, *tee = NULL, *out = NULL, err[FLOW_ERR_MAX];
	struct flow_stats st = { 0 };
	uint32_t version = 0;
	enum flow_step step;

	vhsm_wbuf_frame(w, (uint8_t)(VHSM_RESPONSE | f->type), f->id);
	if (f->type != VHSM_OP_NITRIDED_PROVISION && f->type != VHSM_OP_NITRIDED_ATTEST) {
		vhsm_wbuf_tlv_u32(w, VHSM_T_STATUS, STATUS_PROTOCOL);
		vhsm_wbuf_tlv_str(w, VHSM_T_MESSAGE, "nitrided serves provision and attest requests only");
		goto out;
	}
	name = tlv_text(f, VHSM_T_NAME);
	tee = tlv_text(f, VHSM_T_TEE_PUBKEY);
	if (vhsm_tlv_u32(f->body, f->body_len, VHSM_T_VERSION, &version) == -2 || name == NULL ||
	    tee == NULL) {
		vhsm_wbuf_tlv_u32(w, VHSM_T_STATUS, STATUS_ARGUMENT);
		vhsm_wbuf_tlv_str(w, VHSM_T_MESSAGE, "a request needs NAME and TEE_PUBKEY");
		goto out;
	}
	if (f->type == VHSM_OP_NITRIDED_PROVISION)
		step = flow_provision(sc->flow, name, version, tee, &out, &st, err, sizeof(err));
	else
		step = flow_attest(sc->flow, tee, &out, &st, err, sizeof(err));
	if (step != FLOW_OK) {
		fprintf(stderr, "nitrided: %s %s refused: %s\n",
			f->type == VHSM_OP_NITRIDED_PROVISION ? "provision" : "attest", name, err);
		vhsm_wbuf_tlv_u32(w, VHSM_T_STATUS, STATUS_UNAVAILABLE);
		vhsm_wbuf_tlv_str(w, VHSM_T_MESSAGE, err);
		goto out;
	}
	fprintf(stderr, "nitrided: %s %s: done (%u requests, %u new connections; "
		"challenge %lu us%s, report %lu us, attest %lu us, release %lu us)\n",
		f->type == VHSM_OP_NITRIDED_PROVISION ? "provision" : "attest", name, st.requests,
		st.connects, st.step_us[0], st.nonce_reserved ? " (nonce fetched ahead)" : "",
		st.step_us[1], st.step_us[2], st.step_us[3]);
	vhsm_wbuf_tlv_u32(w, VHSM_T_STATUS, 0);
	vhsm_wbuf_tlv_str(w, VHSM_T_NAME, name);
	vhsm_wbuf_tlv_str(w, f->type == VHSM_OP_NITRIDED_PROVISION ? VHSM_T_JWE : VHSM_T_TOKEN, out);
out:
	if (out != NULL) {
		OPENSSL_cleanse(out, strlen(out)); /* a token is a bearer credential */
		free(out);
	}
	free(name);
	free(tee);
}

static void *
worker_main(void *arg)
{
	struct worker *wk = arg;
	uint8_t *buf = malloc(VHSM_HDR_LEN + REQ_MAX);
	struct vhsm_frame f;
	struct vhsm_wbuf w;
	size_t used;
	uint32_t blen;

	while (buf != NULL) {
		if (recv_all(wk->fd, buf, VHSM_HDR_LEN) != 0)
			break;
		/* The header is checked before the body is read. */
		if (vhsm_frame_decode(buf, VHSM_HDR_LEN, false, &f, &used) == VHSM_DEC_BAD)
			break;
		blen = (uint32_t)buf[12] | (uint32_t)buf[13] << 8 | (uint32_t)buf[14] << 16 |
		       (uint32_t)buf[15] << 24;
		if (blen > REQ_MAX || recv_all(wk->fd, buf + VHSM_HDR_LEN, blen) != 0 ||
		    vhsm_frame_decode(buf, VHSM_HDR_LEN + blen, false, &f, &used) != 0)
			break;
		vhsm_wbuf_init(&w, VHSM_HDR_LEN + 256u * 1024u);
		handle(wk->sc, &f, &w);
		if (vhsm_wbuf_finish(&w) != 0 || send_all(wk->fd, w.p, w.len) != 0) {
			vhsm_wbuf_free(&w);
			break;
		}
		vhsm_wbuf_free(&w);
	}
	free(buf);
	close(wk->fd);
	free(wk);
	return NULL;
}

int
serve_run(const struct serve_config *sc, int lfd, volatile bool *stop)
{
	while (!*stop) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		struct ucred cr;
		socklen_t cl = sizeof(cr);
		struct worker *wk;
		pthread_attr_t at;
		pthread_t th;
		int cfd, n;

		n = poll(&p, 1, 200);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0)
			continue;
		if ((cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0)
			continue;
		/* Only vhsmd: the kernel's word on the peer's uid. */
		if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != sc->vhsmd_uid) {
			fprintf(stderr, "nitrided: refusing a connection from uid %d pid %d (only uid %u, vhsmd)\n",
				cl == sizeof(cr) ? (int)cr.uid : -1, cl == sizeof(cr) ? (int)cr.pid : -1,
				(unsigned)sc->vhsmd_uid);
			close(cfd);
			continue;
		}
		if ((wk = calloc(1, sizeof(*wk))) == NULL) {
			close(cfd);
			continue;
		}
		wk->fd = cfd;
		wk->sc = sc;
		if (pthread_attr_init(&at) != 0) {
			close(cfd);
			free(wk);
			continue;
		}
		(void)pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, worker_main, wk) != 0) {
			close(cfd);
			free(wk);
		}
		(void)pthread_attr_destroy(&at);
	}
	return 0;
}
