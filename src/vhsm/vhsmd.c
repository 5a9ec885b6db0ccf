/*
 * vhsmd — the Nitride vHSM daemon (docs/vhsm.md).
 *
 * One thread, one poll() loop: a Unix-socket listener (and optionally a TLS
 * listener, tls.c), per-connection bounded input and output buffers, a
 * signalfd for SIGTERM/SIGINT (stop) and SIGHUP (reload the policy).  Keys
 * live in OpenSSL's secure heap; the process is not dumpable and writes no
 * core.  vhsmd opens no outgoing network connection.
 */
#include "common/sdnotify.h"
#include "common/wipemem.h"
#include "vhsm/tls.h"
#include "vhsm/vhsmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include <cjose/util.h>
#include <ini.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "nitride/snp.h"

#define IN_CHUNK (64u * 1024u)
#define IN_CAP (VHSM_HDR_LEN + VHSM_BODY_MAX)
#define OUT_CAP (VHSM_HDR_LEN + VHSM_BODY_MAX) /* unread answers: stop reading above this */

struct config {
	char socket[108];
	mode_t socket_mode;
	char socket_group[64];
	char policy[4096];
	char state_dir[4096];
	char store[4096]; /* "" = no sealed store */
	char snp[4096];
	size_t secure_heap;
	size_t secure_heap_min;
	bool allow_insecure_memory;
	bool mlock_all;
	bool audit_allowed;
	unsigned max_conns;
	unsigned busy_poll_us;
	bool shared_memory; /* accept VHSM_OP_SHM_ATTACH (the fast path) */
	struct vstore_seal seal;
	struct vcaseb_config caseb;
	struct vtls_config tls;
	char fields_text[256];
	char err[512]; /* first configuration error: "file:line: key 'k': …" */
	const char *path;
	FILE *file;
	int lineno;
};

struct conn {
	int fd;
	/* TLS (NULL for a Unix-socket connection, whose path is unchanged):
	 * the handshake runs first, bounded by deadline_ms; a read or write
	 * that could not finish waits for what OpenSSL asked (a TLS read may
	 * need to write, and a write to read). */
	SSL *ssl;
	bool handshaking;
	short tls_rd_wants, tls_wr_wants; /* 0, or POLLIN/POLLOUT after WANT_READ/WANT_WRITE */
	int64_t deadline_ms;
	char addr[64];                      /* TLS: the peer's address, for logs */
	bool held;                          /* its first unread frame waits for nitrided */
	char held_name[VHSM_NAME_MAX + 1];
	struct vhsm_principal who;
	uint8_t *in;
	size_t in_len, in_cap;
	struct vhsm_wbuf out;
	size_t out_off;
	/* The shared-memory fast path (Unix connections only). */
	bool shm_allowed;      /* shared_memory = yes */
	int shm_fd;            /* a memfd received with SCM_RIGHTS, not yet attached; -1 */
	uint8_t *shm;          /* the attached mapping (VHSM_SHM_SIZE bytes); NULL */
	uint32_t shm_req_seen; /* the last request seq taken from the slot */
	uint8_t *slot_held;    /* a slot request held for Case B (private copy) */
	size_t slot_held_len;
};

void
vhsmd_log(const char *level, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "vhsmd: %s: %s\n", level, line);
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */

static bool
parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return false;
	return true;
}

static bool
parse_ull(const char *v, int base, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long n;

	if (*v == '-' || *v == 0)
		return false;
	errno = 0;
	n = strtoull(v, &end, base);
	if (errno != 0 || *end != 0 || n > max)
		return false;
	*out = n;
	return true;
}

static int
set_str(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return 0;
	memcpy(dst, v, strlen(v) + 1);
	return 1;
}

/* inih's reader: fgets that counts lines, so errors can name them. */
static char *
cfg_reader(char *str, int num, void *stream)
{
	struct config *c = stream;
	char *r = fgets(str, num, c->file);

	if (r != NULL)
		c->lineno++;
	return r;
}

