/*
 * provd configuration and admin tokens (contract in config.h).
 */
#include "common/confval.h"
#include "provision/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/fileio.h"
#include "common/hex.h"

#define CFG_ERR_MAX 512u

struct cctx {
	provd_config *c;
	char msg[CFG_ERR_MAX];
	bool failed;
};

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct cctx *x = user;
	provd_config *c = x->c;
	const char *why = NULL;

	if (x->failed)
		return 1;
	if (section[0] != '\0' && strcmp(section, "provd") != 0) {
		(void)snprintf(x->msg, sizeof(x->msg), "section [%s]: unknown (use [provd] or none)",
			       section);
		x->failed = true;
		return 0;
	}
#define STR(k, f)                                                                 \
	else if (strcmp(name, k) == 0)                                            \
	{                                                                         \
		if (conf_str(c->f, sizeof(c->f), value) != 0)                      \
			why = "value too long";                                   \
	}
#define UINT(k, f, lo, hi)                                                        \
	else if (strcmp(name, k) == 0)                                            \
	{                                                                         \
		if (conf_uint(value, lo, hi, &c->f) != 0)                        \
			why = "expected an integer " #lo ".." #hi;                \
	}
	if (strcmp(name, "listen") == 0) {
		if (conf_hostport(value, c->listen_host, sizeof(c->listen_host), &c->listen_port) != 0)
			why = "expected HOST:PORT (port 0..65535, [v6]:PORT for IPv6)";
	} else if (strcmp(name, "plain_http") == 0) {
		if (conf_bool(value, &c->plain_http) != 0)
			why = "expected yes or no";
	}
	STR("tls_cert", tls_cert)
	STR("tls_key", tls_key)
	STR("state_dir", state_dir)
	STR("database", database)
	STR("master_key", master_key)
	STR("audit_log", audit_log)
	STR("as_jwks", as_jwks)
	STR("issuer", issuer)
	UINT("clock_skew", clock_skew, 0, 600)
	UINT("max_body", max_body, 1024, 1048576)
	UINT("workers", workers, 0, 256)
	STR("admin_tokens", admin_tokens)
	STR("admin_client_ca", admin_client_ca)
	else why = "unknown key";
#undef STR
#undef UINT
	if (why != NULL) {
		(void)snprintf(x->msg, sizeof(x->msg), "key \"%s\": %s", name, why);
		x->failed = true;
		return 0;
	}
	return 1;
}

static int
default_path(char *dst, size_t cap, const char *dir, const char *file)
{
	if (dst[0] != '\0')
		return 0;
	return snprintf(dst, cap, "%s/%s", dir, file) < (int)cap ? 0 : -1;
}

