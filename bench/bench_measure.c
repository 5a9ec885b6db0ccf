/*
 * bench_measure — what computing an SNP launch measurement costs next to the
 * one thing it cannot avoid, hashing the firmware bytes with SHA-384.
 *
 *   bench_measure [--seconds S] [--rounds N] [--size MIB] [--vcpus N] [--json]
 *
 * The image is synthetic (built here, no vectors needed): SIZE MiB (default
 * 4) of pseudo-random bytes ending in a valid OVMF GUID table (reset block,
 * SEV metadata) whose metadata declares the sections of edk2's AmdSevX64
 * build (0x25000 bytes of SEC_MEM, SECRETS, CPUID, SVSM_CAA, KERNEL_HASHES).
 * Modes, interleaved in N rounds of S seconds each so machine noise hits
 * them alike:
 *   sha384    EVP_Digest(SHA-384) over the whole image in one call: the floor.
 *   measure   snp_ovmf_parse_static + snp_measure (SNP, QEMU, N vCPUs, no
 *             kernel): the per-page SHA-384 plus the PAGE_INFO chain, the
 *             metadata pages and the VMSAs.
 * The figure is the median throughput of `measure` over that of `sha384`
 * (MB of image per second); the goal is >= 0.8.  Every digest is checked
 * against the first one: a change stops the run.
 *
 * Exit status: 0 done, 1 a measurement failed or changed, 2 usage.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include <nitride/snp_measure.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define MAX_ROUNDS 99

static double
now(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void
le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/*
 * Fill `img` (len bytes, len >= 64 KiB) with xorshift64 output, then write at
 * its end: ASEV metadata 0x1000 bytes before the end, and the GUID table
 * (reset block, metadata offset, footer) ending 32 bytes before the end.
 */
static void
build_image(uint8_t *img, size_t len)
{
	static const uint8_t g_footer[16] = { 0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
					      0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d };
	static const uint8_t g_reset[16] = { 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f,
					     0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e };
	static const uint8_t g_meta[16] = { 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
					    0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc };
	static const uint32_t sections[][3] = {
		{ 0x800000, 0x9000, 1 }, { 0x80A000, 0x3000, 1 }, { 0x80D000, 0x1000, 2 },
		{ 0x80E000, 0x1000, 3 }, { 0x80F000, 0x1000, 4 }, { 0x810000, 0x1000, 0x10 },
		{ 0x811000, 0xF000, 1 },
	};
	const size_t nsec = sizeof(sections) / sizeof(sections[0]);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	size_t i, meta = len - 0x1000, end, p;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(img + i, &x, 8);
	}
	memcpy(img + meta, "ASEV", 4);
	le32(img + meta + 4, (uint32_t)(16 + 12 * nsec));
	le32(img + meta + 8, 1);
	le32(img + meta + 12, (uint32_t)nsec);
	for (i = 0; i < nsec; i++) {
		le32(img + meta + 16 + 12 * i, sections[i][0]);
		le32(img + meta + 16 + 12 * i + 4, sections[i][1]);
		le32(img + meta + 16 + 12 * i + 8, sections[i][2]);
	}
	/* Table, backwards from the footer: [eip 4][18 hdr] [off 4][18 hdr] [footer 18]. */
	end = len - 32;
	p = end - 18;
	le16(img + p, 18 + 22 + 22);
	memcpy(img + p + 2, g_footer, 16);
	p -= 22;
	le32(img + p, 0x1000);
	le16(img + p + 4, 22);
	memcpy(img + p + 6, g_meta, 16);
	p -= 22;
	le32(img + p, 0x0080B004);
	le16(img + p + 4, 22);
	memcpy(img + p + 6, g_reset, 16);
}