static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct config *c = user;
	int lineno = c->lineno;
	unsigned long long n;
	bool ok = true, b;

	if (c->err[0])
		return 1;
	if (strcmp(section, "vhsmd") == 0) {
		if (strcmp(name, "socket") == 0)
			ok = set_str(c->socket, sizeof(c->socket), value) && value[0] == '/';
		else if (strcmp(name, "socket_mode") == 0)
			ok = parse_ull(value, 8, 0777, &n) && ((c->socket_mode = (mode_t)n), true);
		else if (strcmp(name, "socket_group") == 0)
			ok = set_str(c->socket_group, sizeof(c->socket_group), value);
		else if (strcmp(name, "policy") == 0)
			ok = set_str(c->policy, sizeof(c->policy), value);
		else if (strcmp(name, "state_dir") == 0)
			ok = set_str(c->state_dir, sizeof(c->state_dir), value);
		else if (strcmp(name, "secure_heap_size") == 0)
			ok = parse_ull(value, 10, 1ull << 30, &n) && n >= 4096 && (n & (n - 1)) == 0 &&
			     ((c->secure_heap = (size_t)n), true);
		else if (strcmp(name, "secure_heap_min") == 0)
			ok = parse_ull(value, 10, 4096, &n) && n >= 16 && (n & (n - 1)) == 0 &&
			     ((c->secure_heap_min = (size_t)n), true);
		else if (strcmp(name, "allow_insecure_memory") == 0)
			ok = parse_bool(value, &b) && ((c->allow_insecure_memory = b), true);
		else if (strcmp(name, "mlockall") == 0)
			ok = parse_bool(value, &b) && ((c->mlock_all = b), true);
		else if (strcmp(name, "audit_allowed") == 0)
			ok = parse_bool(value, &b) && ((c->audit_allowed = b), true);
		else if (strcmp(name, "max_connections") == 0)
			ok = parse_ull(value, 10, 4096, &n) && n > 0 && ((c->max_conns = (unsigned)n), true);
		else if (strcmp(name, "busy_poll_us") == 0)
			ok = parse_ull(value, 10, 100000, &n) && ((c->busy_poll_us = (unsigned)n), true);
		else if (strcmp(name, "shared_memory") == 0)
			ok = parse_bool(value, &b) && ((c->shared_memory = b), true);
		else
			goto unknown;
	} else if (strcmp(section, "sealing") == 0) {
		if (strcmp(name, "store") == 0)
			ok = set_str(c->store, sizeof(c->store), strcmp(value, "none") == 0 ? "" : value);
		else if (strcmp(name, "snp") == 0)
			ok = set_str(c->snp, sizeof(c->snp), value);
		else if (strcmp(name, "root_key") == 0) {
			if (strcmp(value, "vcek") == 0)
				c->seal.root_key = SNP_KEY_ROOT_VCEK;
			else if (strcmp(value, "vmrk") == 0)
				c->seal.root_key = SNP_KEY_ROOT_VMRK;
			else
				ok = false;
		} else if (strcmp(name, "fields") == 0)
			ok = vstore_parse_fields(value, &c->seal.fields) == 0 &&
			     set_str(c->fields_text, sizeof(c->fields_text), value);
		else if (strcmp(name, "guest_svn") == 0)
			ok = parse_ull(value, 0, UINT32_MAX, &n) && ((c->seal.guest_svn = (uint32_t)n), true);
		else if (strcmp(name, "tcb_version") == 0)
			ok = parse_ull(value, 0, UINT64_MAX, &n) && ((c->seal.tcb_version = n), true);
		else if (strcmp(name, "vmpl") == 0)
			ok = parse_ull(value, 10, 3, &n) && ((c->seal.vmpl = (uint32_t)n), true);
		else
			goto unknown;
	} else if (strcmp(section, "caseb") == 0) {
		int k = vcaseb_config_key(&c->caseb, name, value);

		if (k < 0)
			goto unknown;
		ok = k == 1;
	} else if (strcmp(section, "tls") == 0) {
		int k = vtls_config_key(&c->tls, name, value);

		if (k < 0)
			goto unknown;
		ok = k == 1;
	} else {
		snprintf(c->err, sizeof(c->err),
			 "%s:%d: unknown section [%s] (expected [vhsmd], [sealing], [caseb] or [tls])",
			 c->path, lineno, section);
		return 1;
	}
	if (!ok)
		snprintf(c->err, sizeof(c->err), "%s:%d: key '%s': invalid value '%s'", c->path, lineno,
			 name, value);
	return 1;
unknown:
	snprintf(c->err, sizeof(c->err), "%s:%d: unknown key '%s' in [%s]", c->path, lineno, name,
		 section);
	return 1;
}

