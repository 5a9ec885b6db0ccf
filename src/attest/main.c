/*
 * attestd — the Nitride Attestation Service (docs/attestd.md).
 *
 *   attestd --config FILE [--check-config]
 *
 * Foreground daemon: SIGTERM/SIGINT stop it (in-flight requests finish),
 * SIGHUP reloads the policy (requests in flight keep the policy they started
 * with).  On start it prints "attestd: listening <URL>" on stdout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/sdnotify.h"
#include "common/statedir.h"
#include "attest/collateral.h"
#include "attest/config.h"
#include "attest/nonce.h"
#include "attest/policy.h"
#include "attest/server.h"
#include "attest/token.h"

static void
usage(FILE *f)
{
	(void)fprintf(f,
		      "usage: attestd --config FILE [--check-config | --rotate-key]\n"
		      "  --config FILE     INI configuration (docs/attestd.md)\n"
		      "  --check-config    check the configuration, policy and roots, then exit\n"
		      "  --rotate-key      retire the token signing key (published until its tokens\n"
		      "                    expire); the next start creates a new one\n"
		      "  --help            this text\n"
		      "exit: 0 ok, 2 configuration or start-up error\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = { { "config", required_argument, NULL, 'c' },
					      { "check-config", no_argument, NULL, 'k' },
					      { "rotate-key", no_argument, NULL, 'r' },
					      { "help", no_argument, NULL, 'h' },
					      { NULL, 0, NULL, 0 } };
	const char *cfg_path = NULL;
	bool check_only = false, rotate = false;
	attestd_config cfg;
	char err[4096], bound[300];
	policy *pol = NULL;
	policy_holder *holder = NULL;
	nonce_store *nonces = NULL;
	collateral *coll = NULL;
	token_signer *signer = NULL;
	attestd_server *srv = NULL;
	attestd_services svc = { 0 };
	collateral_opts co = { 0 };
	FILE *audit = NULL;
	sigset_t set;
	int c, sig, rc = 2, fd;

	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'k': check_only = true; break;
		case 'r': rotate = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (cfg_path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (attestd_config_load(cfg_path, &cfg, err, sizeof(err)) != 0 ||
	    policy_load(cfg.policy, &pol, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "attestd: error: %s\n", err);
		goto out;
	}
	co.kds_url = cfg.kds_url;
	co.offline = cfg.kds_offline;
	co.timeout = cfg.kds_timeout;
	co.retries = cfg.kds_retries;
	co.cache_dir = check_only ? NULL : cfg.cache_dir;
	co.roots_dir = cfg.roots_dir;
	co.extra_roots_dir = cfg.extra_roots_dir;
	if (!check_only && state_dir_ensure(cfg.state_dir, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "attestd: error: %s: %s\n", cfg_path, err);
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		(void)fprintf(stderr, "attestd: error: libcurl initialisation failed\n");
		goto out;
	}
	if (collateral_new(&co, &coll, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "attestd: error: %s: %s\n", cfg_path, err);
		goto out;
	}
	if (check_only) {
		(void)printf("attestd: %s: configuration ok; policy %s ok (%s)\n", cfg_path, cfg.policy,
			     pol->digest);
		rc = 0;
		goto out;
	}
	if (rotate) {
		if (token_signer_retire(cfg.state_dir, err, sizeof(err)) != 0) {
			(void)fprintf(stderr, "attestd: error: %s\n", err);
			goto out;
		}
		(void)printf("attestd: signing key retired; restart attestd to create a new one\n");
		rc = 0;
		goto out;
	}
	if (token_signer_open(cfg.state_dir, cfg.token_lifetime + 60, &signer, err, sizeof(err)) !=
	    0) {
		(void)fprintf(stderr, "attestd: error: %s\n", err);
		goto out;
	}
	if (nonce_store_new(cfg.nonce_cap, cfg.nonce_ttl, &nonces) != NONCE_OK ||
	    policy_holder_new(pol, &holder) != 0) {
		(void)fprintf(stderr, "attestd: error: out of memory\n");
		goto out;
	}
	pol = NULL;
	if (strcmp(cfg.audit_log, "-") == 0) {
		audit = stderr;
	} else if ((fd = open(cfg.audit_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
		   (audit = fdopen(fd, "a")) == NULL) {
		(void)fprintf(stderr, "attestd: error: audit_log %s: %s\n", cfg.audit_log,
			      strerror(errno));
		goto out;
	}
	/* Signals are taken by sigwait() here; workers inherit the mask. */
	(void)sigemptyset(&set);
	(void)sigaddset(&set, SIGTERM);
	(void)sigaddset(&set, SIGINT);
	(void)sigaddset(&set, SIGHUP);
	(void)pthread_sigmask(SIG_BLOCK, &set, NULL);
	(void)signal(SIGPIPE, SIG_IGN);
	svc.cfg = &cfg;
	svc.policies = holder;
	svc.nonces = nonces;
	svc.coll = coll;
	svc.signer = signer;
	svc.audit = audit;
	if (attestd_server_start(&svc, &srv, bound, sizeof(bound), err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "attestd: error: %s\n", err);
		goto out;
	}
	attestd_log("info", "started: %s, key id %s, policy %s", bound, token_signer_kid(signer),
		    cfg.policy);
	(void)printf("attestd: listening %s\n", bound);
	(void)fflush(stdout);
	sd_notify_msg("READY=1");
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			policy *np = NULL;

			if (policy_load(cfg.policy, &np, err, sizeof(err)) != 0) {
				attestd_log("error", "policy reload failed, keeping the old one: %s", err);
				attestd_server_note_reload(srv, false);
				continue;
			}
			sd_notify_msg("RELOADING=1");
			attestd_log("info", "policy reloaded: %s", np->digest);
			policy_holder_swap(holder, np);
			sd_notify_msg("READY=1");
			attestd_server_note_reload(srv, true);
			continue;
		}
		attestd_log("info", "signal %d: stopping", sig);
		sd_notify_msg("STOPPING=1");
		break;
	}
	rc = 0;
out:
	attestd_server_stop(srv);
	if (audit != NULL && audit != stderr)
		(void)fclose(audit);
	policy_holder_free(holder);
	policy_free(pol);
	nonce_store_free(nonces);
	token_signer_free(signer);
	collateral_free(coll);
	curl_global_cleanup();
	return rc;
}
