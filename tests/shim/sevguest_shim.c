/*
 * nitride-snp-shim — an LD_PRELOAD library (tests only) that plays the Linux
 * kernel's SEV-SNP guest interfaces on top of snpsimd, so that libsnp's
 * sev-guest and tsm backends run their real code paths without SNP hardware.
 *
 * Environment:
 *   NITRIDE_SHIM_SOCKET    snpsimd's socket (required for any request)
 *   NITRIDE_SHIM_DEVICE    the emulated /dev/sev-guest path (default /dev/sev-guest)
 *   NITRIDE_SHIM_TSM_ROOT  a real, empty directory emulating /sys/kernel/config/tsm/report
 *   NITRIDE_SHIM_FAULT     comma-separated faults:
 *       device-absent   open of the device fails ENOENT
 *       busy:N          the next N requests (ioctls or tsm report fetches) fail
 *                       EAGAIN with vmm_error BUSY
 *       fw-error        requests fail EIO with fw_error 0x16 (INVALID_PARAM)
 *       generation      each tsm report fetch bumps `generation` once more, as if
 *                       another writer had raced us
 *       vmpck-disabled  requests fail ENOTTY (the driver's disabled-VMPCK answer)
 *       provider-tdx    new tsm entries say provider "tdx_guest" (another TSM)
 *
 * /dev/sev-guest: open() of the device path returns a real fd on /dev/null,
 * remembered as the device.  ioctl() on it decodes struct
 * snp_guest_request_ioctl as the kernel does: unknown request -> ENOTTY,
 * msg_version 0 or NULL pointers -> EINVAL; SNP_GET_EXT_REPORT checks that
 * certs_len is page-aligned and <= 16 KiB (EINVAL), treats certs_len 0 or a
 * NULL certs_address as a plain report, and answers a too-small buffer with
 * EIO, exitinfo2 = 1 << 32 and certs_len rewritten to the page-aligned size
 * needed.  The guest message itself goes to snpsimd unchanged (one simproto
 * frame) and the firmware's MSG_*_RSP is copied to resp_data.  The ioctl
 * struct is copied back (exitinfo2) on every path, as the kernel does.
 *
 * configfs-tsm: the root is a real directory.  mkdir of ROOT/<name> creates a
 * real directory holding provider ("sev_guest\n"), generation ("0\n") and
 * privlevel_floor ("0\n").  A write to privlevel (decimal 0..3, else EINVAL)
 * bumps generation at once; an inblob open that wrote (at most 64 bytes, else
 * EFBIG) bumps it when closed, as configfs commits binary attributes on
 * release.  Opening outblob or auxblob fetches an extended report from
 * snpsimd for the current generation (once per generation) and serves it as
 * real files; a failure is returned by the first read(), as configfs does
 * (inblob not 64 bytes or INVALID_KEY -> EINVAL, other firmware status ->
 * ENXIO, fault errnos as above).  rmdir removes the attributes and the
 * directory.
 *
 * Interposed: open, open64, __open_2, __open64_2, read, __read_chk, write,
 * close, ioctl, mkdir, rmdir (with -D_FORTIFY_SOURCE=2 glibc routes open()
 * and read() to the __*_2/__*_chk entry points).  Everything not ours is
 * passed to the next definition (dlsym RTLD_NEXT).
 *
 * Limits (this is a test double, not a kernel): paths are matched as
 * strings (use the same absolute spelling as the environment); no dup(),
 * openat(), fopen() or mmap() of emulated files; at most SHIM_MAX_FDS
 * emulated fds and SHIM_MAX_ENTRIES tsm entries; the tsm read/write
 * generation guard against 2^32 writes without a read is not modelled; one
 * global (recursive) lock.  Every too-small certificate answer and every
 * injected fault prints one "nitride-shim:" line on stderr so tests can
 * count them.
 */
