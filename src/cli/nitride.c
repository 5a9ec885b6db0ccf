/*
 * nitride — the administrator's command line: reports, verification, and
 * measurements, secrets on the Provisioning Service, and diagnosis.
 */
#include "cli/cli.h"
#include "cli/cmd_provision.h"

#include <stdio.h>
#include <string.h>

static void
usage(FILE *f)
{
	fputs("usage: nitride <command> [arguments]\n"
	      "\n"
	      "commands:\n"
	      "  report show FILE [--json]        print every field of an attestation report\n"
	      "  report verify --report FILE ...  verify a report against AMD's chain\n"
	      "  report get -o FILE [...]         ask the SNP firmware for a report\n"
	      "  key derive [...]                 derive a key from the SNP firmware\n"
	      "  doctor                           is this an SEV-SNP guest? which backend?\n"
	      "  measure --mode snp --ovmf F ...  expected launch measurement (SEV, SEV-ES, SEV-SNP)\n"
	      "  collateral export|import ...     offline bundle of attestd's collateral cache\n"
	      "  secret put|list|versions|rm ...  secrets on the Provisioning Service (provd)\n"
	      "  policy set|show NAME ...         release policies on provd\n"
	      "  audit show|verify [FILE]         provd's audit log and its hash chain\n"
	      "\n"
	      "Run 'nitride <command> --help' for the options of a command.\n"
	      "Exit status: 0 success, 1 a negative answer (rejected evidence), 2 usage or I/O error.\n",
	      f);
}

int
cli_print_json(json_t *json)
{
	if (json == NULL || json_dumpf(json, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0)
		return -1;
	fputc('\n', stdout);
	return fflush(stdout) == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "report") == 0)
		return cmd_report(argc - 1, argv + 1);
	if (strcmp(argv[1], "key") == 0)
		return cmd_key(argc - 1, argv + 1);
	if (strcmp(argv[1], "doctor") == 0)
		return cmd_doctor(argc - 1, argv + 1);
	if (strcmp(argv[1], "measure") == 0)
		return cmd_measure(argc - 1, argv + 1);
	if (strcmp(argv[1], "collateral") == 0)
		return cmd_collateral(argc - 1, argv + 1);
	if (strcmp(argv[1], "secret") == 0)
		return cmd_secret(argc - 1, argv + 1);
	if (strcmp(argv[1], "policy") == 0)
		return cmd_policy(argc - 1, argv + 1);
	if (strcmp(argv[1], "audit") == 0)
		return cmd_audit(argc - 1, argv + 1);
	fprintf(stderr, "nitride: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return EXIT_USAGE;
}
