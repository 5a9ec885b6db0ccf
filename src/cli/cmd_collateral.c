/*
 * nitride collateral export | import — an offline bundle of attestd's
 * collateral cache (VCEKs, KDS certificate chains, CRLs) for air-gapped
 * verifiers (docs/attestd.md, "Collateral").
 *
 * The bundle is one JSON document:
 *   {"format": "nitride-collateral/1", "created": RFC 3339,
 *    "entries": [{"path": "vcek/genoa/<hwid hex>/<tcb 16 hex>.der", "data": base64}, …]}
 * Only the cache's own layout is accepted, on export and on import: every
 * path is matched component by component (no "..", no absolute paths, known
 * products, hex of the right lengths), every blob must parse as what its path
 * says (a DER certificate, a PEM chain of two certificates, a CRL), and each
 * file is written atomically, 0600, in directories created 0700.  Whether the
 * certificates chain to a pinned root is decided by attestd when it uses them,
 * as for anything it fetches.
 */
#include "cli/cli.h"

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/timefmt.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BUNDLE_FORMAT "nitride-collateral/1"
#define BUNDLE_MAX (32u << 20)
#define ENTRY_MAX (256u * 1024u)
#define ENTRIES_MAX 4096u

enum entry_kind { K_VCEK, K_CHAIN, K_CRL, K_BAD };

static bool
all_hex(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool
known_product(const char *s, size_t len)
{
	int p;

	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		const char *n = snp_product_name((snp_product)p);

		if (strlen(n) == len && strncmp(s, n, len) == 0)
			return true;
	}
	return false;
}

/*
 * Classify a relative cache path:
 *   vcek/<product>/<128 or 16 hex>/<16 hex>.der
 *   chain/<product>_vcek.pem | chain/<product>_vlek.pem
 *   crl/<product>.crl
 */
static enum entry_kind
classify(const char *path)
{
	char buf[256], *parts[5];
	size_t n = 0;
	char *save = NULL, *tok;

	if (strlen(path) >= sizeof(buf) || path[0] == '/')
		return K_BAD;
	memcpy(buf, path, strlen(path) + 1);
	for (tok = strtok_r(buf, "/", &save); tok != NULL; tok = strtok_r(NULL, "/", &save)) {
		if (n == 5)
			return K_BAD;
		parts[n++] = tok;
	}
	if (n == 4 && strcmp(parts[0], "vcek") == 0 && known_product(parts[1], strlen(parts[1])) &&
	    (all_hex(parts[2], 128) || all_hex(parts[2], 16)) && strlen(parts[3]) == 20 &&
	    strcmp(parts[3] + 16, ".der") == 0) {
		parts[3][16] = '\0';
		return all_hex(parts[3], 16) ? K_VCEK : K_BAD;
	}
	if (n == 2 && strcmp(parts[0], "chain") == 0) {
		size_t l = strlen(parts[1]);

		if (l > 9 && (strcmp(parts[1] + l - 9, "_vcek.pem") == 0 ||
			      strcmp(parts[1] + l - 9, "_vlek.pem") == 0) &&
		    known_product(parts[1], l - 9))
			return K_CHAIN;
	}
	if (n == 2 && strcmp(parts[0], "crl") == 0) {
		size_t l = strlen(parts[1]);

		if (l > 4 && strcmp(parts[1] + l - 4, ".crl") == 0 && known_product(parts[1], l - 4))
			return K_CRL;
	}
	return K_BAD;
}

/* Does `data` parse as what its kind says? */
static bool
content_ok(enum entry_kind kind, const uint8_t *data, size_t len)
{
	const unsigned char *p = data;
	X509 *x = NULL;
	X509_CRL *crl = NULL;
	BIO *bio = NULL;
	bool ok = false;
	int n = 0;

	switch (kind) {
	case K_VCEK:
		x = d2i_X509(NULL, &p, (long)len);
		ok = x != NULL && p == data + len;
		break;
	case K_CHAIN: /* ASK (or ASVK) then ARK, PEM */
		if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL)
			break;
		while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			n++;
			X509_free(x);
		}
		x = NULL;
		ok = n == 2;
		break;
	case K_CRL:
		crl = d2i_X509_CRL(NULL, &p, (long)len);
		if (crl == NULL && (bio = BIO_new_mem_buf(data, (int)len)) != NULL)
			crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);
		ok = crl != NULL;
		break;
	case K_BAD:
		break;
	}
	X509_free(x);
	X509_CRL_free(crl);
	BIO_free(bio);
	return ok;
}