static int
load_config(const char *path, struct config *c)
{
	FILE *f;
	int r;

	memset(c, 0, sizeof(*c));
	snprintf(c->socket, sizeof(c->socket), "%s", VHSM_DEFAULT_SOCKET);
	c->socket_mode = 0660;
	snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/vhsmd");
	snprintf(c->policy, sizeof(c->policy), "/etc/vhsmd/policy.json");
	c->secure_heap = 1u << 20;
	c->secure_heap_min = 32;
	c->max_conns = 256;
	c->busy_poll_us = 100;
	c->shared_memory = true;
	c->seal.root_key = SNP_KEY_ROOT_VCEK;
	c->seal.fields = SNP_KEY_FIELD_MEASUREMENT | SNP_KEY_FIELD_POLICY;
	c->caseb.hold_ms = 30000;
	c->caseb.clock_skew = 60;
	vtls_config_init(&c->tls);
	c->path = path;
	if (path == NULL)
		return 0;
	if ((f = fopen(path, "re")) == NULL) {
		snprintf(c->err, sizeof(c->err), "%s: %s", path, strerror(errno));
		return -1;
	}
	c->file = f;
	r = ini_parse_stream(cfg_reader, c, ini_cb, c);
	c->file = NULL;
	fclose(f);
	if (r > 0 && !c->err[0])
		snprintf(c->err, sizeof(c->err), "%s:%d: syntax error", path, r);
	if (!c->err[0]) {
		char e[256];

		if (vtls_config_check(&c->tls, e, sizeof(e)) != 0)
			snprintf(c->err, sizeof(c->err), "%s: %s", path, e);
	}
	return c->err[0] ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Process hardening                                                   */

static int
harden(const struct config *c)
{
	struct rlimit rl = { 0, 0 };

	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		vhsmd_log("error", "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
		return -1;
	}
	if (setrlimit(RLIMIT_CORE, &rl) != 0) {
		vhsmd_log("error", "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
		return -1;
	}
	/* 1: locked; 2: set up but mlock failed (not protected); 0: failed. */
	if (CRYPTO_secure_malloc_init(c->secure_heap, c->secure_heap_min) != 1) {
		if (!c->allow_insecure_memory) {
			vhsmd_log("error",
				  "cannot set up OpenSSL's secure heap (%zu bytes locked memory; check "
				  "RLIMIT_MEMLOCK / LimitMEMLOCK=); refusing to hold keys in ordinary "
				  "memory. Set allow_insecure_memory = yes only for development.",
				  c->secure_heap);
			return -1;
		}
		vhsmd_log("warning", "secure heap unavailable; keys in ordinary memory "
				     "(allow_insecure_memory = yes)");
	}
	if (c->mlock_all && mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
		vhsmd_log("error", "mlockall: %s", strerror(errno));
		return -1;
	}
	/* A release payload is parsed with jansson (its "key" and "jwk" strings
	 * are the key itself) and tokens with cjose: their blocks are wiped when
	 * freed.  Blocks allocated before this point are plain malloc ones,
	 * which wipemem_free also releases correctly. */
	json_set_alloc_funcs(wipemem_malloc, wipemem_free);
	cjose_set_alloc_funcs(wipemem_malloc, wipemem_realloc, wipemem_free);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Listener and connections                                            */

static int
listen_unix(const struct config *c)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(c->socket) >= sizeof(sa.sun_path)) {
		vhsmd_log("error", "socket path too long: %s", c->socket);
		return -1;
	}
	memcpy(sa.sun_path, c->socket, strlen(c->socket) + 1);
	if (lstat(c->socket, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			vhsmd_log("error", "%s exists and is not a socket", c->socket);
			return -1;
		}
		unlink(c->socket);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || chmod(c->socket, c->socket_mode) != 0 ||
	    listen(fd, 64) != 0) {
		vhsmd_log("error", "cannot listen on %s: %s", c->socket, strerror(errno));
		close(fd);
		return -1;
	}
	if (c->socket_group[0]) {
		struct group gr, *res = NULL;
		char buf[4096];

		if (getgrnam_r(c->socket_group, &gr, buf, sizeof(buf), &res) != 0 || res == NULL ||
		    chown(c->socket, (uid_t)-1, gr.gr_gid) != 0) {
			vhsmd_log("error", "cannot give %s to group %s", c->socket, c->socket_group);
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
conn_free(struct conn *cn)
{
	if (cn == NULL)
		return;
	if (cn->ssl != NULL) {
		/* One try at close_notify; a peer that is not reading misses it. */
		ERR_clear_error();
		if (!cn->handshaking)
			(void)SSL_shutdown(cn->ssl);
		SSL_free(cn->ssl);
		ERR_clear_error();
	}
	if (cn->fd >= 0)
		close(cn->fd);
	if (cn->shm_fd >= 0)
		close(cn->shm_fd);
	if (cn->shm != NULL)
		munmap(cn->shm, VHSM_SHM_SIZE); /* client memory: the client wipes it */
	if (cn->slot_held != NULL) {
		OPENSSL_cleanse(cn->slot_held, cn->slot_held_len);
		free(cn->slot_held);
	}
	if (cn->in) {
		OPENSSL_cleanse(cn->in, cn->in_cap);
		free(cn->in);
	}
	vhsm_wbuf_free(&cn->out);
	free(cn);
}

/* ---- The shared-memory fast path (docs/vhsm-protocol.md, "Shared memory").
 * The slot is the client's memory: whatever is in it may change at any
 * moment, so vhsmd reads each control word once, bounds the length, copies
 * the frame into private memory and decodes only the copy. */

static struct vhsm_shm_ctl *
shm_ctl(const struct conn *cn)
{
	return (struct vhsm_shm_ctl *)(void *)cn->shm;
}

/* Append an answer of our own (no body but STATUS and, on refusal, MESSAGE). */
static int
answer_status(struct conn *cn, uint8_t op, uint32_t id, int status, const char *msg)
{
	struct vhsm_wbuf w;
	int r = -1;

	vhsm_wbuf_init(&w, VHSM_HDR_LEN + 512);
	vhsm_wbuf_frame(&w, (uint8_t)(VHSM_RESPONSE | op), id);
	vhsm_wbuf_tlv_u32(&w, VHSM_T_STATUS, (uint32_t)-status);
	if (msg != NULL)
		vhsm_wbuf_tlv_str(&w, VHSM_T_MESSAGE, msg);
	if (vhsm_wbuf_finish(&w) != 0)
		goto out;
	vhsm_wbuf_raw(&cn->out, w.p, w.len);
	r = cn->out.failed ? -1 : 0;
out:
	vhsm_wbuf_free(&w);
	return r;
}

/* VHSM_OP_SHM_ATTACH: map the memfd that came with the frame, if it is what
 * the protocol says (exactly VHSM_SHM_SIZE bytes, sealed against shrinking
 * and growing, so it cannot be cut under our mapping).  Answered OK or
 * refused; -1 only when the answer cannot be queued. */
static int
shm_attach(struct conn *cn, const struct vhsm_frame *f)
{
	const char *why = NULL;
	struct stat st;
	void *m;
	int seals, fd = cn->shm_fd;

	cn->shm_fd = -1;
	if (!cn->shm_allowed)
		why = "shared memory is off (shared_memory = no)";
	else if (cn->shm != NULL)
		why = "a slot is attached already";
	else if (fd < 0)
		why = "no file descriptor came with the request";
	else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)VHSM_SHM_SIZE)
		why = "the memfd has the wrong size";
	else if ((seals = fcntl(fd, F_GET_SEALS)) < 0 ||
		 (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		why = "the memfd is not sealed against shrinking and growing";
	else if ((m = mmap(NULL, VHSM_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
		 MAP_FAILED)
		why = "cannot map the memfd";
	else
		cn->shm = m;
	if (fd >= 0)
		close(fd);
	if (cn->shm != NULL && why == NULL) {
		cn->shm_req_seen = __atomic_load_n(&shm_ctl(cn)->req_seq, __ATOMIC_ACQUIRE);
		return answer_status(cn, VHSM_OP_SHM_ATTACH, f->id, 0, NULL);
	}
	return answer_status(cn, VHSM_OP_SHM_ATTACH, f->id, VHSM_E_ARGUMENT, why);
}

/* Serve one request taken from the slot (`req`, a private copy this takes
 * over): the same request table, principal and hold logic as a socket frame.
 * The answer goes to the response slot when it fits, else to the socket; a
 * client asleep in recv() gets a doorbell.  -1: close the connection. */
static int
slot_serve(struct vhsmd *d, struct conn *cn, uint8_t *req, size_t len, bool resumed,
	   const char *fail)
{
	struct vhsm_shm_ctl *ctl = shm_ctl(cn);
	struct vhsm_frame f;
	struct vhsm_wbuf w;
	size_t used;
	int r = -1;

	vhsm_wbuf_init(&w, VHSM_HDR_LEN + VHSM_BODY_MAX);
	if (vhsm_frame_decode(req, len, false, &f, &used) != 0 || used != len ||
	    f.type == VHSM_OP_SHM_ATTACH || f.type == VHSM_OP_DOORBELL)
		goto out;
	d->hold_done = resumed;
	d->hold_fail = fail;
	r = vhsmd_handle(d, &cn->who, &f, &w);
	d->hold_done = false;
	d->hold_fail = NULL;
	if (r == VHSMD_HOLD) {
		cn->held = true;
		snprintf(cn->held_name, sizeof(cn->held_name), "%s", d->hold_name);
		cn->slot_held = req;
		cn->slot_held_len = len;
		req = NULL;
		r = 0;
		goto out;
	}
	if (r != 0)
		goto out;
	if (w.len <= VHSM_SHM_SLOT) {
		uint32_t seq = __atomic_load_n(&ctl->resp_seq, __ATOMIC_RELAXED) + 1;

		memcpy(cn->shm + VHSM_SHM_RESP_OFF, w.p, w.len);
		__atomic_store_n(&ctl->resp_len, (uint32_t)w.len, __ATOMIC_RELAXED);
		__atomic_store_n(&ctl->resp_seq, seq, __ATOMIC_SEQ_CST);
		/* Pairs with the client's store of client_sleeping then load of
		 * resp_seq: one of the two sees the other, no wake-up is lost. */
		if (__atomic_load_n(&ctl->client_sleeping, __ATOMIC_SEQ_CST) != 0) {
			vhsm_wbuf_frame(&cn->out, VHSM_RESPONSE | VHSM_OP_DOORBELL, 0);
			r = cn->out.failed ? -1 : 0;
		}
	} else {
		vhsm_wbuf_raw(&cn->out, w.p, w.len);
		r = cn->out.failed ? -1 : 0;
	}
out:
	if (r != 0 && !cn->held) {
		char wb[VHSMD_PEER_TEXT_MAX];

		vhsmd_log("warning", "closing connection (%s): malformed frame in the shared slot",
			  vhsmd_peer_describe(&cn->who, wb, sizeof(wb)));
	}
	if (req != NULL) {
		OPENSSL_cleanse(req, len);
		free(req);
	}
	vhsm_wbuf_free(&w);
	return r;
}

/* Is there a request in the slot we have not taken? */
static bool
slot_pending(const struct conn *cn)
{
	return cn->shm != NULL && !cn->held && cn->out.len - cn->out_off <= OUT_CAP &&
	       __atomic_load_n(&shm_ctl(cn)->req_seq, __ATOMIC_SEQ_CST) != cn->shm_req_seen;
}

/* Take and serve the slot's request, if there is a new one.  1: served one,
 * 0: nothing new, -1: close the connection. */
static int
slot_poll(struct vhsmd *d, struct conn *cn)
{
	struct vhsm_shm_ctl *ctl;
	uint32_t seq, len;
	uint8_t *req;

	if (!slot_pending(cn))
		return 0;
	ctl = shm_ctl(cn);
	seq = __atomic_load_n(&ctl->req_seq, __ATOMIC_ACQUIRE);
	cn->shm_req_seen = seq;
	len = __atomic_load_n(&ctl->req_len, __ATOMIC_RELAXED); /* once */
	if (len < VHSM_HDR_LEN || len > VHSM_SHM_SLOT || len > VHSM_HDR_LEN + VHSM_BODY_MAX) {
		char wb[VHSMD_PEER_TEXT_MAX];

		vhsmd_log("warning", "closing connection (%s): bad length in the shared slot",
			  vhsmd_peer_describe(&cn->who, wb, sizeof(wb)));
		return -1;
	}
	if ((req = malloc(len)) == NULL)
		return -1;
	memcpy(req, cn->shm + VHSM_SHM_REQ_OFF, len);
	return slot_serve(d, cn, req, len, false, NULL) == 0 ? 1 : -1;
}

/* Before poll() may sleep: tell every attached client (seq_cst, paired with
 * the client's store of req_seq then load of server_sleeping) and look at
 * the slots once more.  True if a request came meanwhile: do not sleep. */
static bool
slots_sleep(struct conn *const *conns, size_t nconns, bool sleeping)
{
	bool pending = false;
	size_t i;

	for (i = 0; i < nconns; i++)
		if (conns[i]->shm != NULL)
			__atomic_store_n(&shm_ctl(conns[i])->server_sleeping, sleeping ? 1u : 0u,
					 __ATOMIC_SEQ_CST);
	if (sleeping)
		for (i = 0; i < nconns && !pending; i++)
			pending = slot_pending(conns[i]);
	return pending;
}

/* Serve every whole frame in the input buffer, in order, until one is held
 * (Case B) — it stays at the head of the buffer, to be served again when the
 * hand-off ends (`resumed`).  -1: close the connection. */
static int
conn_process(struct vhsmd *d, struct conn *cn, bool resumed, const char *fail)
{
	size_t off = 0, used;
	struct vhsm_frame f;
	int r;

	while (!cn->held) {
		r = vhsm_frame_decode(cn->in + off, cn->in_len - off, false, &f, &used);
		if (r == VHSM_DEC_NEED_MORE)
			break;
		if (r != 0) {
			char wb[VHSMD_PEER_TEXT_MAX];

			vhsmd_log("warning", "closing connection (%s): malformed frame",
				  vhsmd_peer_describe(&cn->who, wb, sizeof(wb)));
			return -1;
		}
		if (f.type == VHSM_OP_DOORBELL) {
			off += used; /* the loop looks at the slot after every read */
			continue;
		}
		if (f.type == VHSM_OP_SHM_ATTACH && cn->ssl == NULL) {
			if (shm_attach(cn, &f) != 0)
				return -1;
			off += used;
			continue;
		}
		d->hold_done = resumed;
		d->hold_fail = fail;
		r = vhsmd_handle(d, &cn->who, &f, &cn->out);
		d->hold_done = false;
		d->hold_fail = NULL;
		resumed = false;
		if (r == VHSMD_HOLD) {
			cn->held = true;
			snprintf(cn->held_name, sizeof(cn->held_name), "%s", d->hold_name);
			break;
		}
		if (r != 0)
			return -1;
		off += used;
		if (cn->out.len - cn->out_off > OUT_CAP)
			break; /* the peer must read its answers first */
	}
	if (off > 0) {
		memmove(cn->in, cn->in + off, cn->in_len - off);
		OPENSSL_cleanse(cn->in + cn->in_len - off, off);
		cn->in_len -= off;
	}
	return 0;
}

/* A Case B hand-off ended: serve the held request again (the slot's, if it
 * came from there, then any socket frames behind it).  -1: close. */
static int
held_resume(struct vhsmd *d, struct conn *cn, const char *fail)
{
	uint8_t *req = cn->slot_held;

	cn->held = false;
	if (req == NULL)
		return conn_process(d, cn, true, fail);
	cn->slot_held = NULL;
	if (slot_serve(d, cn, req, cn->slot_held_len, true, fail) != 0)
		return -1;
	return cn->held ? 0 : conn_process(d, cn, false, NULL);
}

/* ---- TLS connections: the same frames inside an SSL object over the
 * non-blocking socket.  tls_recv/tls_send keep recv()/send()'s contract, so
 * conn_read/conn_write serve both kinds. */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failed SSL call: -1 with errno EAGAIN (*wants says for what) or
 * EIO (fatal; the connection must go), or 0 when the peer closed. */
static ssize_t
tls_stalled(struct conn *cn, int ret, short *wants)
{
	switch (SSL_get_error(cn->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		*wants = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*wants = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		ERR_clear_error();
		errno = EIO;
		return -1;
	}
}

/* Decrypt as much as fits (several records), like one recv(). */
static ssize_t
tls_recv(struct conn *cn, uint8_t *buf, size_t len)
{
	size_t total = 0, n;
	ssize_t r;
	int ret;

	while (total < len) {
		ERR_clear_error();
		n = 0;
		if ((ret = SSL_read_ex(cn->ssl, buf + total, len - total, &n)) == 1) {
			total += n;
			cn->tls_rd_wants = 0;
			continue;
		}
		r = tls_stalled(cn, ret, &cn->tls_rd_wants);
		if (total > 0)
			break; /* serve what arrived; the next call sees the same state */
		return r;
	}
	return (ssize_t)total;
}

static ssize_t
tls_send(struct conn *cn, const uint8_t *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_write_ex(cn->ssl, buf, len, &n)) == 1) {
		cn->tls_wr_wants = 0;
		return (ssize_t)n;
	}
	r = tls_stalled(cn, ret, &cn->tls_wr_wants);
	if (r == 0)
		errno = EPIPE;
	return -1;
}

/* recv() on a Unix connection, keeping a file descriptor that comes along
 * (SCM_RIGHTS, for VHSM_OP_SHM_ATTACH): the kernel ends a read after the
 * bytes that carried descriptors, so it arrives with the attach frame's
 * first bytes.  Only the latest one is kept; any other is closed. */
static ssize_t
unix_recv(struct conn *cn, uint8_t *buf, size_t len)
{
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh;
	struct cmsghdr *cm;
	ssize_t n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = ctl.b;
	mh.msg_controllen = sizeof(ctl.b);
	n = recvmsg(cn->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 || mh.msg_controllen == 0)
		return n;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t k, nfd;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
		    cm->cmsg_len < CMSG_LEN(0))
			continue;
		nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < nfd; k++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + k * sizeof(int), sizeof(fd));
			if (cn->shm_fd >= 0)
				close(cn->shm_fd);
			cn->shm_fd = fd;
		}
	}
	return n;
}

/* Read what is there and serve every whole frame.  -1: close the connection. */
static int
conn_read(struct vhsmd *d, struct conn *cn)
{
	ssize_t n;

	if (cn->in_cap - cn->in_len < IN_CHUNK / 4 && cn->in_cap < IN_CAP) {
		size_t ncap = cn->in_cap * 2 > IN_CAP ? IN_CAP : cn->in_cap * 2;
		uint8_t *ni = malloc(ncap);

		if (ni == NULL)
			return -1;
		memcpy(ni, cn->in, cn->in_len);
		OPENSSL_cleanse(cn->in, cn->in_cap);
		free(cn->in);
		cn->in = ni;
		cn->in_cap = ncap;
	}
	if (cn->in_cap == cn->in_len)
		return -1; /* cannot happen: a frame is at most IN_CAP */
	if (cn->ssl != NULL)
		n = tls_recv(cn, cn->in + cn->in_len, cn->in_cap - cn->in_len);
	else
		n = unix_recv(cn, cn->in + cn->in_len, cn->in_cap - cn->in_len);
	if (n == 0)
		return -1;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	cn->in_len += (size_t)n;
	return conn_process(d, cn, false, NULL);
}

static int
conn_write(struct conn *cn)
{
	ssize_t n;

	while (cn->out_off < cn->out.len) {
		if (cn->ssl != NULL)
			n = tls_send(cn, cn->out.p + cn->out_off, cn->out.len - cn->out_off);
		else
			n = send(cn->fd, cn->out.p + cn->out_off, cn->out.len - cn->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		cn->out_off += (size_t)n;
	}
	OPENSSL_cleanse(cn->out.p, cn->out.len);
	cn->out.len = 0;
	cn->out_off = 0;
	return 0;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The poll timeout for this turn: 0 (look, do not sleep) while a request was
 * served less than busy_poll_us ago.  A sleeping daemon is woken by an
 * inter-processor interrupt, which on virtual machines whose idle vCPUs halt
 * costs more than a P-256 signature; a caller that sends its next request
 * within the window finds the daemon awake (docs/vhsm.md, "Latency").  When
 * nothing comes, the daemon sleeps as before after at most busy_poll_us. */
static int
poll_timeout(const struct config *c, uint64_t last_busy, int otherwise)
{
	if (c->busy_poll_us > 0 && now_ns() - last_busy < (uint64_t)c->busy_poll_us * 1000)
		return 0;
	return otherwise;
}

/* What poll should wait for on a connection. */
static short
conn_events(const struct conn *cn)
{
	bool rd = !cn->held && cn->out.len - cn->out_off <= OUT_CAP, wr = cn->out.len > cn->out_off;

	if (cn->ssl == NULL)
		return (short)((rd ? POLLIN : 0) | (wr ? POLLOUT : 0));
	if (cn->handshaking)
		return cn->tls_rd_wants ? cn->tls_rd_wants : POLLIN;
	return (short)((rd ? (cn->tls_rd_wants ? cn->tls_rd_wants : POLLIN) : 0) |
		       (wr ? (cn->tls_wr_wants ? cn->tls_wr_wants : POLLOUT) : 0));
}

/* The listener and context, when [tls] is configured. */
struct tls_listener {
	int fd;       /* -1: none */
	SSL_CTX *ctx;
	unsigned max_conns, handshake_ms;
};

static struct conn *
tls_accept(const struct tls_listener *tl)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN], port[8];
	struct conn *cn = NULL;
	int cfd, one = 1;

	if ((cfd = accept4(tl->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0)
		return NULL;
	if ((cn = calloc(1, sizeof(*cn))) == NULL) {
		close(cfd);
		return NULL;
	}
	cn->fd = cfd;
	cn->shm_fd = -1;
	cn->handshaking = true;
	cn->who.tls = true; /* until the certificate names it: matches no rule */
	vhsm_wbuf_init(&cn->out, OUT_CAP + VHSM_HDR_LEN + VHSM_BODY_MAX);
	if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(cn->addr, sizeof(cn->addr), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
			 host, port);
	/* Frames are small and answered at once: do not let Nagle hold them. */
	(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((cn->in = malloc(IN_CHUNK)) == NULL || (cn->ssl = SSL_new(tl->ctx)) == NULL ||
	    SSL_set_fd(cn->ssl, cfd) != 1) {
		vhsmd_log("warning", "cannot set up a TLS connection from %s", cn->addr);
		conn_free(cn);
		return NULL;
	}
	cn->in_cap = IN_CHUNK;
	SSL_set_accept_state(cn->ssl);
	cn->deadline_ms = now_ms() + tl->handshake_ms;
	return cn;
}

/* Drive the handshake; when it is done, the certificate names the caller.
 * -1: drop the connection. */
static int
tls_handshake(struct conn *cn)
{
	char err[256], wb[VHSMD_PEER_TEXT_MAX];
	long vr;
	int ret;

	ERR_clear_error();
	if ((ret = SSL_do_handshake(cn->ssl)) != 1) {
		switch (SSL_get_error(cn->ssl, ret)) {
		case SSL_ERROR_WANT_READ:
			cn->tls_rd_wants = POLLIN;
			return 0;
		case SSL_ERROR_WANT_WRITE:
			cn->tls_rd_wants = POLLOUT;
			return 0;
		default:
			break;
		}
		vr = SSL_get_verify_result(cn->ssl);
		vhsmd_log("warning", "TLS handshake with %s failed: %s", cn->addr,
			  vr != X509_V_OK ? X509_verify_cert_error_string(vr)
					  : vtls_error("the peer closed the connection", err, sizeof(err)));
		return -1;
	}
	cn->handshaking = false;
	cn->tls_rd_wants = 0;
	if (vtls_principal(cn->ssl, &cn->who, err, sizeof(err)) != 0) {
		vhsmd_log("warning", "refusing the TLS connection from %s: %s", cn->addr, err);
		return -1;
	}
	vhsmd_log("info", "TLS connection from %s (%s): %s", cn->addr, SSL_get_version(cn->ssl),
		  vhsmd_peer_describe(&cn->who, wb, sizeof(wb)));
	return 0;
}

/* One poll round for a TLS connection (called every round, events or not:
 * the handshake deadline and decrypted bytes poll cannot see).  -1: drop. */
static int
conn_tls_event(struct vhsmd *d, struct conn *cn, short re)
{
	bool rd;

	if (cn->handshaking) {
		if ((re & (POLLIN | POLLOUT | POLLHUP)) && tls_handshake(cn) != 0)
			return -1;
		if (cn->handshaking && now_ms() >= cn->deadline_ms) {
			vhsmd_log("warning", "TLS handshake with %s timed out", cn->addr);
			return -1;
		}
		return 0;
	}
	if (cn->held && (re & POLLHUP))
		return -1; /* the caller went away; the hand-off goes on */
	rd = !cn->held && cn->out.len - cn->out_off <= OUT_CAP;
	if (rd && ((re & (POLLIN | POLLHUP)) || (cn->tls_rd_wants == POLLOUT && (re & POLLOUT)) ||
		   SSL_pending(cn->ssl) > 0) &&
	    conn_read(d, cn) != 0)
		return -1;
	if (cn->out.len > cn->out_off && conn_write(cn) != 0)
		return -1;
	return 0;
}

/* poll's timeout: `timeout` shortened to the next TLS handshake deadline,
 * or 0 while a TLS connection holds decrypted bytes poll cannot see. */
static int
tls_poll_timeout(struct conn *const *conns, size_t nconns, int timeout)
{
	int64_t now = now_ms(), left;
	size_t i;

	for (i = 0; i < nconns; i++) {
		const struct conn *cn = conns[i];

		if (cn->ssl == NULL)
			continue;
		if (cn->handshaking) {
			left = cn->deadline_ms > now ? cn->deadline_ms - now : 0;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		} else if (!cn->held && cn->out.len - cn->out_off <= OUT_CAP &&
			   SSL_pending(cn->ssl) > 0) {
			return 0;
		}
	}
	return timeout;
}

static int
serve(struct vhsmd *d, const struct config *c, int lfd, int sfd, const struct tls_listener *tl)
{
	struct conn **conns = NULL;
	struct pollfd *pfd = NULL;
	size_t nconns = 0, i, tls_max = tl->fd >= 0 ? tl->max_conns : 0;
	uint64_t last_busy = 0;
	int r = -1, ready;

	/* TLS connections have their own cap: the network cannot use up the
	 * slots of local callers. */
	conns = calloc(c->max_conns + tls_max, sizeof(*conns));
	pfd = calloc(c->max_conns + tls_max + 3 + VCASEB_MAX_PENDING, sizeof(*pfd));
	if (conns == NULL || pfd == NULL)
		goto out;
	for (;;) {
		size_t np = 0, cbase, ncb, ntls = 0, tslot;
		char hname[VHSM_NAME_MAX + 1], hmsg[VCASEB_MSG_MAX];
		int hst, timeout;
		bool sleeping;

		pfd[np].fd = sfd;
		pfd[np++].events = POLLIN;
		pfd[np].fd = lfd;
		pfd[np++].events = POLLIN;
		for (i = 0; i < nconns; i++) {
			pfd[np].fd = conns[i]->fd;
			pfd[np].events = conn_events(conns[i]);
			pfd[np++].revents = 0;
			ntls += conns[i]->ssl != NULL;
		}
		if (nconns - ntls >= c->max_conns)
			pfd[1].fd = -1;
		tslot = np;
		pfd[np].fd = tl->fd >= 0 && ntls < tls_max ? tl->fd : -1;
		pfd[np].events = POLLIN;
		pfd[np++].revents = 0;
		cbase = np;
		ncb = vcaseb_pollfds(d->caseb, pfd + cbase, VCASEB_MAX_PENDING);
		np += ncb;
		timeout = vcaseb_timeout(d->caseb);
		if (ntls > 0)
			timeout = tls_poll_timeout(conns, nconns, timeout);
		timeout = poll_timeout(c, last_busy, timeout);
		/* Clients of the shared slot send a doorbell only while we sleep. */
		sleeping = timeout != 0;
		if (sleeping && slots_sleep(conns, nconns, true))
			timeout = 0;
		ready = poll(pfd, np, timeout);
		if (sleeping)
			(void)slots_sleep(conns, nconns, false);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			vhsmd_log("error", "poll: %s", strerror(errno));
			goto out;
		}
		if (ready > 0)
			last_busy = now_ns();
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					struct vhsm_policy *np2 = NULL;
					char err[512];

					if (vhsm_policy_load(c->policy, &np2, err, sizeof(err)) == 0) {
						vhsm_policy_free(d->policy);
						d->policy = np2;
						vhsmd_log("info", "policy reloaded from %s", c->policy);
					} else {
						vhsmd_log("error", "policy reload failed, keeping the old one: %s", err);
					}
				} else {
					vhsmd_log("info", "signal %u: stopping", si.ssi_signo);
					r = 0;
					goto out;
				}
			}
		}
		/* Connections first (their pfd slots are 2..), then new ones. */
		for (i = nconns; i-- > 0;) {
			short re = pfd[2 + i].revents;
			bool drop = false;

			if (re & (POLLERR | POLLNVAL))
				drop = true;
			else if (conns[i]->ssl != NULL)
				drop = conn_tls_event(d, conns[i], re) != 0;
			else {
				if (conns[i]->held && (re & POLLHUP))
					drop = true; /* the caller went away; the hand-off goes on */
				if (!drop && !conns[i]->held && (re & (POLLIN | POLLHUP)) && conn_read(d, conns[i]) != 0)
					drop = true;
				if (!drop && conns[i]->shm != NULL) {
					int sr = slot_poll(d, conns[i]);

					if (sr < 0)
						drop = true;
					else if (sr > 0)
						last_busy = now_ns();
				}
				if (!drop && conns[i]->out.len > conns[i]->out_off && conn_write(conns[i]) != 0)
					drop = true;
			}
			if (drop) {
				conn_free(conns[i]);
				conns[i] = conns[--nconns];
				conns[nconns] = NULL;
			}
		}
		/* Case B: drive the hand-offs, then answer the requests they held. */
		vcaseb_step(d, pfd + cbase, ncb);
		while (vcaseb_take_done(d->caseb, hname, &hst, hmsg, sizeof(hmsg))) {
			for (i = nconns; i-- > 0;) {
				struct conn *cn = conns[i];

				if (!cn->held || strcmp(cn->held_name, hname) != 0)
					continue;
				if (held_resume(d, cn, hst != 0 ? hmsg : NULL) != 0 ||
				    (cn->out.len > cn->out_off && conn_write(cn) != 0)) {
					conn_free(cn);
					conns[i] = conns[--nconns];
					conns[nconns] = NULL;
				}
			}
		}
		if (pfd[tslot].fd >= 0 && (pfd[tslot].revents & POLLIN)) {
			struct conn *tc = tls_accept(tl);

			if (tc != NULL)
				conns[nconns++] = tc;
		}
		if (pfd[1].fd >= 0 && (pfd[1].revents & POLLIN)) {
			int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			struct conn *cn;

			if (cfd < 0)
				continue;
			if ((cn = calloc(1, sizeof(*cn))) == NULL) {
				close(cfd);
				continue;
			}
			cn->fd = cfd;
			cn->shm_fd = -1;
			cn->shm_allowed = c->shared_memory;
			vhsm_wbuf_init(&cn->out, OUT_CAP + VHSM_HDR_LEN + VHSM_BODY_MAX);
			if ((cn->in = malloc(IN_CHUNK)) == NULL ||
			    vhsmd_peer_identify(cfd, vhsm_policy_needs_exe_hash(d->policy), &cn->who) != 0) {
				vhsmd_log("warning", "refusing a connection whose caller cannot be identified");
				conn_free(cn);
				continue;
			}
			cn->in_cap = IN_CHUNK;
			conns[nconns++] = cn;
		}
	}
out:
	for (i = 0; i < nconns; i++)
		conn_free(conns[i]);
	free(conns);
	free(pfd);
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: vhsmd [--config FILE] [--check-config]\n"
		   "  The Nitride vHSM daemon: serves key operations on a Unix socket\n"
		   "  (and, with a [tls] section, over TLS with client certificates).\n"
		   "  --config FILE    INI configuration (deploy/vhsmd/vhsmd.example.ini)\n"
		   "  --check-config   check the configuration and policy, then exit\n"
		   "  SIGTERM stops, SIGHUP reloads the policy.  docs/vhsm.md\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config *c = NULL;
	struct tls_listener tl = { .fd = -1, .ctx = NULL };
	struct vhsmd d;
	const char *cfg = NULL;
	char err[1024], storepath[8192];
	bool check = false;
	sigset_t ss;
	int opt, lfd = -1, sfd = -1, rc = 2;

	memset(&d, 0, sizeof(d));
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cfg = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return 2;
	if (load_config(cfg, c) != 0) {
		vhsmd_log("error", "%s", c->err);
		goto out;
	}
	if (vhsm_policy_load(c->policy, &d.policy, err, sizeof(err)) != 0) {
		vhsmd_log("error", "policy: %s", err);
		goto out;
	}
	d.log_allowed = c->audit_allowed;
	if (c->caseb.socket[0] && vcaseb_new(&c->caseb, &d.caseb, err, sizeof(err)) != 0) {
		vhsmd_log("error", "[caseb]: %s", err);
		goto out;
	}
	if (check && c->tls.listen[0]) {
		/* Load what the listener would (certificate, key, CAs); bind nothing. */
		if (vtls_ctx_new(&c->tls, &tl.ctx, err, sizeof(err)) != 0) {
			vhsmd_log("error", "%s", err);
			goto out;
		}
	}
	if (check) {
		printf("vhsmd: configuration %s and policy %s are valid\n", cfg ? cfg : "(defaults)",
		       c->policy);
		rc = 0;
		goto out;
	}
	if (harden(c) != 0)
		goto out;
	umask(077);
	if (mkdir(c->state_dir, 0700) != 0 && errno != EEXIST) {
		vhsmd_log("error", "state_dir %s: %s", c->state_dir, strerror(errno));
		goto out;
	}
	if (c->store[0]) {
		if (c->store[0] == '/')
			snprintf(storepath, sizeof(storepath), "%s", c->store);
		else
			snprintf(storepath, sizeof(storepath), "%s/%s", c->state_dir, c->store);
		if (vstore_open(storepath, c->snp, &c->seal, &d.store, err, sizeof(err)) != 0) {
			vhsmd_log("error", "%s", err);
			rc = 1;
			goto out;
		}
		if (vhsmd_keys_load(&d, err, sizeof(err)) != 0) {
			vhsmd_log("error", "%s", err);
			rc = 1;
			goto out;
		}
		vhsmd_log("info", "sealed store %s open: %zu keys (%d records)", storepath, d.nkeys,
			  vstore_count(d.store));
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) != 0 ||
	    (sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		vhsmd_log("error", "signalfd: %s", strerror(errno));
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	/* TLS first: whoever sees the Unix socket can count on the TLS listener. */
	if (c->tls.listen[0]) {
		/* After harden(): the server key's private parts may go to the secure heap. */
		if (vtls_ctx_new(&c->tls, &tl.ctx, err, sizeof(err)) != 0 ||
		    (tl.fd = vtls_listen(&c->tls, err, sizeof(err))) < 0) {
			vhsmd_log("error", "%s", err);
			goto out;
		}
		tl.max_conns = c->tls.max_conns;
		tl.handshake_ms = c->tls.handshake_ms;
		vhsmd_log("info", "TLS listener on %s (client certificates from %s)", c->tls.listen,
			  c->tls.client_ca);
	}
	if ((lfd = listen_unix(c)) < 0)
		goto out;
	vhsmd_log("info", "ready: socket %s pid %d secure_heap %s", c->socket, (int)getpid(),
		  CRYPTO_secure_malloc_initialized() ? "on" : "off");
	sd_notify_msg("READY=1");
	rc = serve(&d, c, lfd, sfd, &tl) == 0 ? 0 : 2;
	unlink(c->socket);
out:
	if (lfd >= 0)
		close(lfd);
	if (tl.fd >= 0)
		close(tl.fd);
	SSL_CTX_free(tl.ctx);
	if (sfd >= 0)
		close(sfd);
	vhsmd_keys_clear(&d);
	vstore_close(d.store);
	vhsm_policy_free(d.policy);
	vcaseb_free(d.caseb);
	free(c);
	return rc;
}
