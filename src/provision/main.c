/*
 * provd — the Nitride Provisioning Service (docs/provd.md).
 *
 *   provd --config FILE [--check-config]
 *   provd --hash-token        (reads a token on stdin, prints its SHA-256)
 *
 * Foreground daemon: SIGTERM/SIGINT stop it, SIGHUP reloads the AS key set
 * and the admin tokens.  On start it prints "provd: listening <URL>" on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/sdnotify.h"
#include "common/statedir.h"
#include "provision/audit.h"
#include "provision/config.h"
#include "provision/seal.h"
#include "provision/secret.h"
#include "provision/server.h"
#include "provision/store.h"
#include "provision/token.h"
#include "provision/util.h"

static void
usage(FILE *f)
{
	(void)fprintf(f, "usage: provd --config FILE [--check-config]\n"
			 "       provd --hash-token < TOKEN\n"
			 "  --config FILE     INI configuration (docs/provd.md)\n"
			 "  --check-config    check the configuration, key set and token file, "
			 "then exit\n"
			 "  --hash-token      print the SHA-256 of the admin token read on stdin\n"
			 "                    (for the admin_tokens file)\n"
			 "  --help            this text\n"
			 "exit: 0 ok, 2 configuration or start-up error\n");
}

static int
hash_token(void)
{
	char buf[1024], hex[PROV_SHA256_HEX];
	size_t n = fread(buf, 1, sizeof(buf) - 1, stdin);

	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0 || n >= sizeof(buf) - 1) {
		(void)fprintf(stderr, "provd: --hash-token: expected a token of 1..1022 bytes on "
				      "stdin\n");
		return 2;
	}
	prov_sha256_hex(buf, n, hex);
	OPENSSL_cleanse(buf, sizeof(buf));
	(void)printf("%s\n", hex);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "check-config", no_argument, NULL, 'k' },
					      { "hash-token", no_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *cfg_path = NULL;
	bool check_only = false;
	provd_config cfg;
	char err[4096], bound[300];
	prov_jwks *jwks = NULL;
	provd_admins *admins = NULL;
	seal_key *mk = NULL;
	store *st = NULL;
	audit_log *audit = NULL;
	provd_server *srv = NULL;
	provd_services svc = { 0 };
	sigset_t set;
	int c, sig, rc = 2;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'k': check_only = true; break;
		case 't': return hash_token();
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)CRYPTO_secure_malloc_init(1u << 20, 64);
	prov_alloc_init();
	if (provd_config_load(cfg_path, &cfg, err, sizeof(err)) != 0 ||
	    prov_jwks_load(cfg.as_jwks, &jwks, err, sizeof(err)) != 0 ||
	    provd_admins_load(cfg.admin_tokens, &admins, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "provd: error: %s\n", err);
		goto out;
	}
	if (check_only) {
		(void)printf("provd: %s: configuration ok (as_jwks %s, admin_tokens %s)\n", cfg_path,
			     cfg.as_jwks, cfg.admin_tokens);
		rc = 0;
		goto out;
	}
	if (state_dir_ensure(cfg.state_dir, err, sizeof(err)) != 0 ||
	    seal_key_open(cfg.master_key, true, &mk, err, sizeof(err)) != 0 ||
	    store_sqlite_open(cfg.database, mk, &st, err, sizeof(err)) != 0 ||
	    audit_open(cfg.audit_log, &audit, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "provd: error: %s\n", err);
		goto out;
	}
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGHUP);
	(void)pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	svc.cfg = &cfg;
	svc.st = st;
	svc.audit = audit;
	svc.jwks = jwks;
	svc.admins = admins;
	if (provd_server_start(&svc, &srv, bound, sizeof(bound), err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "provd: error: %s\n", err);
		goto out;
	}
	jwks = NULL;
	admins = NULL;
	prov_log("info", "started: %s, issuer %s, database %s", bound, cfg.issuer, cfg.database);
	(void)printf("provd: listening %s\n", bound);
	(void)fflush(stdout);
	sd_notify_msg("READY=1");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			prov_jwks *nj = NULL;
			provd_admins *na = NULL;

			if (prov_jwks_load(cfg.as_jwks, &nj, err, sizeof(err)) != 0 ||
			    provd_admins_load(cfg.admin_tokens, &na, err, sizeof(err)) != 0) {
				prov_log("error", "reload failed, keeping the old keys and tokens: %s",
					 err);
				prov_jwks_free(nj);
				continue;
			}
			provd_server_reload(srv, nj, na);
			prov_log("info", "reloaded %s and %s", cfg.as_jwks, cfg.admin_tokens);
			continue;
		}
		prov_log("info", "signal %d: stopping", sig);
		break;
	}
	rc = 0;
out:
	provd_server_stop(srv);
	audit_close(audit);
	store_close(st);
	seal_key_free(mk);
	secret_cache_clear();
	provd_admins_free(admins);
	prov_jwks_free(jwks);
	return rc;
}
