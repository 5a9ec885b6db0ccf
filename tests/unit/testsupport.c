#include "testsupport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/fileio.h"

const char *
ts_vectors_dir(void)
{
	const char *d = getenv("NITRIDE_VECTORS");

	if (d == NULL || *d == '\0')
		d = getenv("NITRIDE_VECTORS_DEFAULT");
	return d != NULL ? d : "../shared/vectors";
}

void
ts_require_vectors(void)
{
	struct stat st;
	char path[4096];

	(void)snprintf(path, sizeof(path), "%s/snp/cases.tsv", ts_vectors_dir());
	if (stat(path, &st) != 0) {
		fprintf(stderr, "SKIP: SEV-SNP vectors not found at %s (set NITRIDE_VECTORS)\n",
			ts_vectors_dir());
		exit(77);
	}
}

uint8_t *
ts_read_file(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	int r;

	if ((r = file_read_all(path, 16u << 20, &buf, len)) != 0)
		fail_msg("cannot read %s: error %d", path, r);
	return buf;
}

uint8_t *
ts_read_vector(const char *rel, size_t *len)
{
	char path[4096];

	(void)snprintf(path, sizeof(path), "%s/%s", ts_vectors_dir(), rel);
	return ts_read_file(path, len);
}
