/*
 * snpsimd — a simulated AMD SEV-SNP firmware and KDS for development and tests.
 *
 *   snpsimd --state-dir DIR [--launch FILE] [--<launch key> VALUE]... [--kds-listen ADDR:PORT]
 *   snpsimd --state-dir DIR --export-roots OUT
 *   snpsimd [--launch FILE] [--<launch key> VALUE]... --check-config
 *
 * Never trusted by default: its ARK is its own (docs/snpsim.md).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>

#include "common/sdnotify.h"
#include "sim/sim_firmware.h"
#include "sim/sim_kds.h"
#include "sim/sim_launch.h"
#include "sim/sim_log.h"
#include "sim/sim_server.h"
#include "sim/sim_state.h"

#define EXIT_USAGE 2
#define OPT_LAUNCH_KEY 1000 /* + index of the launch key */

enum {
	O_STATE_DIR = 256,
	O_LAUNCH,
	O_KDS_LISTEN,
	O_EXPORT_ROOTS,
	O_CHECK_CONFIG,
	O_HELP,
	O_VERBOSE,
	O_QUIET,
};

struct override {
	size_t key;
	const char *value;
	const char *flag;
};

static void
usage(FILE *f)
{
	size_t i;

	(void)fprintf(f,
		"usage: snpsimd --state-dir DIR [--launch FILE] [--KEY VALUE]... [--kds-listen ADDR:PORT]\n"
		"       snpsimd --state-dir DIR [--launch FILE] [--product P] --export-roots OUT\n"
		"       snpsimd [--launch FILE] [--KEY VALUE]... --check-config\n"
		"\n"
		"A simulated AMD SEV-SNP firmware (reports, extended reports, derived keys on\n"
		"DIR/snpsim.sock) and Key Distribution Service (loopback HTTP), for development\n"
		"and tests only.  Its ARK is its own: nothing trusts it unless told to\n"
		"(nitride report verify --roots OUT --pin-roots).  See docs/snpsim.md.\n"
		"\n"
		"  --state-dir DIR       keys, certificates and the chip secret (created 0700)\n"
		"  --launch FILE         launch configuration (INI; see deploy/snpsimd/launch.example.ini)\n"
		"  --kds-listen A:P      KDS address (default 127.0.0.1:0, an ephemeral port)\n"
		"  --export-roots OUT    write OUT/{ark,ask,asvk}_<product>.pem and exit\n"
		"  --check-config        validate and print the launch configuration and exit\n"
		"  --verbose, --quiet    more or less logging on stderr\n"
		"  --help                this text\n"
		"\n"
		"Launch keys (as flags, '_' may be written '-'; they override the file):\n");
	for (i = 0; i < sim_launch_key_count(); i++)
		(void)fprintf(f, "  --%-22s %s\n", sim_launch_key_name(i), sim_launch_key_help(i));
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	sim_log(SIM_LOG_INFO, "signal %d: stopping", (int)sig);
	event_base_loopbreak(arg);
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sim_server_accept(arg);
}

