/*
 * config — provd's INI configuration (key = value, optional [provd] section).
 * Keys and defaults: docs/provd.md and deploy/provd/provd.example.ini.
 */
#ifndef NITRIDE_PROVISION_CONFIG_H
#define NITRIDE_PROVISION_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define PROVD_PATH_MAX 1024u

typedef struct provd_config {
	char listen_host[256];   /* default 127.0.0.1 */
	unsigned listen_port;    /* default 8444; 0: any free port (printed at start) */
	bool plain_http;         /* only with a loopback listen_host */
	char tls_cert[PROVD_PATH_MAX], tls_key[PROVD_PATH_MAX];
	char state_dir[PROVD_PATH_MAX];       /* required; mode 0700 */
	char database[PROVD_PATH_MAX];        /* default <state_dir>/provd.db */
	char master_key[PROVD_PATH_MAX];      /* default <state_dir>/master.key */
	char audit_log[PROVD_PATH_MAX];       /* default <state_dir>/audit.log */
	char as_jwks[PROVD_PATH_MAX];         /* required: the Attestation Service's keys */
	char issuer[256];                     /* required: accepted "iss" */
	unsigned clock_skew;                  /* seconds, default 60 */
	unsigned max_body;                    /* bytes, default 65536 */
	unsigned workers;                     /* default 4; 0: one per CPU */
	char admin_tokens[PROVD_PATH_MAX];    /* "role sha256hex [label]" lines */
	char admin_client_ca[PROVD_PATH_MAX]; /* CA of admin client certificates (role = OU) */
} provd_config;

/* Read `path` into *c (defaults first).  On failure returns -1 with a message
 * naming the file, the line and the key. */
__attribute__((warn_unused_result)) int provd_config_load(const char *path, provd_config *c,
							  char *err, size_t errlen);

/* Admin bearer tokens, stored as SHA-256 hashes. */
typedef enum { ROLE_NONE = 0, ROLE_AUDITOR = 1, ROLE_ADMIN = 2 } provd_role;

typedef struct provd_admins provd_admins;

/* Parse the tokens file (path "" gives an empty list): one "admin|auditor <64 hex> [label]" per line, '#'
 * comments.  Errors name the file and line. */
__attribute__((warn_unused_result)) int provd_admins_load(const char *path, provd_admins **out,
							  char *err, size_t errlen);
void provd_admins_free(provd_admins *a);
/* The role of a presented token (constant time in the token); ROLE_NONE
 * when unknown.  *label gets the entry's label (borrowed) for the log. */
provd_role provd_admins_role(const provd_admins *a, const char *token, size_t len,
			     const char **label);

#endif