#undef _FORTIFY_SOURCE
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "snp/guestmsg.h"
#include "snp/sevguest_uapi.h"
#include "snp/simproto.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SHIM_MAX_FDS 64
#define SHIM_MAX_ENTRIES 16
#define SHIM_INBLOB_MAX 64u
#define SHIM_FW_ERROR 0x16u

/* Declarations glibc only makes under _FORTIFY_SOURCE. */
int __open_2(const char *path, int flags);
int __open64_2(const char *path, int flags);
ssize_t __read_chk(int fd, void *buf, size_t nbytes, size_t buflen);

/* ---- the next definitions ------------------------------------------ */

typedef int (*open_fn)(const char *, int, ...);
typedef ssize_t (*read_fn)(int, void *, size_t);
typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef int (*close_fn)(int);
typedef int (*ioctl_fn)(int, unsigned long, ...);
typedef int (*mkdir_fn)(const char *, mode_t);
typedef int (*rmdir_fn)(const char *);

static struct {
	open_fn open, open64;
	read_fn read;
	write_fn write;
	close_fn close;
	ioctl_fn ioctl;
	mkdir_fn mkdir;
	rmdir_fn rmdir;
} real;

static void *
next_sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (p == NULL) {
		/* Nothing sensible can follow.  stdio writes through libc internals,
		 * not through our write(). */
		fprintf(stderr, "nitride-shim: no next definition of %s\n", name);
		abort();
	}
	return p;
}

#define RESOLVE(field, name)                                      \
	do {                                                      \
		void *sym_ = next_sym(name);                      \
		memcpy(&real.field, &sym_, sizeof(sym_));         \
	} while (0)

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void
resolve_all_once(void)
{
	RESOLVE(open, "open");
	RESOLVE(open64, "open64");
	RESOLVE(read, "read");
	RESOLVE(write, "write");
	RESOLVE(close, "close");
	RESOLVE(ioctl, "ioctl");
	RESOLVE(mkdir, "mkdir");
	RESOLVE(rmdir, "rmdir");
}

static void
resolve_all(void)
{
	(void)pthread_once(&resolve_once, resolve_all_once);
}

/* ---- configuration and state ---------------------------------------- */

enum fd_kind { FD_DEVICE = 1, FD_INBLOB, FD_PRIVLEVEL, FD_OUTBLOB, FD_AUXBLOB };

struct shim_fd {
	int fd; /* -1 when the slot is free */
	enum fd_kind kind;
	char entry[PATH_MAX]; /* tsm entry directory */
	size_t wrote;
	int pending_errno; /* outblob/auxblob: the first read fails with this */
};

struct shim_entry {
	bool used;
	char path[PATH_MAX];
	bool cached;
	uint64_t cached_gen;
};

static pthread_mutex_t shim_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static bool configured;
static const char *cfg_socket;
static const char *cfg_device = SNP_DEFAULT_SEV_GUEST_DEVICE;
static const char *cfg_tsm_root;
static bool fault_device_absent, fault_fw_error, fault_generation, fault_vmpck, fault_tdx;
static unsigned long fault_busy;
static struct shim_fd fds[SHIM_MAX_FDS];
static struct shim_entry entries[SHIM_MAX_ENTRIES];

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = (int)sizeof(line) - 1;
	resolve_all();
	if (real.write(2, line, (size_t)n) < 0)
		return;
}