int
provd_config_load(const char *path, provd_config *c, char *err, size_t errlen)
{
	struct cctx x = { 0 };
	int line;

	memset(c, 0, sizeof(*c));
	(void)conf_str(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	c->listen_port = 8444;
	c->clock_skew = 60;
	c->max_body = 65536;
	c->workers = 4;
	x.c = c;
	line = ini_parse(path, handler, &x);
	if (line == -1) {
		(void)snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (line != 0) {
		(void)snprintf(err, errlen, "%s:%d: %s", path, line,
			       x.failed ? x.msg : "syntax error (expected key = value)");
		return -1;
	}
#define REQUIRE(f)                                                                          \
	if (c->f[0] == '\0') {                                                              \
		(void)snprintf(err, errlen, "%s: key \"" #f "\": required", path);           \
		return -1;                                                                  \
	}
	REQUIRE(state_dir)
	REQUIRE(as_jwks)
	REQUIRE(issuer)
#undef REQUIRE
	if (c->admin_tokens[0] == '\0' && c->admin_client_ca[0] == '\0') {
		(void)snprintf(err, errlen, "%s: key \"admin_tokens\": required (or admin_client_ca)",
			       path);
		return -1;
	}
	if (c->admin_client_ca[0] != '\0' && c->plain_http) {
		(void)snprintf(err, errlen,
			       "%s: key \"admin_client_ca\": client certificates need TLS, not "
			       "plain_http",
			       path);
		return -1;
	}
	if (c->plain_http && !conf_is_loopback(c->listen_host)) {
		(void)snprintf(err, errlen,
			       "%s: key \"plain_http\": allowed only with a loopback listen address, "
			       "not %s",
			       path, c->listen_host);
		return -1;
	}
	if (!c->plain_http && (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0')) {
		(void)snprintf(err, errlen,
			       "%s: key \"tls_cert\"/\"tls_key\": required unless plain_http = yes "
			       "on loopback",
			       path);
		return -1;
	}
	if (default_path(c->database, sizeof(c->database), c->state_dir, "provd.db") != 0 ||
	    default_path(c->master_key, sizeof(c->master_key), c->state_dir, "master.key") != 0 ||
	    default_path(c->audit_log, sizeof(c->audit_log), c->state_dir, "audit.log") != 0) {
		(void)snprintf(err, errlen, "%s: key \"state_dir\": path too long", path);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ admin tokens */

#define ADMINS_MAX 256u

struct provd_admins {
	size_t n;
	struct {
		provd_role role;
		uint8_t hash[32];
		char label[64];
	} e[ADMINS_MAX];
};

/* The next blank-separated word of *p (NUL-terminated in place), or NULL. */
static char *
next_field(char **p)
{
	char *s = *p + strspn(*p, " \t\r"), *e;

	if (*s == '\0') {
		*p = s;
		return NULL;
	}
	e = s + strcspn(s, " \t\r");
	if (*e != '\0')
		*e++ = '\0';
	*p = e + strspn(e, " \t\r");
	return s;
}

void
provd_admins_free(provd_admins *a)
{
	free(a);
}

int
provd_admins_load(const char *path, provd_admins **out, char *err, size_t errlen)
{
	provd_admins *a = NULL;
	uint8_t *buf = NULL;
	size_t len = 0, lineno = 0;
	char *p, *nl, *role, *hash, *label, *save = NULL;
	int r = -1, fr;

	if (path[0] == '\0') {
		if ((a = calloc(1, sizeof(*a))) == NULL) {
			(void)snprintf(err, errlen, "out of memory");
			return -1;
		}
		*out = a;
		return 0;
	}
	if ((fr = file_read_all(path, 1u << 20, &buf, &len)) != 0) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(-fr));
		return -1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (p = (char *)buf; p != NULL && *p != '\0'; p = nl) {
		lineno++;
		nl = strchr(p, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		p += strspn(p, " \t\r");
		if (*p == '\0' || *p == '#')
			continue;
		save = p;
		role = next_field(&save);
		hash = next_field(&save);
		label = *save != '\0' ? save : NULL;
		if (label != NULL)
			label[strcspn(label, "\r")] = '\0';
		if (a->n == ADMINS_MAX) {
			(void)snprintf(err, errlen, "%s:%zu: more than %u tokens", path, lineno,
				       ADMINS_MAX);
			goto out;
		}
		if (role == NULL || (strcmp(role, "admin") != 0 && strcmp(role, "auditor") != 0)) {
			(void)snprintf(err, errlen, "%s:%zu: role must be admin or auditor", path,
				       lineno);
			goto out;
		}
		if (hash == NULL || strlen(hash) != 64 || hex_decode(hash, a->e[a->n].hash, 32) != 0) {
			(void)snprintf(err, errlen,
				       "%s:%zu: expected the SHA-256 of the token in 64 hex digits "
				       "(provd --hash-token)",
				       path, lineno);
			goto out;
		}
		a->e[a->n].role = strcmp(role, "admin") == 0 ? ROLE_ADMIN : ROLE_AUDITOR;
		if (label != NULL) {
			label += strspn(label, " \t");
			(void)snprintf(a->e[a->n].label, sizeof(a->e[a->n].label), "%s", label);
		} else
			(void)snprintf(a->e[a->n].label, sizeof(a->e[a->n].label), "line %zu",
				       lineno);
		a->n++;
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	free(buf);
	free(a);
	return r;
}

provd_role
provd_admins_role(const provd_admins *a, const char *token, size_t len, const char **label)
{
	uint8_t h[32];
	unsigned hl = 0;
	provd_role role = ROLE_NONE;
	size_t i;

	if (a == NULL || len == 0 || EVP_Digest(token, len, h, &hl, EVP_sha256(), NULL) != 1)
		return ROLE_NONE;
	/* Compare against every entry, whatever matches. */
	for (i = 0; i < a->n; i++)
		if (CRYPTO_memcmp(h, a->e[i].hash, 32) == 0) {
			role = a->e[i].role;
			*label = a->e[i].label;
		}
	OPENSSL_cleanse(h, sizeof(h));
	return role;
}
