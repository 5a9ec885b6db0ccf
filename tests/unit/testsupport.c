#include "testsupport.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/fileio.h"

const char *
ts_vectors_dir(void)
{
	const char *d = getenv("NITRIDE_VECTORS");

	if (d == NULL || *d == '\0')
		d = getenv("NITRIDE_VECTORS_DEFAULT");
	return d != NULL ? d : "../shared/vectors";
}

void
ts_require_vectors(void)
{
	struct stat st;
	char path[4096];

	(void)snprintf(path, sizeof(path), "%s/snp/cases.tsv", ts_vectors_dir());
	if (stat(path, &st) != 0) {
		fprintf(stderr, "SKIP: SEV-SNP vectors not found at %s (set NITRIDE_VECTORS)\n",
			ts_vectors_dir());
		exit(77);
	}
}

uint8_t *
ts_read_file(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	int r;

	if ((r = file_read_all(path, 16u << 20, &buf, len)) != 0)
		fail_msg("cannot read %s: error %d", path, r);
	return buf;
}

uint8_t *
ts_read_vector(const char *rel, size_t *len)
{
	char path[4096];

	(void)snprintf(path, sizeof(path), "%s/%s", ts_vectors_dir(), rel);
	return ts_read_file(path, len);
}

static int
unix_accepts(const char *sock)
{
	struct sockaddr_un sa;
	int fd, ok;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(sock) >= sizeof(sa.sun_path) || (fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return 0;
	memcpy(sa.sun_path, sock, strlen(sock));
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

char *
ts_scratch_dir(const char *tag)
{
	const char *base = getenv("NITRIDE_TEST_TMP");
	char *d = NULL;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	(void)mkdir(base, 0700);
	if (asprintf(&d, "%s/%s-XXXXXX", base, tag) < 0 || mkdtemp(d) == NULL)
		fail_msg("scratch directory %s/%s-…: cannot create it", base, tag);
	return d;
}

pid_t
ts_daemon_start(const char *exe, const char *config, const char *sock)
{
	pid_t pid = fork();
	int i;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl(exe, exe, "--config", config, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 1000 && !unix_accepts(sock); i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			fail_msg("%s --config %s exited before listening on %s", exe, config, sock);
		usleep(10000);
	}
	if (!unix_accepts(sock))
		fail_msg("%s did not listen on %s within 10 s", exe, sock);
	return pid;
}

int
ts_daemon_stop(pid_t pid)
{
	int st = 0;

	if (pid <= 0)
		return 0;
	if (kill(pid, SIGTERM) != 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}
