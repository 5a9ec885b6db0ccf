/*
 * nitride doctor — is this an SEV-SNP guest, and can Nitride reach its firmware?
 *
 * Looks at every layer separately so the answer says what is missing:
 * the CPU (CPUID 8000_001Fh), the SEV_STATUS MSR (when /dev/cpu/0/msr is
 * readable), the kernel interfaces (configfs-tsm, /dev/sev-guest), and finally
 * the backend libsnp would pick, exercised with one real report request.
 */
#include "cli/cli.h"

#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MSR_AMD64_SEV_STATUS 0xC0010131u

struct probe {
	bool cpuid_known, cpu_sev, cpu_snp;
	int msr; /* -1 unreadable, else SEV_STATUS low bits */
	bool tsm, sev_guest_dev;
	bool backend_ok;
	char backend[256];
	char detail[SNP_ERROR_DETAIL_MAX + 64];
};

static void
probe_cpu(struct probe *p)
{
	unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;

	if ((unsigned int)__get_cpuid_max(0x80000000u, NULL) >= 0x8000001Fu &&
	    __get_cpuid(0x8000001Fu, &eax, &ebx, &ecx, &edx) != 0) {
		p->cpuid_known = true;
		p->cpu_sev = (eax & (1u << 1)) != 0;
		p->cpu_snp = (eax & (1u << 4)) != 0;
	}
}

static void
probe_msr(struct probe *p)
{
	uint64_t v = 0;
	int fd;

	p->msr = -1;
	if ((fd = open("/dev/cpu/0/msr", O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (pread(fd, &v, sizeof(v), MSR_AMD64_SEV_STATUS) == (ssize_t)sizeof(v))
		p->msr = (int)(v & 0x7);
	close(fd);
}

static void
probe_backend(struct probe *p, const char *spec)
{
	uint8_t data[SNP_REPORT_DATA_LEN] = { 0 };
	uint8_t *report = NULL;
	size_t len = 0;
	snp_error err = { 0 };
	snp_guest *g = NULL;

	if (snp_guest_open(spec, &g, &err) != SNP_OK) {
		(void)snprintf(p->detail, sizeof(p->detail), "%s", err.detail);
		return;
	}
	(void)snprintf(p->backend, sizeof(p->backend), "%s", snp_guest_spec(g));
	if (snp_guest_get_report(g, data, 0, &report, &len, NULL, NULL, &err) != SNP_OK)
		(void)snprintf(p->detail, sizeof(p->detail), "report request failed: %s", err.detail);
	else
		p->backend_ok = true;
	free(report);
	snp_guest_close(g);
}

static const char *
yesno(bool b)
{
	return b ? "yes" : "no";
}

int
cmd_doctor(int argc, char **argv)
{
	static const char usage[] =
		"usage: nitride doctor [--snp SPEC] [--json]\n"
		"Check whether this machine is an SEV-SNP guest and which backend Nitride\n"
		"would use.  Exit 0 only when a backend answers a report request.\n";
	static const struct option opts[] = {
		{ "snp", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe p = { 0 };
	const char *spec = NULL;
	struct stat st;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': spec = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	probe_cpu(&p);
	probe_msr(&p);
	p.tsm = stat(SNP_DEFAULT_TSM_ROOT, &st) == 0 && S_ISDIR(st.st_mode);
	p.sev_guest_dev = stat(SNP_DEFAULT_SEV_GUEST_DEVICE, &st) == 0;
	probe_backend(&p, spec);

	if (json) {
		json_t *o = json_pack("{s:b,s:b,s:b,s:o,s:b,s:b,s:s?,s:b,s:s?}",
				      "cpuid_known", p.cpuid_known, "cpu_sev", p.cpu_sev,
				      "cpu_snp", p.cpu_snp,
				      "sev_status_msr", p.msr < 0 ? json_null() : json_integer(p.msr),
				      "configfs_tsm", p.tsm, "dev_sev_guest", p.sev_guest_dev,
				      "backend", p.backend[0] != '\0' ? p.backend : NULL,
				      "usable", p.backend_ok,
				      "detail", p.detail[0] != '\0' ? p.detail : NULL);
		int r = cli_print_json(o);

		json_decref(o);
		if (r != 0)
			return EXIT_USAGE;
	} else {
		printf("CPU reports SEV / SEV-SNP (CPUID 8000_001Fh):  %s\n",
		       p.cpuid_known ? (p.cpu_snp ? "SEV-SNP" : p.cpu_sev ? "SEV only" : "neither") :
				       "leaf not available");
		if (p.msr < 0)
			printf("SEV_STATUS MSR:                                 not readable (needs root and the msr module)\n");
		else
			printf("SEV_STATUS MSR:                                 SEV %s, SEV-ES %s, SNP %s\n",
			       yesno(p.msr & 1), yesno(p.msr & 2), yesno(p.msr & 4));
		printf("configfs-tsm (%s): %s\n", SNP_DEFAULT_TSM_ROOT, yesno(p.tsm));
		printf("%s:                                 %s\n", SNP_DEFAULT_SEV_GUEST_DEVICE,
		       yesno(p.sev_guest_dev));
		printf("backend:                                        %s\n",
		       p.backend[0] != '\0' ? p.backend : "none");
		if (p.backend_ok)
			printf("usable: yes (a report request succeeded)\n");
		else
			printf("usable: no — %s\n", p.detail);
	}
	return p.backend_ok ? EXIT_OK : EXIT_NEGATIVE;
}
