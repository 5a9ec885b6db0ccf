/*
 * config — attestd's INI configuration (key = value, optional [attestd] section).
 * Keys and defaults: docs/attestd.md and deploy/attestd/attestd.example.ini.
 */
#ifndef NITRIDE_ATTEST_CONFIG_H
#define NITRIDE_ATTEST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define ATTESTD_CONFIG_ERR_MAX 512u
#define ATTESTD_PATH_MAX 1024u

typedef struct attestd_config {
	char listen_host[256];   /* "127.0.0.1" */
	unsigned listen_port;    /* 0: any free port (printed at start) */
	bool plain_http;         /* only with a loopback listen_host */
	char tls_cert[ATTESTD_PATH_MAX], tls_key[ATTESTD_PATH_MAX];
	char state_dir[ATTESTD_PATH_MAX];
	char policy[ATTESTD_PATH_MAX];
	char issuer[256];
	unsigned token_lifetime; /* seconds, default 300 */
	unsigned nonce_ttl;      /* seconds, default 120 */
	unsigned nonce_cap;      /* default 100000 */
	unsigned workers;        /* 0: one per online CPU */
	char kds_url[512];       /* default SNP_KDS_BASE_URL */
	bool kds_offline;        /* never fetch: cache and report tables only */
	unsigned kds_timeout;    /* seconds per request, default 10 */
	unsigned kds_retries;    /* default 3 */
	char cache_dir[ATTESTD_PATH_MAX]; /* default <state_dir>/cache */
	char roots_dir[ATTESTD_PATH_MAX]; /* AMD certificates (ark_/ask_/asvk_<p>.pem), checked against the built-in pins */
	char extra_roots_dir[ATTESTD_PATH_MAX]; /* e.g. the simulator's: ARKs here are PINNED */
	char admin_token[256];   /* bearer token for /v1/appraise; empty disables it */
	unsigned max_body;       /* bytes, default 262144 */
	char audit_log[ATTESTD_PATH_MAX]; /* default <state_dir>/audit.log; "-" = stderr */
} attestd_config;

/*
 * Read `path` into *c (defaults first).  On failure returns -1 with a message
 * in err naming the file, the line and the key ("attestd.ini:7: key
 * \"listen\": expected HOST:PORT").  Checks cross-key rules too (plain_http
 * only on loopback, TLS files present otherwise, state_dir and policy set).
 */
__attribute__((warn_unused_result)) int attestd_config_load(const char *path, attestd_config *c,
							    char *err, size_t errlen);

#endif
