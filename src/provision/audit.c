/*
 * Append-only audit log (contract in audit.h).
 */
#include "provision/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"

#define AUDIT_FILE_MAX (1024u * 1024u * 1024u)

struct audit_log {
	char *path;
	int fd;
	size_t seq;
	char head[AUDIT_HASH_HEX];
	pthread_mutex_t lock;
};

const char *
audit_path(const audit_log *a)
{
	return a->path;
}

void
audit_close(audit_log *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

int
audit_open(const char *path, audit_log **out, char *err, size_t errlen)
{
	audit_log *a = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char why[256];
	int r = -1, fr;

	if ((a = calloc(1, sizeof(*a))) == NULL || (a->path = strdup(path)) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	a->fd = -1;
	(void)pthread_mutex_init(&a->lock, NULL);
	a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd < 0) {
		(void)snprintf(err, errlen, "audit log %s: %s", path, strerror(errno));
		goto out;
	}
	if ((fr = file_read_all(path, AUDIT_FILE_MAX, &buf, &len)) != 0) {
		(void)snprintf(err, errlen, "audit log %s: %s", path, strerror(-fr));
		goto out;
	}
	if (audit_chain_verify((const char *)buf, len, &a->seq, a->head, why, sizeof(why)) != 0) {
		(void)snprintf(err, errlen, "audit log %s: chain broken: %s (move it aside to start "
					    "a new log)",
			       path, why);
		goto out;
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	free(buf);
	audit_close(a);
	return r;
}

int
audit_append(audit_log *a, json_t *rec)
{
	json_t *line = NULL;
	char *text = NULL;
	size_t n;
	ssize_t w;
	int r = -1;

	(void)pthread_mutex_lock(&a->lock);
	line = json_pack("{s:I, s:s}", "seq", (json_int_t)(a->seq + 1), "prev", a->head);
	if (line == NULL || json_object_update_missing(line, rec) != 0 ||
	    (text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	n = strlen(text);
	text[n] = '\n';
	w = write(a->fd, text, n + 1);
	text[n] = '\0';
	if (w != (ssize_t)(n + 1)) {
		/* A short write would break the chain; nothing sensible remains but to
		 * say so.  Callers treat this as "not logged". */
		goto out;
	}
	(void)fdatasync(a->fd);
	audit_line_hash(text, n, a->head);
	a->seq++;
	r = 0;
out:
	(void)pthread_mutex_unlock(&a->lock);
	free(text);
	json_decref(line);
	return r;
}

void
audit_head(audit_log *a, size_t *records, char head[AUDIT_HASH_HEX])
{
	(void)pthread_mutex_lock(&a->lock);
	*records = a->seq;
	memcpy(head, a->head, AUDIT_HASH_HEX);
	(void)pthread_mutex_unlock(&a->lock);
}
