#include "common/inifile.h"

#include "common/fileio.h"

#include <errno.h>
#include <ini.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ctx {
	const char *path;
	const char *text; /* what inih has not read yet */
	unsigned line;
	inifile_handler handler;
	void *arg;
	char *err;
	size_t errlen;
	bool failed;
};

/* An fgets() for inih over the text in memory that counts lines. */
static char *
read_line(char *str, int num, void *stream)
{
	struct ctx *c = stream;
	size_t n = 0, max;

	if (num <= 1 || c->text[0] == '\0')
		return NULL;
	max = (size_t)num - 1;
	while (n < max && c->text[n] != '\0' && c->text[n] != '\n')
		n++;
	if (n < max && c->text[n] == '\n')
		n++;
	memcpy(str, c->text, n);
	str[n] = '\0';
	c->text += n;
	/* A line longer than inih's buffer arrives in pieces: count it once. */
	if (n > 0 && (str[n - 1] == '\n' || c->text[0] == '\0'))
		c->line++;
	return str;
}

static int
on_entry(void *user, const char *section, const char *key, const char *value)
{
	struct ctx *c = user;
	char msg[512] = "";

	if (c->failed)
		return 0;
	if (c->handler(c->arg, section, key, value, msg, sizeof(msg)) != 0) {
		(void)snprintf(c->err, c->errlen, "%s:%u: %s", c->path, c->line,
			       msg[0] != '\0' ? msg : "rejected");
		c->failed = true;
		return 0;
	}
	return 1;
}

int
inifile_load(const char *path, inifile_handler handler, void *arg, char *err, size_t errlen)
{
	struct ctx c;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = -1, rc;

	if ((rc = file_read_all(path, INIFILE_MAX, &buf, &len)) != 0) {
		(void)snprintf(err, errlen, "%s: %s", path,
			       rc == -EFBIG ? "larger than 64 KiB" : strerror(-rc));
		goto out;
	}
	if (memchr(buf, '\0', len) != NULL) {
		(void)snprintf(err, errlen, "%s: contains a NUL byte; not a text file", path);
		goto out;
	}
	memset(&c, 0, sizeof(c));
	c.path = path;
	c.text = (const char *)buf;
	c.handler = handler;
	c.arg = arg;
	c.err = err;
	c.errlen = errlen;
	rc = ini_parse_stream(read_line, &c, on_entry, &c);
	if (c.failed)
		goto out;
	if (rc != 0) {
		(void)snprintf(err, errlen, "%s:%d: not a 'key = value' line or a [section]", path, rc);
		goto out;
	}
	r = 0;
out:
	free(buf);
	return r;
}