/* Run until SIGTERM/SIGINT.  Returns an exit status. */
static int
run(struct sim_state *st, const struct sim_launch *l, const char *kds_listen)
{
	char err[SIM_LAUNCH_ERR_MAX], sock[PATH_MAX];
	struct sim_fw *fw = NULL;
	struct sim_server *srv = NULL;
	struct sim_kds *kds = NULL;
	struct event_base *base = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_accept = NULL;
	int n, ret = EXIT_FAILURE;

	n = snprintf(sock, sizeof(sock), "%s/snpsim.sock", sim_state_dir(st));
	if (n < 0 || (size_t)n >= sizeof(sock)) {
		sim_log(SIM_LOG_ERROR, "state directory path too long");
		goto out;
	}
	if (sim_fw_new(l, st, &fw, err, sizeof(err)) != 0) {
		sim_log(SIM_LOG_ERROR, "launch: %s", err);
		goto out;
	}
	if ((base = event_base_new()) == NULL) {
		sim_log(SIM_LOG_ERROR, "event_base_new failed");
		goto out;
	}
	if (sim_server_start(sock, fw, &srv, err, sizeof(err)) != 0 ||
	    sim_kds_start(base, kds_listen, st, fw, &kds, err, sizeof(err)) != 0) {
		sim_log(SIM_LOG_ERROR, "%s", err);
		goto out;
	}
	if ((ev_term = evsignal_new(base, SIGTERM, on_signal, base)) == NULL ||
	    (ev_int = evsignal_new(base, SIGINT, on_signal, base)) == NULL ||
	    (ev_accept = event_new(base, sim_server_fd(srv), EV_READ | EV_PERSIST, on_accept, srv)) == NULL ||
	    event_add(ev_term, NULL) != 0 || event_add(ev_int, NULL) != 0 || event_add(ev_accept, NULL) != 0) {
		sim_log(SIM_LOG_ERROR, "cannot set up the event loop");
		goto out;
	}
	sim_log(SIM_LOG_INFO, "simulating a %s guest: report version %u, signed by its %s, VMPL %u",
		snp_product_name(l->product), l->report_version,
		l->signing_key == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK", l->guest_vmpl);
	/* Tests read this line: keep its format. */
	printf("snpsimd: socket %s kds http://127.0.0.1:%u\n", sock, sim_kds_port(kds));
	sd_notify_msg("READY=1");
	if (fflush(stdout) != 0) {
		sim_log(SIM_LOG_ERROR, "cannot write to stdout");
		goto out;
	}
	if (event_base_dispatch(base) < 0) {
		sim_log(SIM_LOG_ERROR, "event loop failed");
		goto out;
	}
	ret = EXIT_SUCCESS;
out:
	if (ev_accept != NULL)
		event_free(ev_accept);
	if (ev_term != NULL)
		event_free(ev_term);
	if (ev_int != NULL)
		event_free(ev_int);
	sim_server_stop(srv); /* unlinks the socket */
	sim_kds_free(kds);
	if (base != NULL)
		event_base_free(base);
	sim_fw_free(fw);
	if (ret == EXIT_SUCCESS)
		sim_log(SIM_LOG_INFO, "stopped");
	return ret;
}

int
main(int argc, char **argv)
{
	static const struct option fixed[] = {
		{ "state-dir", required_argument, NULL, O_STATE_DIR },
		{ "launch", required_argument, NULL, O_LAUNCH },
		{ "kds-listen", required_argument, NULL, O_KDS_LISTEN },
		{ "export-roots", required_argument, NULL, O_EXPORT_ROOTS },
		{ "check-config", no_argument, NULL, O_CHECK_CONFIG },
		{ "help", no_argument, NULL, O_HELP },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "quiet", no_argument, NULL, O_QUIET },
	};
	const size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
	const size_t nkeys = sim_launch_key_count();
	struct option *opts = NULL;
	char (*names)[64] = NULL;
	struct override *ovr = NULL;
	size_t novr = 0, i, j;
	const char *state_dir = NULL, *launch_file = NULL, *kds_listen = NULL, *export_dir = NULL;
	bool check_config = false;
	struct sim_launch l;
	struct sim_state *st = NULL;
	char err[SIM_LAUNCH_ERR_MAX];
	int c, count = 0, ret = EXIT_USAGE;

	(void)signal(SIGPIPE, SIG_IGN);
	/* Long options: the fixed ones, then every launch key with '-' and with '_'. */
	if ((opts = calloc(nfixed + 2 * nkeys + 1, sizeof(*opts))) == NULL ||
	    (names = calloc(nkeys, sizeof(*names))) == NULL ||
	    (ovr = calloc((size_t)argc, sizeof(*ovr))) == NULL) {
		(void)fprintf(stderr, "snpsimd: out of memory\n");
		ret = EXIT_FAILURE;
		goto out;
	}
	memcpy(opts, fixed, sizeof(fixed));
	for (i = 0; i < nkeys; i++) {
		const char *k = sim_launch_key_name(i);

		for (j = 0; k[j] != '\0' && j + 1 < sizeof(names[i]); j++)
			names[i][j] = k[j] == '_' ? '-' : k[j];
		opts[nfixed + 2 * i] = (struct option){ names[i], required_argument, NULL, (int)(OPT_LAUNCH_KEY + i) };
		opts[nfixed + 2 * i + 1] = (struct option){ k, required_argument, NULL, (int)(OPT_LAUNCH_KEY + i) };
	}
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_STATE_DIR: state_dir = optarg; break;
		case O_LAUNCH: launch_file = optarg; break;
		case O_KDS_LISTEN: kds_listen = optarg; break;
		case O_EXPORT_ROOTS: export_dir = optarg; break;
		case O_CHECK_CONFIG: check_config = true; break;
		case O_VERBOSE: sim_log_set_level(SIM_LOG_DEBUG); break;
		case O_QUIET: sim_log_set_level(SIM_LOG_WARN); break;
		case O_HELP:
			usage(stdout);
			ret = EXIT_SUCCESS;
			goto out;
		default:
			if (c >= OPT_LAUNCH_KEY && (size_t)(c - OPT_LAUNCH_KEY) < nkeys) {
				ovr[novr].key = (size_t)(c - OPT_LAUNCH_KEY);
				ovr[novr].value = optarg;
				ovr[novr].flag = names[c - OPT_LAUNCH_KEY];
				novr++;
				break;
			}
			usage(stderr);
			goto out;
		}
	}
	if (optind != argc) {
		(void)fprintf(stderr, "snpsimd: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (state_dir == NULL && !check_config) {
		(void)fprintf(stderr, "snpsimd: --state-dir DIR is required (see --help)\n");
		goto out;
	}
	ret = EXIT_FAILURE;
	sim_launch_init(&l);
	if (launch_file != NULL && sim_launch_load_file(&l, launch_file, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "snpsimd: %s\n", err);
		goto out;
	}
	for (i = 0; i < novr; i++) {
		if (sim_launch_set(&l, sim_launch_key_name(ovr[i].key), ovr[i].value, err, sizeof(err)) != 0) {
			(void)fprintf(stderr, "snpsimd: --%s: %s\n", ovr[i].flag, err);
			goto out;
		}
	}
	if (sim_launch_finalize(&l, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "snpsimd: %s%s%s\n", launch_file != NULL ? launch_file : "",
			      launch_file != NULL ? ": " : "", err);
		goto out;
	}
	if (check_config) {
		printf("snpsimd: configuration OK\n");
		sim_launch_print(&l, stdout);
		ret = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
		goto out;
	}
	if (sim_state_open(state_dir, &st, err, sizeof(err)) != 0 ||
	    sim_state_ensure_ca(st, l.product, err, sizeof(err)) != 0) {
		(void)fprintf(stderr, "snpsimd: %s\n", err);
		goto out;
	}
	if (export_dir != NULL) {
		if (sim_state_export_roots(st, export_dir, &count, err, sizeof(err)) != 0) {
			(void)fprintf(stderr, "snpsimd: --export-roots: %s\n", err);
			goto out;
		}
		printf("snpsimd: exported the roots of %d product%s to %s\n", count, count == 1 ? "" : "s",
		       export_dir);
		ret = fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
		goto out;
	}
	ret = run(st, &l, kds_listen);
out:
	sim_state_free(st);
	free(ovr);
	free(names);
	free(opts);
	return ret;
}
