/*
 * Append-only audit log (contract in audit.h).
 */
#include "provision/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"

#define AUDIT_FILE_MAX (1024u * 1024u * 1024u)

struct audit_log {
	char *path;
	int fd;
	size_t seq;                  /* records in the file (the last one written) */
	char head[AUDIT_HASH_HEX];
	pthread_mutex_t lock;        /* everything below, and the writes */
	pthread_cond_t work;         /* the syncer waits here for records to flush */
	pthread_cond_t done;         /* writers wait here for their record's flush */
	size_t synced;               /* records known durable */
	bool failed;                 /* a flush or a partial write failed: for good */
	bool stop;
	bool syncer_started;
	pthread_t syncer;
	audit_sync_fn sync_fn;
	void *sync_arg;
};

static int
sync_fdatasync(int fd, void *arg)
{
	(void)arg;
	return fdatasync(fd);
}

const char *
audit_path(const audit_log *a)
{
	return a->path;
}

void
audit_set_sync(audit_log *a, audit_sync_fn fn, void *arg)
{
	(void)pthread_mutex_lock(&a->lock);
	a->sync_fn = fn;
	a->sync_arg = arg;
	(void)pthread_mutex_unlock(&a->lock);
}

/*
 * The syncer: one fdatasync covers every record written before it started
 * (group commit).  Records written while it runs wait for the next one.
 */
static void *
syncer_main(void *arg)
{
	audit_log *a = arg;
	size_t target;
	int rc;

	(void)pthread_mutex_lock(&a->lock);
	for (;;) {
		while (!a->stop && (a->failed || a->synced >= a->seq))
			(void)pthread_cond_wait(&a->work, &a->lock);
		if (a->failed || a->synced >= a->seq)
			break; /* stopping, and nothing left that can be flushed */
		target = a->seq;
		(void)pthread_mutex_unlock(&a->lock);
		rc = a->sync_fn(a->fd, a->sync_arg);
		(void)pthread_mutex_lock(&a->lock);
		if (rc != 0)
			a->failed = true;
		else if (target > a->synced)
			a->synced = target;
		(void)pthread_cond_broadcast(&a->done);
	}
	(void)pthread_mutex_unlock(&a->lock);
	return NULL;
}

void
audit_close(audit_log *a)
{
	if (a == NULL)
		return;
	if (a->syncer_started) {
		(void)pthread_mutex_lock(&a->lock);
		a->stop = true;
		(void)pthread_cond_signal(&a->work);
		(void)pthread_mutex_unlock(&a->lock);
		(void)pthread_join(a->syncer, NULL);
	}
	if (a->fd >= 0)
		close(a->fd);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->done);
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
	sigset_t all, old;
	int r = -1, fr;

	if ((a = calloc(1, sizeof(*a))) == NULL || (a->path = strdup(path)) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	a->fd = -1;
	a->sync_fn = sync_fdatasync;
	(void)pthread_mutex_init(&a->lock, NULL);
	(void)pthread_cond_init(&a->work, NULL);
	(void)pthread_cond_init(&a->done, NULL);
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
	/* What is there now counts as durable from here on. */
	if (fdatasync(a->fd) != 0) {
		(void)snprintf(err, errlen, "audit log %s: fdatasync: %s", path, strerror(errno));
		goto out;
	}
	a->synced = a->seq;
	/* The syncer takes no signals: provd's main thread sigwaits for them. */
	(void)sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	fr = pthread_create(&a->syncer, NULL, syncer_main, a);
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (fr != 0) {
		(void)snprintf(err, errlen, "audit log %s: cannot start its syncer: %s", path,
			       strerror(fr));
		goto out;
	}
	a->syncer_started = true;
	*out = a;
	a = NULL;
	r = 0;
out:
	free(buf);
	audit_close(a);
	return r;
}

int
audit_write(audit_log *a, json_t *rec, uint64_t *ticket)
{
	json_t *line = NULL;
	char *text = NULL;
	size_t n;
	ssize_t w;
	int r = -1;

	(void)pthread_mutex_lock(&a->lock);
	if (a->failed)
		goto out;
	line = json_pack("{s:I, s:s}", "seq", (json_int_t)(a->seq + 1), "prev", a->head);
	if (line == NULL || json_object_update_missing(line, rec) != 0 ||
	    (text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER)) == NULL)
		goto out;
	n = strlen(text);
	text[n] = '\n';
	w = write(a->fd, text, n + 1);
	text[n] = '\0';
	if (w != (ssize_t)(n + 1)) {
		/* Part of a line breaks the chain for whatever follows: stop here.
		 * Callers treat this as "not logged". */
		if (w > 0)
			a->failed = true;
		goto out;
	}
	audit_line_hash(text, n, a->head);
	a->seq++;
	*ticket = (uint64_t)a->seq;
	(void)pthread_cond_signal(&a->work);
	r = 0;
out:
	(void)pthread_mutex_unlock(&a->lock);
	free(text);
	json_decref(line);
	return r;
}

int
audit_wait(audit_log *a, uint64_t ticket)
{
	int r;

	(void)pthread_mutex_lock(&a->lock);
	while (!a->failed && (uint64_t)a->synced < ticket)
		(void)pthread_cond_wait(&a->done, &a->lock);
	r = (uint64_t)a->synced >= ticket ? 0 : -1;
	(void)pthread_mutex_unlock(&a->lock);
	return r;
}

int
audit_append(audit_log *a, json_t *rec)
{
	uint64_t ticket = 0;

	if (audit_write(a, rec, &ticket) != 0)
		return -1;
	return audit_wait(a, ticket);
}

void
audit_head(audit_log *a, size_t *records, char head[AUDIT_HASH_HEX])
{
	(void)pthread_mutex_lock(&a->lock);
	*records = a->seq;
	memcpy(head, a->head, AUDIT_HASH_HEX);
	(void)pthread_mutex_unlock(&a->lock);
}
