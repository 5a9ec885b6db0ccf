/*
 * peer — who is on the other end of a Unix socket, as the kernel tells it.
 *
 * /proc/PID is only meaningful while PID names the process that connected.
 * We narrow the reuse window (docs/vhsm.md, "Caller identity and PID reuse"):
 *   1. SO_PEERPIDFD (Linux 6.5+) gives a pidfd for the very process that
 *      called connect(); otherwise pidfd_open(SO_PEERCRED pid) right after
 *      accept(), and the process's start time must not be later than accept().
 *   2. After reading /proc/PID/{exe,cgroup,stat} the pidfd must still name a
 *      live process with the same start time; otherwise the connection is refused.
 */
#include "vhsm/vhsmd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/hex.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define EXE_HASH_MAX (1024ull * 1024ull * 1024ull)

/* Field 22 of /proc/PID/stat (starttime, clock ticks since boot); 0 on failure. */
static unsigned long long
start_time(pid_t pid)
{
	char path[64], buf[1024], *p, *end;
	unsigned long long v = 0;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	/* comm may hold spaces and parentheses: start after the last ')'. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p++;
	for (field = 3; field <= 22 && *p; field++) {
		while (*p == ' ')
			p++;
		if (field == 22) {
			errno = 0;
			v = strtoull(p, &end, 10);
			if (errno != 0 || end == p)
				return 0;
			break;
		}
		while (*p && *p != ' ')
			p++;
	}
	return v;
}

static int
pidfd_alive(int pidfd)
{
	return syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0 ? 0 : -1;
}

/* The pid a pidfd names, from /proc/self/fdinfo; -1 if the process is gone. */
static pid_t
pidfd_pid(int pidfd)
{
	char path[64], buf[2048], *p;
	ssize_t n;
	int fd;
	long v;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	if ((p = strstr(buf, "\nPid:")) == NULL)
		return -1;
	v = strtol(p + 5, NULL, 10);
	return v > 0 ? (pid_t)v : -1;
}

static void
read_cgroup(pid_t pid, struct vhsm_principal *who)
{
	char path[64], buf[4096], *line, *next;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	for (line = buf; line != NULL && *line; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = 0;
		if (strncmp(line, "0::", 3) == 0 && strlen(line + 3) < sizeof(who->cgroup)) {
			snprintf(who->cgroup, sizeof(who->cgroup), "%s", line + 3);
			who->have_cgroup = true;
			return;
		}
	}
}

static void
hash_exe(pid_t pid, struct vhsm_principal *who)
{
	char path[64];
	uint8_t buf[65536];
	EVP_MD_CTX *ctx = NULL;
	unsigned long long total = 0;
	unsigned len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += (unsigned long long)n;
		if (total > EXE_HASH_MAX || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			goto out;
	}
	if (n == 0 && EVP_DigestFinal_ex(ctx, who->exe_sha256, &len) == 1 && len == 32)
		who->have_exe_sha256 = true;
out:
	EVP_MD_CTX_free(ctx);
	close(fd);
}

int
vhsmd_peer_identify(int fd, bool hash_exe_too, struct vhsm_principal *who)
{
	struct ucred uc;
	socklen_t sl = sizeof(uc);
	struct timespec now;
	unsigned long long st1, st2, accept_ticks;
	char path[64];
	ssize_t n;
	int pidfd = -1, r = -1;
	pid_t pid;

	memset(who, 0, sizeof(*who));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &sl) != 0 || sl != sizeof(uc))
		return -1;
	who->uid = uc.uid;
	who->gid = uc.gid;
	pid = uc.pid;
	clock_gettime(CLOCK_BOOTTIME, &now);
	accept_ticks = (unsigned long long)now.tv_sec * (unsigned long long)sysconf(_SC_CLK_TCK) +
		       (unsigned long long)now.tv_nsec / (1000000000ull / (unsigned long long)sysconf(_SC_CLK_TCK)) + 1;
	sl = sizeof(pidfd);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &sl) == 0 && pidfd >= 0) {
		pid_t p2 = pidfd_pid(pidfd);

		if (p2 <= 0)
			goto out; /* the connector is gone */
		pid = p2;
	} else {
		pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (pidfd < 0)
			goto out;
	}
	who->pid = pid;
	st1 = start_time(pid);
	if (st1 == 0 || st1 > accept_ticks)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, who->exe, sizeof(who->exe) - 1);
	if (n > 0) {
		who->exe[n] = 0;
		who->have_exe = true;
	}
	read_cgroup(pid, who);
	if (hash_exe_too)
		hash_exe(pid, who);
	/* Still the same process? */
	st2 = start_time(pid);
	if (pidfd_alive(pidfd) != 0 || st2 != st1)
		goto out;
	r = 0;
out:
	if (pidfd >= 0)
		close(pidfd);
	if (r != 0)
		memset(who, 0, sizeof(*who));
	return r;
}

const char *
vhsmd_peer_describe(const struct vhsm_principal *who, char *buf, size_t cap)
{
	char fp[65], subj[VHSM_TLS_SUBJECT_MAX];
	size_t i;

	if (!who->tls) {
		snprintf(buf, cap, "uid=%u pid=%d", (unsigned)who->uid, (int)who->pid);
		return buf;
	}
	/* vtls_principal's text is escaped ASCII already; stay safe regardless. */
	for (i = 0; who->tls_subject[i] && i + 1 < sizeof(subj); i++)
		subj[i] = (who->tls_subject[i] >= 0x20 && who->tls_subject[i] < 0x7f)
				  ? who->tls_subject[i]
				  : '?';
	subj[i] = 0;
	hex_encode(who->tls_sha256, sizeof(who->tls_sha256), fp);
	snprintf(buf, cap, "tls_sha256=%s tls_subject=\"%s\"", fp, subj);
	return buf;
}