static void
configure(void)
{
	const char *f;

	if (configured)
		return;
	configured = true;
	for (size_t i = 0; i < SHIM_MAX_FDS; i++)
		fds[i].fd = -1;
	cfg_socket = getenv("NITRIDE_SHIM_SOCKET");
	if ((f = getenv("NITRIDE_SHIM_DEVICE")) != NULL && f[0] != '\0')
		cfg_device = f;
	if ((f = getenv("NITRIDE_SHIM_TSM_ROOT")) != NULL && f[0] != '\0')
		cfg_tsm_root = f;
	if ((f = getenv("NITRIDE_SHIM_FAULT")) != NULL) {
		char buf[256];
		char *p, *save = NULL;
		size_t n = strlen(f);

		if (n >= sizeof(buf))
			n = sizeof(buf) - 1;
		memcpy(buf, f, n);
		buf[n] = '\0';
		for (p = strtok_r(buf, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save)) {
			if (strcmp(p, "device-absent") == 0) {
				fault_device_absent = true;
			} else if (strcmp(p, "fw-error") == 0) {
				fault_fw_error = true;
			} else if (strcmp(p, "generation") == 0) {
				fault_generation = true;
			} else if (strcmp(p, "vmpck-disabled") == 0) {
				fault_vmpck = true;
			} else if (strcmp(p, "provider-tdx") == 0) {
				fault_tdx = true;
			} else if (strncmp(p, "busy:", 5) == 0) {
				char *end = NULL;

				errno = 0;
				fault_busy = strtoul(p + 5, &end, 10);
				if (errno != 0 || end == p + 5 || *end != '\0')
					say("nitride-shim: bad fault \"%s\"\n", p);
			} else if (p[0] != '\0') {
				say("nitride-shim: unknown fault \"%s\"\n", p);
			}
		}
	}
}

static struct shim_fd *
fd_find(int fd)
{
	if (fd < 0)
		return NULL;
	for (size_t i = 0; i < SHIM_MAX_FDS; i++)
		if (fds[i].fd == fd)
			return &fds[i];
	return NULL;
}

static struct shim_fd *
fd_add(int fd, enum fd_kind kind, const char *entry)
{
	for (size_t i = 0; i < SHIM_MAX_FDS; i++) {
		if (fds[i].fd == -1) {
			memset(&fds[i], 0, sizeof(fds[i]));
			fds[i].fd = fd;
			fds[i].kind = kind;
			if (entry != NULL)
				(void)snprintf(fds[i].entry, sizeof(fds[i].entry), "%s", entry);
			return &fds[i];
		}
	}
	return NULL;
}

static struct shim_entry *
entry_find(const char *path, bool create)
{
	struct shim_entry *freeslot = NULL;

	for (size_t i = 0; i < SHIM_MAX_ENTRIES; i++) {
		if (entries[i].used && strcmp(entries[i].path, path) == 0)
			return &entries[i];
		if (!entries[i].used && freeslot == NULL)
			freeslot = &entries[i];
	}
	if (!create || freeslot == NULL)
		return NULL;
	memset(freeslot, 0, sizeof(*freeslot));
	freeslot->used = true;
	(void)snprintf(freeslot->path, sizeof(freeslot->path), "%s", path);
	return freeslot;
}

/*
 * Classify a path.  Returns 0 (not ours), FD_DEVICE, or an attribute kind
 * with entry[] set to its entry directory; *is_entry when the path is an
 * entry directory itself (ROOT/<name>).
 */
static int
classify(const char *path, char entry[PATH_MAX], bool *is_entry)
{
	static const struct {
		const char *name;
		enum fd_kind kind;
	} attrs[] = {
		{ "inblob", FD_INBLOB },
		{ "privlevel", FD_PRIVLEVEL },
		{ "outblob", FD_OUTBLOB },
		{ "auxblob", FD_AUXBLOB },
	};
	const char *rest, *slash;
	size_t rl;

	*is_entry = false;
	if (path == NULL)
		return 0;
	if (strcmp(path, cfg_device) == 0)
		return FD_DEVICE;
	if (cfg_tsm_root == NULL)
		return 0;
	rl = strlen(cfg_tsm_root);
	if (strncmp(path, cfg_tsm_root, rl) != 0 || path[rl] != '/' || path[rl + 1] == '\0')
		return 0;
	rest = path + rl + 1;
	if ((slash = strchr(rest, '/')) == NULL) {
		*is_entry = true;
		(void)snprintf(entry, PATH_MAX, "%s", path);
		return 0;
	}
	if (strchr(slash + 1, '/') != NULL)
		return 0;
	(void)snprintf(entry, PATH_MAX, "%.*s", (int)(slash - path), path);
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++)
		if (strcmp(slash + 1, attrs[i].name) == 0)
			return (int)attrs[i].kind;
	return 0;
}