static char *
b64_encode(const uint8_t *p, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out != NULL)
		(void)EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* Strict standard base64 → bytes (malloc'ed); -1 on bad input. */
static int
b64_decode(const char *s, uint8_t **out, size_t *outlen)
{
	size_t len = strlen(s), pad = 0;
	uint8_t *buf;
	int n;

	if (len == 0 || len % 4 != 0 || len > 4 * (ENTRY_MAX / 3 + 1))
		return -1;
	if (s[len - 1] == '=')
		pad++;
	if (s[len - 2] == '=')
		pad++;
	if ((buf = malloc(len / 4 * 3)) == NULL)
		return -1;
	n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad) {
		free(buf);
		return -1;
	}
	*out = buf;
	*outlen = (size_t)n - pad;
	return 0;
}

/* Append every regular file under dir/rel whose path classifies, recursively (depth ≤ 4). */
static int
collect(const char *root, const char *rel, int depth, json_t *entries)
{
	char path[4096], child[1024];
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (depth > 4)
		return 0;
	(void)snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	if ((d = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;
		char full[4096];

		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "",
				     de->d_name) >= sizeof(child))
			continue;
		(void)snprintf(full, sizeof(full), "%s/%s", root, child);
		if (lstat(full, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			r = collect(root, child, depth + 1, entries);
		} else if (S_ISREG(st.st_mode) && classify(child) != K_BAD) {
			uint8_t *data = NULL;
			size_t len = 0;
			char *b64;

			if (json_array_size(entries) >= ENTRIES_MAX ||
			    file_read_all(full, ENTRY_MAX, &data, &len) != 0) {
				fprintf(stderr, "nitride: skipping %s (unreadable or too large)\n", full);
				continue;
			}
			if (!content_ok(classify(child), data, len)) {
				fprintf(stderr, "nitride: skipping %s (does not parse as its path says)\n", full);
				free(data);
				continue;
			}
			b64 = b64_encode(data, len);
			free(data);
			if (b64 == NULL ||
			    json_array_append_new(entries, json_pack("{s:s,s:s}", "path", child, "data", b64)) != 0)
				r = -1;
			free(b64);
		}
	}
	closedir(d);
	return r;
}

static int
collateral_export(const char *cache, const char *out)
{
	json_t *doc = NULL, *entries = json_array();
	char when[RFC3339_LEN];
	char *text = NULL;
	int r, ret = EXIT_USAGE;

	rfc3339_format(time(NULL), when);
	if (entries == NULL || collect(cache, "", 0, entries) != 0) {
		fprintf(stderr, "nitride: cannot read the cache %s: %s\n", cache, strerror(errno));
		goto out;
	}
	doc = json_pack("{s:s,s:s,s:O}", "format", BUNDLE_FORMAT, "created", when, "entries", entries);
	if (doc == NULL || (text = json_dumps(doc, JSON_INDENT(1))) == NULL) {
		fprintf(stderr, "nitride: out of memory\n");
		goto out;
	}
	if ((r = atomic_write_file(out, (const uint8_t *)text, strlen(text), 0644)) != 0) {
		fprintf(stderr, "nitride: %s: %s\n", out, strerror(-r));
		goto out;
	}
	printf("exported %zu entries from %s to %s\n", json_array_size(entries), cache, out);
	ret = EXIT_OK;
out:
	free(text);
	json_decref(doc);
	json_decref(entries);
	return ret;
}

/* mkdir -p for the directories of `rel` under root, mode 0700. */
static int
make_dirs(const char *root, const char *rel)
{
	char path[4096];
	size_t i, base;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, rel) >= sizeof(path))
		return -1;
	base = strlen(root) + 1;
	for (i = base; path[i] != '\0'; i++) {
		if (path[i] == '/') {
			path[i] = '\0';
			if (mkdir(path, 0700) != 0 && errno != EEXIST)
				return -1;
			path[i] = '/';
		}
	}
	return 0;
}

