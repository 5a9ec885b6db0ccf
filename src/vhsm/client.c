/*
 * libvhsm — the vHSM client.  One connection per vhsm_client, shared by
 * threads: each request is written whole under a write lock; whichever
 * waiting thread is not yet answered reads the next frame and hands it to
 * the request with that id (leader/follower), so several requests are in
 * flight at once and answers may come in any order.
 */
#include "nitride/vhsm.h"

#include <errno.h>
#include <sched.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/rbuf.h"
#include "vhsm/client_tls.h"
#include "vhsm/proto.h"

struct pending {
	uint32_t id;
	bool done;
	uint8_t *frame; /* the whole response frame */
	size_t len;
	struct pending *next;
};

/* One connection to vhsmd.  Requests from several threads may be in flight
 * on it at once (the protocol matches answers by id): whichever waiting
 * thread holds `reading` reads the next answer and hands it to its owner. */
struct lane {
	int fd;              /* Unix socket; -1 over TLS */
	struct vclient_tls *tls; /* NULL: the Unix socket */
	pthread_mutex_t mu;  /* everything below */
	pthread_cond_t cv;
	pthread_mutex_t wmu; /* serialises writes of whole frames */
	bool reading;        /* some thread is reading a frame */
	unsigned inflight;   /* calls using this lane (under the client's mu) */
	struct pending *pend;
	/* Read-ahead, used by the thread that holds `reading`: one recv() often
	 * brings a whole answer (header and body), or several. */
	uint8_t ra[16384];
	size_t ra_off, ra_len;
	/* The shared-memory slot (docs/vhsm-protocol.md, "Shared memory"): used
	 * by a call that finds the lane otherwise idle, one at a time. */
	uint8_t *shm;        /* VHSM_SHM_SIZE bytes; NULL: the socket only */
	bool slot_busy;      /* a call's request is in the slot (under mu) */
	uint32_t req_seq;    /* the last request seq published */
	uint32_t resp_seen;  /* the last response seq taken (under mu) */
};

/* A handle shared by the threads of one process.  It opens up to LANES_MAX
 * connections, one more each time every open one is busy, so that threads
 * calling at the same time each read their own answers instead of waking one
 * another (a hand-off between threads costs a cross-CPU wake-up, which is
 * dearer than a P-256 signature on virtual machines).  All the connections
 * come from the same process, so vhsmd sees the same principal on each. */
#define LANES_MAX 8

struct vhsm_client {
	pthread_mutex_t mu;  /* lanes, nlanes, next_id, broken */
	struct lane *lanes[LANES_MAX];
	size_t nlanes;
	size_t lanes_max;    /* LANES_MAX; 1 over TLS (one handshake, one principal) */
	uint32_t next_id;
	bool broken;         /* a connection failed; every call fails */
	uint64_t spin_ns;    /* busy-wait budget for an answer, see recv_spin */
	struct sockaddr_un sa;
};

static __thread char last_msg[256];

VHSM_API const char *
vhsm_last_message(void)
{
	return last_msg;
}

VHSM_API void
vhsm_buf_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

static void
set_msg(const char *m)
{
	snprintf(last_msg, sizeof(last_msg), "%s", m);
}

/* VHSM_SPIN_US: how long a caller busy-waits for an answer before it
 * sleeps (recv_spin); 0 turns it off.  Default 200 us: longer than the
 * common operations, short against the slow ones. */
static uint64_t
spin_budget_ns(void)
{
	const char *v = getenv("VHSM_SPIN_US");
	char *end;
	unsigned long us;

	if (v == NULL || *v == 0)
		return 200000;
	errno = 0;
	us = strtoul(v, &end, 10);
	if (errno != 0 || *end != 0 || us > 1000000)
		return 200000;
	return (uint64_t)us * 1000;
}

static void
lane_free(struct lane *l)
{
	struct pending *p, *n;

	if (l == NULL)
		return;
	if (l->tls != NULL)
		vclient_tls_free(l->tls);
	else if (l->fd >= 0)
		close(l->fd);
	if (l->shm != NULL) {
		/* Our memory, and it held requests and answers in the clear. */
		OPENSSL_cleanse(l->shm, VHSM_SHM_SIZE);
		munmap(l->shm, VHSM_SHM_SIZE);
	}
	OPENSSL_cleanse(l->ra, sizeof(l->ra));
	for (p = l->pend; p; p = n) {
		n = p->next;
		vhsm_buf_free(p->frame, p->len);
		free(p);
	}
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->wmu);
	pthread_cond_destroy(&l->cv);
	free(l);
}

static int read_frame(struct lane *l, uint64_t spin_ns, uint8_t **buf, size_t *len, uint32_t *id);

/* VHSM_SHM=0 turns the shared-memory slot off. */
static bool
shm_wanted(void)
{
	const char *v = getenv("VHSM_SHM");

	return v == NULL || strcmp(v, "0") != 0;
}

/* Offer vhsmd a slot on a fresh lane: a sealed memfd passed with
 * VHSM_OP_SHM_ATTACH.  0: attached or refused (the lane works either way;
 * l->shm says which), -1: the connection failed (an old vhsmd closes it on
 * the unknown message). */
