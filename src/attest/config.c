/*
 * attestd configuration (contract in config.h).
 */
#include "common/confval.h"
#include "attest/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>
#include <nitride/snp.h>

struct cctx {
	attestd_config *c;
	char msg[ATTESTD_CONFIG_ERR_MAX];
	bool failed;
};

static int
handler(void *user, const char *section, const char *name, const char *value)
{
	struct cctx *x = user;
	attestd_config *c = x->c;
	const char *why = NULL;

	if (x->failed)
		return 1; /* report only the first error */
	if (section[0] != '\0' && strcmp(section, "attestd") != 0) {
		(void)snprintf(x->msg, sizeof(x->msg), "section [%s]: unknown (use [attestd] or none)",
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
#define BOOL(k, f)                                                                \
	else if (strcmp(name, k) == 0)                                            \
	{                                                                         \
		if (conf_bool(value, &c->f) != 0)                                \
			why = "expected yes or no";                               \
	}
	if (strcmp(name, "listen") == 0) {
		if (conf_hostport(value, c->listen_host, sizeof(c->listen_host), &c->listen_port) != 0)
			why = "expected HOST:PORT (port 0..65535, [v6]:PORT for IPv6)";
	}
	BOOL("plain_http", plain_http)
	STR("tls_cert", tls_cert)
	STR("tls_key", tls_key)
	STR("state_dir", state_dir)
	STR("policy", policy)
	STR("issuer", issuer)
	UINT("token_lifetime", token_lifetime, 10, 86400)
	UINT("nonce_ttl", nonce_ttl, 1, 3600)
	UINT("nonce_cap", nonce_cap, 1, 10000000)
	UINT("workers", workers, 0, 256)
	STR("kds_url", kds_url)
	BOOL("kds_offline", kds_offline)
	UINT("kds_timeout", kds_timeout, 1, 300)
	UINT("kds_retries", kds_retries, 0, 10)
	STR("cache_dir", cache_dir)
	STR("roots_dir", roots_dir)
	STR("extra_roots_dir", extra_roots_dir)
	STR("admin_token", admin_token)
	UINT("max_body", max_body, 1024, 16777216)
	STR("audit_log", audit_log)
	else why = "unknown key";
#undef STR
#undef UINT
#undef BOOL
	if (why != NULL) {
		(void)snprintf(x->msg, sizeof(x->msg), "key \"%s\": %s", name, why);
		x->failed = true;
		return 0;
	}
	return 1;
}

int
attestd_config_load(const char *path, attestd_config *c, char *err, size_t errlen)
{
	struct cctx x = { 0 };
	int line;

	memset(c, 0, sizeof(*c));
	(void)conf_str(c->listen_host, sizeof(c->listen_host), "127.0.0.1");
	c->listen_port = 8443;
	(void)conf_str(c->issuer, sizeof(c->issuer), "attestd");
	c->token_lifetime = 300;
	c->nonce_ttl = 120;
	c->nonce_cap = 100000;
	(void)conf_str(c->kds_url, sizeof(c->kds_url), SNP_KDS_BASE_URL);
	c->kds_timeout = 10;
	c->kds_retries = 3;
	c->max_body = 256 * 1024;
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
	if (c->state_dir[0] == '\0') {
		(void)snprintf(err, errlen, "%s: key \"state_dir\": required", path);
		return -1;
	}
	if (c->policy[0] == '\0') {
		(void)snprintf(err, errlen, "%s: key \"policy\": required", path);
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
	if (c->cache_dir[0] == '\0' &&
	    snprintf(c->cache_dir, sizeof(c->cache_dir), "%s/cache", c->state_dir) >=
		    (int)sizeof(c->cache_dir)) {
		(void)snprintf(err, errlen, "%s: key \"state_dir\": path too long", path);
		return -1;
	}
	if (c->audit_log[0] == '\0' &&
	    snprintf(c->audit_log, sizeof(c->audit_log), "%s/audit.log", c->state_dir) >=
		    (int)sizeof(c->audit_log)) {
		(void)snprintf(err, errlen, "%s: key \"state_dir\": path too long", path);
		return -1;
	}
	return 0;
}
