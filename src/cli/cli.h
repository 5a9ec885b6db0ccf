/*
 * The `nitride` command line: shared declarations of its subcommands.
 */
#ifndef NITRIDE_CLI_H
#define NITRIDE_CLI_H

#include <nitride/snp.h>

#include <jansson.h>

/* Exit codes shared by every command (DESIGN.md §7). */
enum {
	EXIT_OK = 0,       /* success, or the evidence verified */
	EXIT_NEGATIVE = 1, /* a negative answer: rejected evidence, denied request */
	EXIT_USAGE = 2     /* usage or I/O error */
};

/* Cap for every file the CLI reads (reports, tables, certificates, CRLs). */
#define CLI_FILE_MAX (1u << 20)

int cmd_report(int argc, char **argv);
int cmd_report_get(int argc, char **argv); /* nitride report get */
int cmd_key(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_measure(int argc, char **argv);
int cmd_collateral(int argc, char **argv);

/* Parse a decimal or 0x-hex number in [0, max]; prints an error naming `what`. */
int cli_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *out);

/* The report as JSON (field names of docs/snp.md); TCBs decoded for `product`.
 * Returns a new reference, or NULL when out of memory. */
json_t *report_to_json(const snp_report *r, snp_product product);
/* A TCB_VERSION as {"raw":"0x…","bootloader":…,…} (+ "fmc" on Turin). */
json_t *tcb_to_json(uint64_t raw, snp_product product);

/* Print `json` (compact keys in insertion order, indented) to stdout; returns 0 or -1. */
int cli_print_json(json_t *json);

#endif