static int
lane_attach(struct lane *l)
{
	static const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct vhsm_wbuf w;
	struct iovec iov;
	struct msghdr mh;
	struct cmsghdr *cm;
	struct vhsm_frame f;
	uint8_t *resp = NULL;
	size_t resp_len = 0, used;
	uint32_t rid, status;
	void *m = MAP_FAILED;
	int mfd, r = 0;

	if ((mfd = memfd_create("vhsm-slot", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		return 0;
	if (ftruncate(mfd, VHSM_SHM_SIZE) != 0 || fcntl(mfd, F_ADD_SEALS, seals) != 0 ||
	    (m = mmap(NULL, VHSM_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0)) == MAP_FAILED) {
		close(mfd);
		return 0;
	}
	vhsm_wbuf_init(&w, VHSM_HDR_LEN);
	vhsm_wbuf_frame(&w, VHSM_OP_SHM_ATTACH, 0);
	if (vhsm_wbuf_finish(&w) != 0) {
		vhsm_wbuf_free(&w);
		goto out;
	}
	iov.iov_base = w.p;
	iov.iov_len = w.len;
	memset(&mh, 0, sizeof(mh));
	memset(&ctl, 0, sizeof(ctl));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof(ctl.b);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &mfd, sizeof(int));
	if (sendmsg(l->fd, &mh, MSG_NOSIGNAL) != (ssize_t)w.len) {
		vhsm_wbuf_free(&w);
		r = -1;
		goto out;
	}
	vhsm_wbuf_free(&w);
	if (read_frame(l, 0, &resp, &resp_len, &rid) != 0) {
		r = -1;
		goto out;
	}
	if (vhsm_frame_decode(resp, resp_len, true, &f, &used) != 0 ||
	    f.type != (VHSM_RESPONSE | VHSM_OP_SHM_ATTACH) || rid != 0) {
		r = -1; /* not the answer to what we asked */
	} else if (vhsm_tlv_u32(f.body, f.body_len, VHSM_T_STATUS, &status) == 0 && status == 0) {
		l->shm = m; /* else refused: the lane keeps to the socket */
		m = MAP_FAILED;
	}
	vhsm_buf_free(resp, resp_len);
out:
	if (m != MAP_FAILED)
		munmap(m, VHSM_SHM_SIZE);
	close(mfd);
	return r;
}

/* A lane over an open Unix socket fd, or a TLS connection (fd -1); NULL
 * only when out of memory (the caller still owns fd / tls then). */
static struct lane *
lane_new(int fd, struct vclient_tls *tls)
{
	struct lane *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return NULL;
	l->fd = fd;
	l->tls = tls;
	pthread_mutex_init(&l->mu, NULL);
	pthread_mutex_init(&l->wmu, NULL);
	pthread_cond_init(&l->cv, NULL);
	return l;
}

/* A client whose first lane is l (taken over), opening up to lanes_max. */
static vhsm_client *
client_new(struct lane *l, size_t lanes_max, uint64_t spin_ns)
{
	vhsm_client *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->lanes[0] = l;
	c->nlanes = 1;
	c->lanes_max = lanes_max;
	c->next_id = 1;
	c->spin_ns = spin_ns;
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

/* A new connection to sa; NULL with last_msg set on failure. */
static struct lane *
lane_open(const struct sockaddr_un *sa)
{
	struct lane *l;
	bool shm = shm_wanted();
	int fd;

again:
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(last_msg, sizeof(last_msg), "socket: %s", strerror(errno));
		return NULL;
	}
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
		snprintf(last_msg, sizeof(last_msg), "connect %s: %s", sa->sun_path, strerror(errno));
		close(fd);
		return NULL;
	}
	if ((l = lane_new(fd, NULL)) == NULL) {
		close(fd);
		return NULL;
	}
	if (shm && lane_attach(l) != 0) {
		/* A vhsmd without the fast path closes the connection on the
		 * unknown message: connect again without it. */
		lane_free(l);
		shm = false;
		goto again;
	}
	return l;
}

VHSM_API int
vhsm_connect(const char *path, vhsm_client **out)
{
	struct sockaddr_un sa;
	struct lane *l;
	vhsm_client *c;

	last_msg[0] = 0;
	if (path == NULL)
		path = getenv("VHSM_SOCKET");
	if (path == NULL || *path == 0)
		path = VHSM_DEFAULT_SOCKET;
	if (out == NULL || strlen(path) >= sizeof(sa.sun_path))
		return VHSM_E_ARGUMENT;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path));
	/* The first connection now, so that a wrong path fails here. */
	if ((l = lane_open(&sa)) == NULL)
		return VHSM_E_IO;
	if ((c = client_new(l, LANES_MAX, spin_budget_ns())) == NULL) {
		lane_free(l);
		return VHSM_E_NOMEM;
	}
	c->sa = sa;
	*out = c;
	return VHSM_OK;
}

VHSM_API int
vhsm_connect_tls(const char *address, const char *cert_file, const char *key_file,
		 const char *ca_file, vhsm_client **out)
{
	struct vclient_tls *t = NULL;
	vhsm_client *c;
	struct lane *l;
	int r;

	last_msg[0] = 0;
	if (out == NULL)
		return VHSM_E_ARGUMENT;
	if ((r = vclient_tls_open(address, cert_file, key_file, ca_file, &t, last_msg,
				  sizeof(last_msg))) != VHSM_OK)
		return r;
	if ((l = lane_new(-1, t)) == NULL) {
		vclient_tls_free(t);
		return VHSM_E_NOMEM;
	}
	/* One lane (one handshake); no spinning: client_tls waits in poll(). */
	if ((c = client_new(l, 1, 0)) == NULL) {
		lane_free(l);
		return VHSM_E_NOMEM;
	}
	*out = c;
	return VHSM_OK;
}