/* ---- small file helpers (real calls only) --------------------------- */

static int
file_put(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[PATH_MAX];
	const uint8_t *p = buf;
	int fd, r = 0;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = real.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = real.write(fd, p, len);

		if (n <= 0) {
			r = -EIO;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	real.close(fd);
	return r;
}

/* Read at most cap bytes of dir/name.  Returns the length or -errno. */
static ssize_t
file_get(const char *dir, const char *name, uint8_t *buf, size_t cap)
{
	char path[PATH_MAX];
	size_t used = 0;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = real.open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	while (used < cap) {
		ssize_t n = real.read(fd, buf + used, cap - used);

		if (n <= 0)
			break;
		used += (size_t)n;
	}
	real.close(fd);
	return (ssize_t)used;
}

static uint64_t
gen_get(const char *entry)
{
	char text[32];
	ssize_t n = file_get(entry, "generation", (uint8_t *)text, sizeof(text) - 1);

	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoull(text, NULL, 10);
}

static void
gen_bump(const char *entry, unsigned by)
{
	char text[32];
	int n = snprintf(text, sizeof(text), "%" PRIu64 "\n", gen_get(entry) + by);

	(void)file_put(entry, "generation", text, (size_t)n);
}

/* ---- snpsimd -------------------------------------------------------- */

/* One frame to snpsimd and its answer.  Returns 0 or -errno. */
static int
sim_forward(uint16_t type, const uint8_t *req, size_t len, uint8_t **rsp, size_t *rsp_len)
{
	struct sockaddr_un sa;
	uint16_t rtype = 0;
	int s, r;

	if (cfg_socket == NULL || strlen(cfg_socket) >= sizeof(sa.sun_path)) {
		say("nitride-shim: NITRIDE_SHIM_SOCKET is not set (or too long)\n");
		return -ENXIO;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, cfg_socket, strlen(cfg_socket) + 1);
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(s, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = -errno;
		say("nitride-shim: cannot reach snpsimd at %s\n", cfg_socket);
		real.close(s);
		return r;
	}
	if ((r = simproto_write(s, type, req, len)) == 0 &&
	    (r = simproto_read(s, &rtype, rsp, rsp_len, SIMPROTO_MAX_PAYLOAD)) == 0 &&
	    rtype != (uint16_t)(type | SIM_MSG_RESPONSE)) {
		say("nitride-shim: snpsimd answered type 0x%x\n", (unsigned)rtype);
		free(*rsp);
		*rsp = NULL;
		r = -EIO;
	}
	real.close(s);
	return r;
}

/* Faults shared by the ioctls and tsm fetches.  Returns 0 or the errno to fail
 * with, and sets *exitinfo2 as the kernel would. */
static int
apply_faults(uint64_t *exitinfo2)
{
	if (fault_vmpck) {
		say("nitride-shim: fault vmpck-disabled: ENOTTY\n");
		return ENOTTY;
	}
	if (fault_busy > 0) {
		fault_busy--;
		say("nitride-shim: fault busy: EAGAIN (%lu more)\n", fault_busy);
		*exitinfo2 = (uint64_t)SNP_VMM_ERR_BUSY << SNP_VMM_ERR_SHIFT;
		return EAGAIN;
	}
	if (fault_fw_error) {
		say("nitride-shim: fault fw-error: EIO, fw_error 0x%x\n", SHIM_FW_ERROR);
		*exitinfo2 = SHIM_FW_ERROR;
		return EIO;
	}
	return 0;
}

/* ---- /dev/sev-guest ------------------------------------------------- */

static int
do_report(const struct nt_snp_report_req *req, uint16_t type, struct nt_snp_report_resp *resp,
	  uint8_t **table, size_t *table_len)
{
	uint8_t *rsp = NULL;
	size_t len = 0, head;
	int r;

	if ((r = sim_forward(type, (const uint8_t *)req, sizeof(*req), &rsp, &len)) != 0)
		return -r;
	head = len < MSG_REPORT_RSP_SIZE ? len : MSG_REPORT_RSP_SIZE;
	memset(resp, 0, sizeof(*resp));
	memcpy(resp->data, rsp, head);
	if (table != NULL) {
		*table = NULL;
		*table_len = 0;
		if (len > head) {
			*table_len = len - head;
			if ((*table = malloc(*table_len)) == NULL) {
				free(rsp);
				return ENOMEM;
			}
			memcpy(*table, rsp + head, *table_len);
		}
	}
	free(rsp);
	return 0;
}

/* The kernel's snp_guest_ioctl for one request.  Returns 0 or an errno. */
static int
device_request(unsigned long nr, struct nt_snp_guest_request_ioctl *io)
{
	void *ureq = (void *)(uintptr_t)io->req_data;
	void *uresp = (void *)(uintptr_t)io->resp_data;
	int e;

	if (io->msg_version == 0)
		return EINVAL;
	io->exitinfo2 = NT_SNP_FW_NO_CALL_OLD;
	if (ureq == NULL || uresp == NULL)
		return EINVAL;
	if ((e = apply_faults(&io->exitinfo2)) != 0)
		return e;

	if (nr == NT_SNP_GET_DERIVED_KEY) {
		struct nt_snp_derived_key_req kreq;
		uint8_t *rsp = NULL;
		size_t len = 0;

		memcpy(&kreq, ureq, sizeof(kreq));
		if ((e = sim_forward(SIM_MSG_KEY, (const uint8_t *)&kreq, sizeof(kreq), &rsp,
				     &len)) != 0)
			return -e;
		memset(uresp, 0, sizeof(struct nt_snp_derived_key_resp));
		memcpy(uresp, rsp, len < MSG_KEY_RSP_SIZE ? len : MSG_KEY_RSP_SIZE);
		explicit_bzero(rsp, len);
		free(rsp);
		io->exitinfo2 = 0;
		return 0;
	}
	if (nr == NT_SNP_GET_REPORT) {
		struct nt_snp_report_req req;
		struct nt_snp_report_resp resp;

		memcpy(&req, ureq, sizeof(req));
		if ((e = do_report(&req, SIM_MSG_REPORT, &resp, NULL, NULL)) != 0)
			return e;
		memcpy(uresp, &resp, sizeof(resp));
		io->exitinfo2 = 0;
		return 0;
	}
	/* SNP_GET_EXT_REPORT */
	{
		struct nt_snp_ext_report_req ext;
		struct nt_snp_report_resp resp;
		uint8_t *table = NULL;
		size_t tlen = 0, need;

		memcpy(&ext, ureq, sizeof(ext));
		if (ext.certs_len > NT_SEV_FW_BLOB_MAX_SIZE || ext.certs_len % NT_SNP_PAGE_SIZE != 0)
			return EINVAL;
		if (ext.certs_len == 0 || ext.certs_address == 0) {
			if ((e = do_report(&ext.data, SIM_MSG_REPORT, &resp, NULL, NULL)) != 0)
				return e;
			memcpy(uresp, &resp, sizeof(resp));
			io->exitinfo2 = 0;
			return 0;
		}
		if ((e = do_report(&ext.data, SIM_MSG_EXT_REPORT, &resp, &table, &tlen)) != 0)
			return e;
		need = (tlen + NT_SNP_PAGE_SIZE - 1) / NT_SNP_PAGE_SIZE * NT_SNP_PAGE_SIZE;
		if (need > ext.certs_len) {
			uint32_t n32 = (uint32_t)need;

			say("nitride-shim: SNP_GET_EXT_REPORT certs_len %" PRIu32
			    " too small, need %zu: EIO\n",
			    ext.certs_len, need);
			memcpy((uint8_t *)ureq + offsetof(struct nt_snp_ext_report_req, certs_len),
			       &n32, sizeof(n32));
			io->exitinfo2 = (uint64_t)SNP_VMM_ERR_INVALID_LEN << SNP_VMM_ERR_SHIFT;
			free(table);
			return EIO;
		}
		memset((void *)(uintptr_t)ext.certs_address, 0, ext.certs_len);
		if (tlen > 0)
			memcpy((void *)(uintptr_t)ext.certs_address, table, tlen);
		free(table);
		memcpy(uresp, &resp, sizeof(resp));
		io->exitinfo2 = 0;
		return 0;
	}
}

static int
device_ioctl(unsigned long nr, void *arg)
{
	struct nt_snp_guest_request_ioctl io;
	int e;

	if (nr != NT_SNP_GET_REPORT && nr != NT_SNP_GET_DERIVED_KEY && nr != NT_SNP_GET_EXT_REPORT) {
		errno = ENOTTY;
		return -1;
	}
	if (arg == NULL) {
		errno = EFAULT;
		return -1;
	}
	memcpy(&io, arg, sizeof(io));
	e = device_request(nr, &io);
	memcpy(arg, &io, sizeof(io));
	if (e != 0) {
		errno = e;
		return -1;
	}
	return 0;
}

/* ---- configfs-tsm --------------------------------------------------- */

/* Make outblob/auxblob current for the entry's generation.  Returns 0 or an errno. */
static int
tsm_fetch(const char *entry_path)
{
	struct shim_entry *ent = entry_find(entry_path, true);
	struct snp_report_req m;
	struct nt_snp_report_req req;
	struct nt_snp_report_resp resp;
	uint8_t inblob[SHIM_INBLOB_MAX + 1], *table = NULL;
	char level[16];
	uint64_t gen = gen_get(entry_path), ignored = 0;
	uint32_t status = 0;
	const uint8_t *report = NULL;
	size_t tlen = 0;
	ssize_t n;
	int e;

	if (ent != NULL && ent->cached && ent->cached_gen == gen)
		return 0;
	/* Empty files until a report exists, so the real open succeeds. */
	(void)file_put(entry_path, "outblob", "", 0);
	(void)file_put(entry_path, "auxblob", "", 0);
	if ((n = file_get(entry_path, "inblob", inblob, sizeof(inblob))) != SNP_REPORT_DATA_LEN)
		return EINVAL; /* sev_guest: inblob must be exactly 64 bytes */
	memcpy(m.report_data, inblob, SNP_REPORT_DATA_LEN);
	m.vmpl = 0;
	if ((n = file_get(entry_path, "privlevel", (uint8_t *)level, sizeof(level) - 1)) > 0) {
		level[n] = '\0';
		m.vmpl = (uint32_t)strtoul(level, NULL, 10);
	}
	if ((e = apply_faults(&ignored)) != 0)
		return e;
	guestmsg_encode_report_req(&m, (uint8_t *)&req);
	if ((e = do_report(&req, SIM_MSG_EXT_REPORT, &resp, &table, &tlen)) != 0)
		return e;
	if (guestmsg_decode_report_rsp(resp.data, MSG_REPORT_RSP_SIZE, &status, &report) != 0) {
		free(table);
		return EIO;
	}
	if (status != SNP_FW_STATUS_SUCCESS) {
		free(table);
		return status == SNP_FW_STATUS_INVALID_KEY ? EINVAL : ENXIO;
	}
	if (file_put(entry_path, "outblob", report, SNP_REPORT_SIZE) != 0 ||
	    file_put(entry_path, "auxblob", table, tlen) != 0) {
		free(table);
		return EIO;
	}
	free(table);
	if (fault_generation) {
		say("nitride-shim: fault generation: another writer bumps %s/generation\n",
		    entry_path);
		gen_bump(entry_path, 1);
	}
	if (ent != NULL) {
		ent->cached = true;
		ent->cached_gen = gen_get(entry_path);
	}
	return 0;
}

static const char *const tsm_files[] = {
	"provider", "generation", "privlevel_floor", "privlevel", "inblob", "outblob", "auxblob",
};

static void
tsm_populate(const char *entry_path)
{
	if (fault_tdx)
		(void)file_put(entry_path, "provider", "tdx_guest\n", 10);
	else
		(void)file_put(entry_path, "provider", "sev_guest\n", 10);
	(void)file_put(entry_path, "generation", "0\n", 2);
	(void)file_put(entry_path, "privlevel_floor", "0\n", 2);
	(void)file_put(entry_path, "privlevel", "", 0);
	(void)file_put(entry_path, "inblob", "", 0);
}

/* ---- the interposed calls -------------------------------------------- */

static int
shim_open(bool is64, const char *path, int flags, mode_t mode)
{
	char entry[PATH_MAX];
	bool is_entry;
	int kind, fd, e = 0;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	kind = classify(path, entry, &is_entry);
	if (kind == 0) {
		pthread_mutex_unlock(&shim_lock);
		return is64 ? real.open64(path, flags, mode) : real.open(path, flags, mode);
	}
	if (kind == FD_DEVICE) {
		if (fault_device_absent) {
			say("nitride-shim: fault device-absent: %s ENOENT\n", path);
			fd = -1;
			e = ENOENT;
		} else if ((fd = real.open("/dev/null", O_RDWR | (flags & O_CLOEXEC))) < 0) {
			e = errno;
		}
	} else {
		int acc = flags & O_ACCMODE;

		if ((kind == FD_INBLOB || kind == FD_PRIVLEVEL) && acc == O_RDONLY) {
			fd = -1;
			e = EACCES; /* write-only attributes */
		} else if ((kind == FD_OUTBLOB || kind == FD_AUXBLOB) && acc != O_RDONLY) {
			fd = -1;
			e = EACCES; /* read-only attributes */
		} else {
			int pending = 0;

			if (kind == FD_OUTBLOB || kind == FD_AUXBLOB)
				pending = tsm_fetch(entry);
			else
				flags |= O_TRUNC;
			if ((fd = real.open(path, flags & ~O_CREAT, mode)) < 0) {
				e = errno;
			} else {
				struct shim_fd *s = fd_add(fd, (enum fd_kind)kind, entry);

				if (s != NULL)
					s->pending_errno = pending;
			}
		}
	}
	if (fd >= 0 && kind == FD_DEVICE && fd_add(fd, FD_DEVICE, NULL) == NULL) {
		real.close(fd);
		fd = -1;
		e = EMFILE;
	}
	pthread_mutex_unlock(&shim_lock);
	if (fd < 0)
		errno = e;
	return fd;
}

int
open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return shim_open(false, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | __O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return shim_open(true, path, flags, mode);
}

int
__open_2(const char *path, int flags)
{
	return shim_open(false, path, flags, 0);
}

int
__open64_2(const char *path, int flags)
{
	return shim_open(true, path, flags, 0);
}

ssize_t
read(int fd, void *buf, size_t n)
{
	struct shim_fd *s;
	int e = 0;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	if ((s = fd_find(fd)) != NULL && s->pending_errno != 0)
		e = s->pending_errno;
	else if (s != NULL && s->kind == FD_DEVICE)
		e = EINVAL; /* the sev-guest driver has no read() */
	pthread_mutex_unlock(&shim_lock);
	if (e != 0) {
		errno = e;
		return -1;
	}
	return real.read(fd, buf, n);
}

ssize_t
__read_chk(int fd, void *buf, size_t nbytes, size_t buflen)
{
	if (nbytes > buflen)
		abort(); /* what glibc's __chk_fail does, minus the message */
	return read(fd, buf, nbytes);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	struct shim_fd *s;
	ssize_t w;
	int e = 0;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	s = fd_find(fd);
	if (s == NULL) {
		pthread_mutex_unlock(&shim_lock);
		return real.write(fd, buf, n);
	}
	if (s->kind == FD_INBLOB) {
		if (n > SHIM_INBLOB_MAX - s->wrote)
			e = EFBIG;
	} else if (s->kind == FD_PRIVLEVEL) {
		char text[16], *end = NULL;
		unsigned long v;

		if (n == 0 || n >= sizeof(text)) {
			e = EINVAL;
		} else {
			memcpy(text, buf, n);
			text[n] = '\0';
			errno = 0;
			v = strtoul(text, &end, 0);
			if (errno != 0 || end == text || (*end != '\0' && strcmp(end, "\n") != 0) ||
			    v > 3)
				e = EINVAL; /* kstrtouint and TSM_PRIVLEVEL_MAX */
		}
	} else if (s->kind == FD_DEVICE) {
		e = EINVAL;
	} else {
		e = EBADF;
	}
	if (e != 0) {
		pthread_mutex_unlock(&shim_lock);
		errno = e;
		return -1;
	}
	w = real.write(fd, buf, n);
	if (w > 0) {
		s->wrote += (size_t)w;
		if (s->kind == FD_PRIVLEVEL)
			gen_bump(s->entry, 1); /* a store commits at once */
	}
	pthread_mutex_unlock(&shim_lock);
	return w;
}

int
close(int fd)
{
	struct shim_fd *s;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	if ((s = fd_find(fd)) != NULL) {
		if (s->kind == FD_INBLOB && s->wrote > 0)
			gen_bump(s->entry, 1); /* configfs commits a binary attribute on release */
		s->fd = -1;
	}
	pthread_mutex_unlock(&shim_lock);
	return real.close(fd);
}

int
ioctl(int fd, unsigned long request, ...)
{
	struct shim_fd *s;
	void *arg;
	va_list ap;
	int r;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	s = fd_find(fd);
	if (s == NULL || s->kind != FD_DEVICE) {
		pthread_mutex_unlock(&shim_lock);
		return real.ioctl(fd, request, arg);
	}
	r = device_ioctl(request, arg);
	pthread_mutex_unlock(&shim_lock);
	return r;
}

int
mkdir(const char *path, mode_t mode)
{
	char entry[PATH_MAX];
	bool is_entry;
	int r;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	(void)classify(path, entry, &is_entry);
	r = real.mkdir(path, mode);
	if (r == 0 && is_entry) {
		struct shim_entry *ent = entry_find(entry, true);

		if (ent != NULL)
			ent->cached = false;
		tsm_populate(entry);
	}
	pthread_mutex_unlock(&shim_lock);
	return r;
}

int
rmdir(const char *path)
{
	char entry[PATH_MAX], file[PATH_MAX];
	bool is_entry;
	int r;

	resolve_all();
	pthread_mutex_lock(&shim_lock);
	configure();
	(void)classify(path, entry, &is_entry);
	if (is_entry) {
		struct shim_entry *ent = entry_find(entry, false);

		for (size_t i = 0; i < sizeof(tsm_files) / sizeof(tsm_files[0]); i++)
			if (snprintf(file, sizeof(file), "%s/%s", entry, tsm_files[i]) <
			    (int)sizeof(file))
				(void)unlink(file);
		if (ent != NULL)
			ent->used = false;
	}
	r = real.rmdir(path);
	pthread_mutex_unlock(&shim_lock);
	return r;
}