static int
parse_uint(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || errno != 0 || *end != '\0' || v == 0 || v > max) {
		fprintf(stderr, "bench_measure: %s '%s': expected 1..%lu\n", opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int
main(int argc, char **argv)
{
	unsigned long rounds = 5, mib = 4, vcpus = 4;
	double seconds = 1.0, rate[2][MAX_ROUNDS], med[2];
	uint8_t first[SNP_LD_LEN], ld[SNP_LD_LEN], raw[SNP_LD_LEN];
	snp_measure_params prm;
	snp_error err = { 0 };
	EVP_MD *sha384 = NULL;
	uint8_t *img = NULL;
	bool json = false, have_first = false;
	unsigned long v;
	unsigned round, mode;
	size_t len, ld_len;
	int i, ret = EXIT_USAGE;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			if (parse_uint("--seconds", argv[++i], 600, &v) != 0)
				goto out;
			seconds = (double)v;
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			if (parse_uint("--rounds", argv[++i], MAX_ROUNDS, &rounds) != 0)
				goto out;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			if (parse_uint("--size", argv[++i], SNP_OVMF_MAX_SIZE >> 20, &mib) != 0)
				goto out;
		} else if (strcmp(argv[i], "--vcpus") == 0 && i + 1 < argc) {
			if (parse_uint("--vcpus", argv[++i], SNP_MEASURE_MAX_VCPUS, &vcpus) != 0)
				goto out;
		} else {
			fprintf(stderr, "usage: bench_measure [--seconds S] [--rounds N] [--size MIB] "
					"[--vcpus N] [--json]\n");
			goto out;
		}
	}
	ret = EXIT_FAILED;
	len = (size_t)mib << 20;
	if ((img = malloc(len)) == NULL || (sha384 = EVP_MD_fetch(NULL, "SHA384", NULL)) == NULL) {
		fprintf(stderr, "bench_measure: out of memory or no SHA-384\n");
		goto out;
	}
	build_image(img, len);
	snp_measure_params_init(&prm);
	prm.vcpus = (unsigned)vcpus;
	prm.vcpu_sig = 0x800F12;
	for (round = 0; round < rounds; round++) {
		for (mode = 0; mode < 2; mode++) {
			double t0 = now(), t;
			unsigned long ops = 0;

			do {
				if (mode == 0) {
					if (EVP_Digest(img, len, raw, NULL, sha384, NULL) != 1) {
						fprintf(stderr, "bench_measure: SHA-384 failed\n");
						goto out;
					}
				} else {
					snp_ovmf *o = NULL;
					int r = snp_ovmf_parse_static(img, len, &o, &err);

					prm.ovmf = o;
					if (r == SNP_OK)
						r = snp_measure(&prm, ld, &ld_len, &err);
					snp_ovmf_free(o);
					if (r != SNP_OK) {
						fprintf(stderr, "bench_measure: measure failed (%s): %s\n",
							snp_status_class(r), err.detail);
						goto out;
					}
					if (!have_first) {
						memcpy(first, ld, sizeof(first));
						have_first = true;
					} else if (memcmp(first, ld, sizeof(first)) != 0) {
						fprintf(stderr, "bench_measure: the digest changed\n");
						goto out;
					}
				}
				ops++;
				t = now() - t0;
			} while (t < seconds);
			rate[mode][round] = (double)ops * (double)len / t / 1e6;
			fprintf(stderr, "round %u/%lu: %-8s %9.1f MB/s\n", round + 1, rounds,
				mode == 0 ? "sha384" : "measure", rate[mode][round]);
		}
	}
	med[0] = median(rate[0], (unsigned)rounds);
	med[1] = median(rate[1], (unsigned)rounds);
	if (json) {
		printf("{\n  \"benchmark\": \"measure\",\n  \"image_bytes\": %zu,\n  \"vcpus\": %lu,\n"
		       "  \"rounds\": %lu,\n  \"seconds\": %.3f,\n  \"sha384_mb_s\": %.1f,\n"
		       "  \"measure_mb_s\": %.1f,\n  \"ratio\": %.3f,\n  \"goal\": 0.8\n}\n",
		       len, vcpus, rounds, seconds, med[0], med[1], med[1] / med[0]);
	} else {
		printf("bench_measure: %lu MiB synthetic image, %lu vCPUs, %lu rounds of %.2f s\n",
		       mib, vcpus, rounds, seconds);
		printf("sha384 (floor)   %9.1f MB/s\n", med[0]);
		printf("measure          %9.1f MB/s  (%.2f ms per image)\n", med[1],
		       (double)len / med[1] / 1e3);
		printf("ratio measure/sha384: %.2f (goal >= 0.80%s)\n", med[1] / med[0],
		       med[1] / med[0] >= 0.8 ? ", met" : ", NOT met");
	}
	ret = 0;
out:
	EVP_MD_free(sha384);
	free(img);
	return ret;
}