VHSM_API void
vhsm_close(vhsm_client *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlanes; i++)
		lane_free(c->lanes[i]);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Threads of this process busy-waiting in recv_spin now, and how many may:
 * one CPU fewer than there are (at least one; the other is vhsmd's).  And
 * calls waiting for an answer: when there are more than CPUs, vhsmd has a
 * queue, the answer is far off, and spinning would only take the CPU from the
 * daemon that computes it; every thread then sleeps as before. */
static unsigned spinners, waiting;
static unsigned spinners_max;

/* recv(), but poll the socket without sleeping for up to spin_ns first.  A
 * thread that blocks is woken by an inter-processor interrupt, and on virtual
 * machines whose idle vCPUs halt that wake-up costs more than a P-256
 * signature (~25 us against ~20 us here); while the answer is being computed
 * a short busy wait keeps the vCPU awake and the round trip near 4 us.  The
 * budget bounds the CPU wasted on slow operations (RSA-4096 signs, Case B
 * hand-offs), which end up blocking as before. */
/* May this thread busy-wait now?  If so, it must call spin_end() after. */
static bool
spin_begin(void)
{
	unsigned max = __atomic_load_n(&spinners_max, __ATOMIC_RELAXED);

	if (max == 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		max = ncpu > 2 ? (unsigned)(ncpu - 1) : 1;
		__atomic_store_n(&spinners_max, max, __ATOMIC_RELAXED);
	}
	if (__atomic_load_n(&waiting, __ATOMIC_RELAXED) > max + 1)
		return false;
	if (__atomic_add_fetch(&spinners, 1, __ATOMIC_RELAXED) <= max)
		return true;
	__atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
	return false;
}

static void
spin_end(void)
{
	__atomic_sub_fetch(&spinners, 1, __ATOMIC_RELAXED);
}

static ssize_t
recv_spin(int fd, uint8_t *p, size_t n, uint64_t spin_ns)
{
	uint64_t deadline = 0;
	unsigned i;
	ssize_t r;

	if (spin_ns > 0 && spin_begin()) {
		for (i = 0;; i++) {
			r = recv(fd, p, n, MSG_DONTWAIT);
			if (r >= 0 || (errno != EAGAIN && errno != EINTR)) {
				spin_end();
				return r;
			}
			/* The scheduler often wakes vhsmd on this very CPU; without a
			 * yield it would wait for the whole budget, not the answer. */
			(void)sched_yield();
			if ((i & 15) == 0) {
				uint64_t t = now_ns();

				if (deadline == 0)
					deadline = t + spin_ns;
				else if (t >= deadline)
					break;
			}
		}
		spin_end();
	}
	return recv(fd, p, n, 0);
}

/* Read exactly n bytes from the lane: what the read-ahead holds first, then
 * the socket (small reads through the read-ahead, large ones straight into
 * p).  Consumed read-ahead bytes are wiped: answers may carry secrets. */
static int
read_full(struct lane *l, uint8_t *p, size_t n, uint64_t spin_ns)
{
	if (l->tls != NULL)
		return vclient_tls_read_full(l->tls, p, n);
	while (n > 0) {
		size_t k = l->ra_len - l->ra_off;
		ssize_t r;

		if (k > 0) {
			if (k > n)
				k = n;
			memcpy(p, l->ra + l->ra_off, k);
			OPENSSL_cleanse(l->ra + l->ra_off, k);
			l->ra_off += k;
			p += k;
			n -= k;
			continue;
		}
		l->ra_off = l->ra_len = 0;
		if (n >= sizeof(l->ra))
			r = recv_spin(l->fd, p, n, spin_ns);
		else
			r = recv_spin(l->fd, l->ra, sizeof(l->ra), spin_ns);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		if (n >= sizeof(l->ra)) {
			p += r;
			n -= (size_t)r;
		} else {
			l->ra_len = (size_t)r;
		}
	}
	return 0;
}

static int
write_full(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Read one whole response frame (validated).  Caller frees *buf. */
static int
read_frame(struct lane *l, uint64_t spin_ns, uint8_t **buf, size_t *len, uint32_t *id)
{
	uint8_t hdr[VHSM_HDR_LEN], *b = NULL;
	struct vhsm_frame f;
	struct rbuf rb;
	uint32_t blen;
	size_t used;

	if (read_full(l, hdr, sizeof(hdr), spin_ns) != 0)
		return VHSM_E_IO;
	if (vhsm_frame_decode(hdr, sizeof(hdr), true, &f, &used) == VHSM_DEC_BAD)
		return VHSM_E_PROTOCOL;
	rbuf_init(&rb, hdr + 12, 4);
	if (rbuf_get_u32le(&rb, &blen) != 0 || blen > VHSM_BODY_MAX)
		return VHSM_E_PROTOCOL;
	if ((b = malloc(VHSM_HDR_LEN + (size_t)blen)) == NULL)
		return VHSM_E_NOMEM;
	memcpy(b, hdr, sizeof(hdr));
	if (read_full(l, b + VHSM_HDR_LEN, blen, spin_ns) != 0) {
		vhsm_buf_free(b, VHSM_HDR_LEN + (size_t)blen);
		return VHSM_E_IO;
	}
	if (vhsm_frame_decode(b, VHSM_HDR_LEN + (size_t)blen, true, &f, &used) != 0) {
		vhsm_buf_free(b, VHSM_HDR_LEN + (size_t)blen);
		return VHSM_E_PROTOCOL;
	}
	*buf = b;
	*len = used;
	*id = f.id;
	return 0;
}

/* A request being built: its frame and the id it carries. */
struct call {
	struct vhsm_wbuf w;
	uint8_t op;
	uint32_t id;
	uint8_t *resp; /* the answer frame */
	size_t resp_len;
	struct vhsm_frame f;
};

static void
call_begin(vhsm_client *c, struct call *k, uint8_t op)
{
	memset(k, 0, sizeof(*k));
	if (c != NULL) {
		pthread_mutex_lock(&c->mu);
		k->id = c->next_id++;
		if (c->next_id == 0)
			c->next_id = 1;
		pthread_mutex_unlock(&c->mu);
	}
	k->op = op;
	vhsm_wbuf_init(&k->w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&k->w, op, k->id);
}

static void
call_end(struct call *k)
{
	vhsm_wbuf_free(&k->w);
	vhsm_buf_free(k->resp, k->resp_len);
	k->resp = NULL;
}

/* The lane for one call: an idle one, else a new one while there is room,
 * else the least busy (requests then share it, pipelined).  NULL if the
 * client is broken. */
static struct lane *
lane_take(vhsm_client *c)
{
	struct lane *best = NULL, *l;
	size_t i;

	pthread_mutex_lock(&c->mu);
	if (c->broken)
		goto out;
	for (i = 0; i < c->nlanes; i++)
		if (best == NULL || c->lanes[i]->inflight < best->inflight)
			best = c->lanes[i];
	if (best->inflight > 0 && c->nlanes < c->lanes_max && (l = lane_open(&c->sa)) != NULL) {
		c->lanes[c->nlanes++] = l;
		best = l;
	}
	best->inflight++;
out:
	pthread_mutex_unlock(&c->mu);
	return best;
}

static void
lane_give(vhsm_client *c, struct lane *l, bool failed)
{
	pthread_mutex_lock(&c->mu);
	l->inflight--;
	if (failed)
		c->broken = true; /* fail closed: no silent reconnection */
	pthread_mutex_unlock(&c->mu);
}

/* Take the answer in the response slot, if vhsmd published a new one, and
 * hand it to its pending call (under l->mu).  The frame is copied out and
 * the slot's bytes wiped (an answer may be plaintext).  1: one handed over,
 * 0: nothing new, -1: not a valid answer to a call of ours. */
static int
slot_take(struct lane *l)
{
	struct vhsm_shm_ctl *ctl = (struct vhsm_shm_ctl *)(void *)l->shm;
	struct vhsm_frame f;
	struct pending *p;
	uint32_t seq, len;
	uint8_t *b;
	size_t used;

	if (l->shm == NULL || (seq = __atomic_load_n(&ctl->resp_seq, __ATOMIC_SEQ_CST)) == l->resp_seen)
		return 0;
	l->resp_seen = seq;
	len = __atomic_load_n(&ctl->resp_len, __ATOMIC_RELAXED);
	if (len < VHSM_HDR_LEN || len > VHSM_SHM_SLOT || (b = malloc(len)) == NULL)
		return -1;
	memcpy(b, l->shm + VHSM_SHM_RESP_OFF, len);
	OPENSSL_cleanse(l->shm + VHSM_SHM_RESP_OFF, len);
	if (vhsm_frame_decode(b, len, true, &f, &used) != 0 || used != len)
		goto bad;
	for (p = l->pend; p && p->id != f.id; p = p->next)
		;
	if (p == NULL || p->done)
		goto bad;
	p->frame = b;
	p->len = len;
	p->done = true;
	return 1;
bad:
	vhsm_buf_free(b, len);
	return -1;
}

/* Busy-wait (without l->mu) for up to spin_ns for vhsmd to publish an
 * answer in the slot; the caller then takes it with slot_take. */
static void
slot_spin(struct lane *l, uint32_t seen, uint64_t spin_ns)
{
	const struct vhsm_shm_ctl *ctl = (const struct vhsm_shm_ctl *)(const void *)l->shm;
	uint64_t deadline = 0;
	unsigned i;

	if (spin_ns == 0 || !spin_begin())
		return;
	for (i = 0; __atomic_load_n(&ctl->resp_seq, __ATOMIC_ACQUIRE) == seen; i++) {
		if ((i & 63) == 0) {
			uint64_t t = now_ns();

			if (deadline == 0)
				deadline = t + spin_ns;
			else if (t >= deadline)
				break;
			/* As in recv_spin: if vhsmd was woken on this CPU, let it run. */
			(void)sched_yield();
		}
	}
	spin_end();
}

/* Put the request in the slot and publish it; ring vhsmd's doorbell if it
 * sleeps.  The store of req_seq and the load of server_sleeping are seq_cst,
 * paired with vhsmd's store of server_sleeping then load of req_seq: one of
 * the two sides sees the other, so no wake-up is lost. */
static int
slot_send(struct lane *l, const uint8_t *req, size_t req_len)
{
	struct vhsm_shm_ctl *ctl = (struct vhsm_shm_ctl *)(void *)l->shm;
	uint8_t bell[VHSM_HDR_LEN] = { VHSM_MAGIC0, VHSM_MAGIC1, VHSM_MAGIC2, VHSM_MAGIC3,
				       VHSM_PROTO_VERSION, VHSM_OP_DOORBELL };
	int r = 0;

	memcpy(l->shm + VHSM_SHM_REQ_OFF, req, req_len);
	__atomic_store_n(&ctl->req_len, (uint32_t)req_len, __ATOMIC_RELAXED);
	__atomic_store_n(&ctl->req_seq, ++l->req_seq, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&ctl->server_sleeping, __ATOMIC_SEQ_CST) != 0) {
		pthread_mutex_lock(&l->wmu);
		r = write_full(l->fd, bell, sizeof(bell));
		pthread_mutex_unlock(&l->wmu);
	}
	return r;
}

/* Send the frame on lane l and wait for the answer with the same id.  The
 * shared slot carries it when the lane is otherwise idle and it fits; the
 * answer may then come in the slot or (too large for it) on the socket, so
 * the caller waits for both: it spins on the slot, then says it sleeps and
 * reads the socket, where a doorbell frame means "look at the slot". */
static int
lane_call(struct lane *l, uint64_t spin_ns, uint32_t id, const uint8_t *req, size_t req_len,
	  uint8_t **resp, size_t *resp_len)
{
	struct vhsm_shm_ctl *ctl = (struct vhsm_shm_ctl *)(void *)l->shm;
	struct pending me, **pp;
	bool broken = false, slot = false, spun = false, asleep = false;
	int r;

	memset(&me, 0, sizeof(me));
	me.id = id;
	pthread_mutex_lock(&l->mu);
	if (l->shm != NULL && l->pend == NULL && !l->slot_busy && req_len <= VHSM_SHM_SLOT)
		slot = l->slot_busy = true;
	me.next = l->pend;
	l->pend = &me;
	pthread_mutex_unlock(&l->mu);

	if (slot) {
		r = slot_send(l, req, req_len);
	} else {
		pthread_mutex_lock(&l->wmu);
		if (l->tls != NULL)
			r = vclient_tls_write_full(l->tls, req, req_len);
		else
			r = write_full(l->fd, req, req_len);
		pthread_mutex_unlock(&l->wmu);
	}

	pthread_mutex_lock(&l->mu);
	if (r != 0)
		broken = true;
	while (!me.done && !broken) {
		uint8_t *buf = NULL;
		size_t len = 0;
		uint32_t rid = 0;
		struct pending *p;

		if ((r = slot_take(l)) != 0) {
			broken = r < 0;
			pthread_cond_broadcast(&l->cv);
			continue;
		}
		if (slot && !spun) {
			uint32_t seen = l->resp_seen;

			spun = true;
			pthread_mutex_unlock(&l->mu);
			slot_spin(l, seen, spin_ns);
			pthread_mutex_lock(&l->mu);
			continue;
		}
		if (slot && !asleep) {
			/* Then look at the slot once more (slot_take, above). */
			__atomic_store_n(&ctl->client_sleeping, 1, __ATOMIC_SEQ_CST);
			asleep = true;
			continue;
		}
		if (l->reading) {
			pthread_cond_wait(&l->cv, &l->mu);
			continue;
		}
		l->reading = true;
		pthread_mutex_unlock(&l->mu);
		r = read_frame(l, slot ? 0 : spin_ns, &buf, &len, &rid);
		pthread_mutex_lock(&l->mu);
		l->reading = false;
		if (r != 0) {
			broken = true;
		} else if (buf[5] == (VHSM_RESPONSE | VHSM_OP_DOORBELL)) {
			vhsm_buf_free(buf, len); /* the slot is looked at next turn */
		} else {
			for (p = l->pend; p && p->id != rid; p = p->next)
				;
			if (p == NULL || p->done) {
				broken = true; /* an answer to nothing we asked */
				vhsm_buf_free(buf, len);
			} else {
				p->frame = buf;
				p->len = len;
				p->done = true;
			}
		}
		pthread_cond_broadcast(&l->cv);
	}
	if (slot) {
		if (asleep)
			__atomic_store_n(&ctl->client_sleeping, 0, __ATOMIC_RELAXED);
		l->slot_busy = false;
	}
	if (broken) {
		/* Nobody can trust this stream any more: wake every waiter. */
		if (l->tls == NULL)
			shutdown(l->fd, SHUT_RDWR);
		pthread_cond_broadcast(&l->cv);
	}
	for (pp = &l->pend; *pp; pp = &(*pp)->next) {
		if (*pp == &me) {
			*pp = me.next;
			break;
		}
	}
	pthread_mutex_unlock(&l->mu);
	if (!me.done)
		return VHSM_E_IO;
	*resp = me.frame;
	*resp_len = me.len;
	return VHSM_OK;
}

/* Send the request, wait for its answer, return its status. */
static int
call_run(vhsm_client *c, struct call *k)
{
	struct lane *l;
	uint32_t status;
	const uint8_t *m;
	size_t ml, used;
	int r;

	last_msg[0] = 0;
	if (c == NULL)
		return VHSM_E_ARGUMENT;
	if (vhsm_wbuf_finish(&k->w) != 0) {
		set_msg("request exceeds the protocol's size cap");
		return VHSM_E_TOO_LARGE;
	}
	if ((l = lane_take(c)) == NULL) {
		set_msg("connection to vhsmd is closed");
		return VHSM_E_IO;
	}
	__atomic_add_fetch(&waiting, 1, __ATOMIC_RELAXED);
	r = lane_call(l, c->spin_ns, k->id, k->w.p, k->w.len, &k->resp, &k->resp_len);
	__atomic_sub_fetch(&waiting, 1, __ATOMIC_RELAXED);
	if (r != VHSM_OK) {
		if (l->tls != NULL)
			vclient_tls_reason(l->tls, last_msg, sizeof(last_msg));
		else
			set_msg("connection to vhsmd failed");
	}
	lane_give(c, l, r != VHSM_OK);
	if (r != VHSM_OK)
		return VHSM_E_IO;
	if (vhsm_frame_decode(k->resp, k->resp_len, true, &k->f, &used) != 0 ||
	    k->f.type != (VHSM_RESPONSE | k->op) ||
	    vhsm_tlv_u32(k->f.body, k->f.body_len, VHSM_T_STATUS, &status) != 0) {
		set_msg("malformed answer from vhsmd");
		return VHSM_E_PROTOCOL;
	}
	if (status != 0) {
		if (vhsm_tlv_find(k->f.body, k->f.body_len, VHSM_T_MESSAGE, &m, &ml) == 0) {
			size_t n = ml < sizeof(last_msg) - 1 ? ml : sizeof(last_msg) - 1;

			memcpy(last_msg, m, n);
			last_msg[n] = 0;
		}
		return status <= 64 ? -(int)status : VHSM_E_PROTOCOL;
	}
	return VHSM_OK;
}

/* Copy a response TLV into a fresh buffer. */
static int
take_bytes(struct call *k, uint16_t tag, uint8_t **out, size_t *len)
{
	const uint8_t *p;
	size_t l;
	uint8_t *b;

	if (vhsm_tlv_find(k->f.body, k->f.body_len, tag, &p, &l) != 0) {
		set_msg("answer lacks a field");
		return VHSM_E_PROTOCOL;
	}
	if ((b = malloc(l ? l : 1)) == NULL)
		return VHSM_E_NOMEM;
	if (l)
		memcpy(b, p, l);
	*out = b;
	*len = l;
	return 0;
}

static int
put_name(struct call *k, uint16_t tag, const char *name)
{
	if (name == NULL || !vhsm_name_valid((const uint8_t *)name, strlen(name))) {
		set_msg("invalid key name");
		return VHSM_E_ARGUMENT;
	}
	vhsm_wbuf_tlv_str(&k->w, tag, name);
	return 0;
}

static void
put_spec(struct call *k, const vhsm_key_spec *s)
{
	vhsm_wbuf_tlv_u32(&k->w, VHSM_T_KEY_TYPE, s->type);
	if (s->usages)
		vhsm_wbuf_tlv_u32(&k->w, VHSM_T_USAGES, s->usages);
	vhsm_wbuf_tlv_u32(&k->w, VHSM_T_FLAGS, s->flags);
	vhsm_wbuf_tlv_u32(&k->w, VHSM_T_MAX_AGE, s->require_attestation);
}

static void
parse_info(const uint8_t *body, size_t len, vhsm_key_info *i)
{
	const uint8_t *p;
	size_t l;
	uint32_t v;

	memset(i, 0, sizeof(*i));
	if (vhsm_tlv_find(body, len, VHSM_T_NAME, &p, &l) == 0 && l < sizeof(i->name)) {
		memcpy(i->name, p, l);
		i->name[l] = 0;
	}
	if (vhsm_tlv_u32(body, len, VHSM_T_KEY_TYPE, &v) == 0)
		i->type = (vhsm_key_type)v;
	(void)vhsm_tlv_u32(body, len, VHSM_T_USAGES, &i->usages);
	(void)vhsm_tlv_u32(body, len, VHSM_T_FLAGS, &i->flags);
	(void)vhsm_tlv_u32(body, len, VHSM_T_VERSION, &i->version);
	(void)vhsm_tlv_u32(body, len, VHSM_T_VERSIONS, &i->versions);
	if (vhsm_tlv_u32(body, len, VHSM_T_ORIGIN, &v) == 0)
		i->origin = (vhsm_origin)v;
	(void)vhsm_tlv_u32(body, len, VHSM_T_MAX_AGE, &i->require_attestation);
}

VHSM_API int
vhsm_ping(vhsm_client *c)
{
	struct call k;
	int r;

	call_begin(c, &k, VHSM_OP_PING);
	r = call_run(c, &k);
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_generate(vhsm_client *c, const char *name, const vhsm_key_spec *spec)
{
	struct call k;
	int r;

	if (spec == NULL)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_GENERATE);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		put_spec(&k, spec);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_import(vhsm_client *c, const char *name, const vhsm_key_spec *spec,
	    const uint8_t *material, size_t len)
{
	struct call k;
	int r;

	if (spec == NULL || material == NULL)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_IMPORT);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		put_spec(&k, spec);
		vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, material, len);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

/* Requests that carry only a name. */
static int
name_only(vhsm_client *c, uint8_t op, const char *name, struct call *k)
{
	int r;

	call_begin(c, k, op);
	if ((r = put_name(k, VHSM_T_NAME, name)) == 0)
		r = call_run(c, k);
	return r;
}

VHSM_API int
vhsm_delete(vhsm_client *c, const char *name)
{
	struct call k;
	int r = name_only(c, VHSM_OP_DELETE, name, &k);

	call_end(&k);
	return r;
}

VHSM_API int
vhsm_list(vhsm_client *c, vhsm_key_info **infos, size_t *n)
{
	struct call k;
	vhsm_key_info *arr = NULL;
	size_t cnt = 0, off = 0, l;
	const uint8_t *v;
	uint16_t tag;
	int r;

	if (infos == NULL || n == NULL)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_LIST);
	if ((r = call_run(c, &k)) != 0)
		goto out;
	while (vhsm_tlv_next(k.f.body, k.f.body_len, &off, &tag, &v, &l) == 0)
		cnt += tag == VHSM_T_KEYINFO;
	if ((arr = calloc(cnt ? cnt : 1, sizeof(*arr))) == NULL) {
		r = VHSM_E_NOMEM;
		goto out;
	}
	cnt = 0;
	off = 0;
	while (vhsm_tlv_next(k.f.body, k.f.body_len, &off, &tag, &v, &l) == 0) {
		if (tag != VHSM_T_KEYINFO)
			continue;
		if (vhsm_tlv_validate(v, l) != 0) {
			r = VHSM_E_PROTOCOL;
			goto out;
		}
		parse_info(v, l, &arr[cnt++]);
	}
	*infos = arr;
	*n = cnt;
	arr = NULL;
out:
	free(arr);
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_get_public(vhsm_client *c, const char *name, vhsm_key_info *info, uint8_t **spki,
		size_t *spki_len)
{
	struct call k;
	const uint8_t *p;
	size_t l;
	int r = name_only(c, VHSM_OP_GET_PUBLIC, name, &k);

	if (r == 0) {
		if (info)
			parse_info(k.f.body, k.f.body_len, info);
		if (spki && spki_len) {
			if (vhsm_tlv_find(k.f.body, k.f.body_len, VHSM_T_PUBKEY, &p, &l) == 0)
				r = take_bytes(&k, VHSM_T_PUBKEY, spki, spki_len);
			else {
				*spki = NULL;
				*spki_len = 0;
			}
		}
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_sign(vhsm_client *c, const char *name, vhsm_alg alg, vhsm_hash hash, const uint8_t *msg,
	  size_t len, uint8_t **sig, size_t *sig_len, uint32_t *version)
{
	struct call k;
	int r;

	if (sig == NULL || sig_len == NULL || (msg == NULL && len))
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_SIGN);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, msg, len);
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_ALG, alg);
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_HASH, hash);
		if ((r = call_run(c, &k)) == 0) {
			if (version)
				(void)vhsm_tlv_u32(k.f.body, k.f.body_len, VHSM_T_VERSION, version);
			r = take_bytes(&k, VHSM_T_SIGNATURE, sig, sig_len);
		}
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_verify(vhsm_client *c, const char *name, uint32_t version, vhsm_alg alg, vhsm_hash hash,
	    const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len)
{
	struct call k;
	uint32_t valid = 0;
	int r;

	if ((msg == NULL && len) || (sig == NULL && sig_len))
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_VERIFY);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, msg, len);
		vhsm_wbuf_tlv(&k.w, VHSM_T_SIGNATURE, sig, sig_len);
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_ALG, alg);
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_HASH, hash);
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_VERSION, version);
		if ((r = call_run(c, &k)) == 0) {
			if (vhsm_tlv_u32(k.f.body, k.f.body_len, VHSM_T_VALID, &valid) != 0)
				r = VHSM_E_PROTOCOL;
			else if (valid != 1)
				r = VHSM_E_BAD_SIGNATURE;
		}
	}
	call_end(&k);
	return r;
}