static int
collateral_import(const char *bundle, const char *cache)
{
	uint8_t *text = NULL;
	size_t len = 0, i, written = 0;
	json_t *doc = NULL, *entries;
	json_error_t jerr;
	int r, ret = EXIT_USAGE;

	if ((r = file_read_all(bundle, BUNDLE_MAX, &text, &len)) != 0) {
		fprintf(stderr, "nitride: %s: %s\n", bundle, r == -EFBIG ? "larger than 32 MiB" : strerror(-r));
		goto out;
	}
	ret = EXIT_NEGATIVE;
	if ((doc = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		fprintf(stderr, "nitride: %s:%d: %s\n", bundle, jerr.line, jerr.text);
		goto out;
	}
	entries = json_object_get(doc, "entries");
	if (!json_is_string(json_object_get(doc, "format")) ||
	    strcmp(json_string_value(json_object_get(doc, "format")), BUNDLE_FORMAT) != 0 ||
	    !json_is_array(entries) || json_array_size(entries) > ENTRIES_MAX) {
		fprintf(stderr, "nitride: %s: not a %s bundle (or more than %u entries)\n", bundle,
			BUNDLE_FORMAT, ENTRIES_MAX);
		goto out;
	}
	/* Validate everything before writing anything: a bad bundle changes nothing. */
	for (i = 0; i < json_array_size(entries); i++) {
		json_t *e = json_array_get(entries, i);
		const char *path = json_string_value(json_object_get(e, "path"));
		const char *data = json_string_value(json_object_get(e, "data"));
		uint8_t *blob = NULL;
		size_t blen = 0;
		enum entry_kind kind = path != NULL ? classify(path) : K_BAD;
		bool ok = kind != K_BAD && data != NULL && b64_decode(data, &blob, &blen) == 0 &&
			  content_ok(kind, blob, blen);

		free(blob);
		if (!ok) {
			fprintf(stderr, "nitride: %s: entry %zu (%s): not a cache file of a known kind, or its content does not parse\n",
				bundle, i, path != NULL ? path : "no path");
			goto out;
		}
	}
	if (mkdir(cache, 0700) != 0 && errno != EEXIST) {
		fprintf(stderr, "nitride: %s: %s\n", cache, strerror(errno));
		ret = EXIT_USAGE;
		goto out;
	}
	for (i = 0; i < json_array_size(entries); i++) {
		json_t *e = json_array_get(entries, i);
		const char *path = json_string_value(json_object_get(e, "path"));
		uint8_t *blob = NULL;
		size_t blen = 0;
		char full[4096];

		if (b64_decode(json_string_value(json_object_get(e, "data")), &blob, &blen) != 0 ||
		    make_dirs(cache, path) != 0 ||
		    (size_t)snprintf(full, sizeof(full), "%s/%s", cache, path) >= sizeof(full) ||
		    (r = atomic_write_file(full, blob, blen, 0600)) != 0) {
			free(blob);
			fprintf(stderr, "nitride: cannot write %s/%s\n", cache, path);
			ret = EXIT_USAGE;
			goto out;
		}
		free(blob);
		written++;
	}
	printf("imported %zu entries into %s\n", written, cache);
	ret = EXIT_OK;
out:
	json_decref(doc);
	free(text);
	return ret;
}

int
cmd_collateral(int argc, char **argv)
{
	static const char usage[] =
		"usage: nitride collateral export --cache-dir DIR -o BUNDLE\n"
		"       nitride collateral import BUNDLE --cache-dir DIR\n"
		"\n"
		"Move attestd's collateral cache (VCEKs, KDS certificate chains, CRLs) to an\n"
		"air-gapped verifier.  Only files of the cache's layout are exported or\n"
		"imported, and each must parse as what its path says; a bundle with one bad\n"
		"entry imports nothing.  attestd still checks every certificate against its\n"
		"pinned roots when it uses it.\n";
	static const struct option opts[] = {
		{ "cache-dir", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cache = NULL, *out = NULL;
	int c;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cache = optarg; break;
		case 'o': out = optarg; break;
		case 'h': fputs(usage, stdout); return EXIT_OK;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (strcmp(argv[1], "export") == 0 && cache != NULL && out != NULL && optind == argc)
		return collateral_export(cache, out);
	if (strcmp(argv[1], "import") == 0 && cache != NULL && out == NULL && optind == argc - 1)
		return collateral_import(argv[optind], cache);
	fputs(usage, stderr);
	return EXIT_USAGE;
}