static int
data_op(vhsm_client *c, uint8_t op, const char *name, vhsm_hash hash, const uint8_t *aad,
      size_t aad_len, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	struct call k;
	int r;

	if (out == NULL || out_len == NULL || (in == NULL && in_len) || (aad == NULL && aad_len))
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, op);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, in, in_len);
		if (aad_len)
			vhsm_wbuf_tlv(&k.w, VHSM_T_AAD, aad, aad_len);
		if (hash)
			vhsm_wbuf_tlv_u32(&k.w, VHSM_T_HASH, hash);
		if ((r = call_run(c, &k)) == 0)
			r = take_bytes(&k, VHSM_T_DATA, out, out_len);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_encrypt(vhsm_client *c, const char *name, vhsm_hash hash, const uint8_t *aad,
	     size_t aad_len, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	return data_op(c, VHSM_OP_ENCRYPT, name, hash, aad, aad_len, in, in_len, out, out_len);
}

VHSM_API int
vhsm_decrypt(vhsm_client *c, const char *name, vhsm_hash hash, const uint8_t *aad,
	     size_t aad_len, const uint8_t *in, size_t in_len, uint8_t **out, size_t *out_len)
{
	return data_op(c, VHSM_OP_DECRYPT, name, hash, aad, aad_len, in, in_len, out, out_len);
}

VHSM_API int
vhsm_wrap(vhsm_client *c, const char *name, const uint8_t *in, size_t in_len, uint8_t **out,
	  size_t *out_len)
{
	return data_op(c, VHSM_OP_WRAP, name, VHSM_HASH_DEFAULT, NULL, 0, in, in_len, out, out_len);
}

VHSM_API int
vhsm_hmac(vhsm_client *c, const char *name, const uint8_t *msg, size_t len, uint8_t **mac,
	  size_t *mac_len)
{
	return data_op(c, VHSM_OP_HMAC, name, VHSM_HASH_DEFAULT, NULL, 0, msg, len, mac, mac_len);
}

VHSM_API int
vhsm_unwrap(vhsm_client *c, const char *name, const uint8_t *in, size_t in_len,
	    const char *new_name, const vhsm_key_spec *spec)
{
	struct call k;
	int r;

	if (spec == NULL || (in == NULL && in_len))
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_UNWRAP);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0 &&
	    (r = put_name(&k, VHSM_T_NEW_NAME, new_name)) == 0) {
		put_spec(&k, spec);
		vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, in, in_len);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_derive(vhsm_client *c, const char *name, const uint8_t *peer, size_t peer_len,
	    const char *new_name, const vhsm_key_spec *spec)
{
	struct call k;
	int r;

	if (spec == NULL || peer == NULL)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_DERIVE);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0 &&
	    (r = put_name(&k, VHSM_T_NEW_NAME, new_name)) == 0) {
		put_spec(&k, spec);
		vhsm_wbuf_tlv(&k.w, VHSM_T_PUBKEY, peer, peer_len);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_random(vhsm_client *c, size_t n, uint8_t **out)
{
	struct call k;
	size_t got = 0;
	int r;

	if (out == NULL || n == 0 || n > 65536)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_RANDOM);
	vhsm_wbuf_tlv_u32(&k.w, VHSM_T_COUNT, (uint32_t)n);
	if ((r = call_run(c, &k)) == 0) {
		uint8_t *b = NULL;

		if ((r = take_bytes(&k, VHSM_T_DATA, &b, &got)) == 0 && got != n) {
			vhsm_buf_free(b, got);
			r = VHSM_E_PROTOCOL;
		} else if (r == 0) {
			*out = b;
		}
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_rotate(vhsm_client *c, const char *name, uint32_t *version)
{
	struct call k;
	int r = name_only(c, VHSM_OP_ROTATE, name, &k);

	if (r == 0 && version)
		(void)vhsm_tlv_u32(k.f.body, k.f.body_len, VHSM_T_VERSION, version);
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_retire(vhsm_client *c, const char *name, uint32_t version)
{
	struct call k;
	int r;

	call_begin(c, &k, VHSM_OP_RETIRE);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0) {
		vhsm_wbuf_tlv_u32(&k.w, VHSM_T_VERSION, version);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_read_secret(vhsm_client *c, const char *name, uint8_t **out, size_t *out_len)
{
	struct call k;
	int r;

	if (out == NULL || out_len == NULL)
		return VHSM_E_ARGUMENT;
	r = name_only(c, VHSM_OP_READ_SECRET, name, &k);
	if (r == 0)
		r = take_bytes(&k, VHSM_T_DATA, out, out_len);
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_provision(vhsm_client *c, const char *name)
{
	struct call k;
	int r = name_only(c, VHSM_OP_PROVISION, name, &k);

	call_end(&k);
	return r;
}

VHSM_API int
vhsm_derive_kdf(vhsm_client *c, const char *name, const uint8_t *peer, size_t peer_len,
		vhsm_kdf kdf, const uint8_t *shared, size_t shared_len, const char *new_name,
		const vhsm_key_spec *spec)
{
	struct call k;
	int r;

	if (spec == NULL || peer == NULL || (shared == NULL && shared_len) ||
	    shared_len > VHSM_KDF_INFO_MAX || (unsigned)kdf > VHSM_KDF_MAX)
		return VHSM_E_ARGUMENT;
	call_begin(c, &k, VHSM_OP_DERIVE);
	if ((r = put_name(&k, VHSM_T_NAME, name)) == 0 &&
	    (r = put_name(&k, VHSM_T_NEW_NAME, new_name)) == 0) {
		put_spec(&k, spec);
		vhsm_wbuf_tlv(&k.w, VHSM_T_PUBKEY, peer, peer_len);
		if (kdf != VHSM_KDF_HKDF)
			vhsm_wbuf_tlv_u32(&k.w, VHSM_T_KDF, (uint32_t)kdf);
		if (shared_len > 0)
			vhsm_wbuf_tlv(&k.w, VHSM_T_DATA, shared, shared_len);
		r = call_run(c, &k);
	}
	call_end(&k);
	return r;
}

VHSM_API int
vhsm_read_public_data(vhsm_client *c, const char *name, vhsm_key_info *info, uint8_t **data,
		      size_t *len)
{
	struct call k;
	const uint8_t *p;
	size_t l;
	int r;

	if (data == NULL || len == NULL)
		return VHSM_E_ARGUMENT;
	r = name_only(c, VHSM_OP_GET_PUBLIC, name, &k);
	if (r == 0 && vhsm_tlv_find(k.f.body, k.f.body_len, VHSM_T_DATA, &p, &l) != 0) {
		set_msg("not a public-data (cert) object");
		r = VHSM_E_USAGE;
	}
	if (r == 0)
		r = take_bytes(&k, VHSM_T_DATA, data, len);
	if (r == 0 && info != NULL)
		parse_info(k.f.body, k.f.body_len, info);
	call_end(&k);
	return r;
}
