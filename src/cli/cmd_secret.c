/*
 * nitride secret put|list|rm|versions, policy set|show, audit show|verify:
 * the admin API of provd (docs/provd.md) over HTTPS with libcurl.
 */
#include "cli/cmd_provision.h"

#include "cli/cli.h"
#include "common/fileio.h"
#include "common/wipemem.h"
#include "provision/auditchain.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#define RESP_MAX (64u * 1024u * 1024u)
#define TOKEN_MAX 1024u

static const char common_help[] =
	"common options:\n"
	"  --url URL          provd's base URL (default $NITRIDE_PROVD_URL)\n"
	"  --token-file FILE  admin or auditor bearer token (default $NITRIDE_ADMIN_TOKEN_FILE)\n"
	"  --cacert FILE      CA bundle that signed provd's certificate\n"
	"  --cert FILE, --key FILE  admin client certificate and key (PEM) instead of a\n"
	"                     token, when provd has admin_client_ca\n"
	"  --json             print the service's JSON answer\n"
	"Exit status: 0 success, 1 refused or not found, 2 usage, I/O or service error.\n";

static const char secret_usage[] =
	"usage: nitride secret put NAME --type TYPE (--value-file FILE | --generate)\n"
	"                          [--usages U,U] [--exportable] [--no-persist]\n"
	"                          [--access-file FILE] [--require-attestation SECONDS]\n"
	"       nitride secret list\n"
	"       nitride secret versions NAME\n"
	"       nitride secret rm NAME [--version N]\n"
	"\n"
	"put adds a new version (creating the secret): TYPE is aes256 (32-byte file),\n"
	"p256, p384, rsa2048, rsa3072, rsa4096 (PEM or DER private key) or opaque\n"
	"(1..4096 bytes); --generate lets provd create the material.  rm deletes the\n"
	"secret with all its versions, or with --version retires that version only.\n";

static const char policy_usage[] =
	"usage: nitride policy set NAME FILE\n"
	"       nitride policy show NAME\n"
	"\n"
	"Set or show the release policy of a secret (JSON; docs/provd.md).\n";

static const char audit_usage[] =
	"usage: nitride audit show\n"
	"       nitride audit verify [FILE] [--head HASH]\n"
	"\n"
	"show prints provd's audit log (JSON lines).  verify checks the hash chain of\n"
	"FILE, or of the log fetched from provd (whose head it also compares); with\n"
	"--head, the last record must hash to HASH (detects a truncated tail).\n";

struct opts {
	const char *url, *token_file, *cacert, *cert, *key;
	bool json;
	/* secret put */
	const char *type, *value_file, *usages, *access_file, *require_att;
	bool generate, exportable, no_persist;
	/* secret rm */
	const char *version;
	/* audit verify */
	const char *head;
};

struct resp {
	char *buf;
	size_t len;
	long status;
	char head[AUDIT_HASH_HEX];
	bool overflow;
};

static size_t
on_data(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t add = size * n;
	char *nb;

	if (add > RESP_MAX - r->len) {
		r->overflow = true;
		return 0;
	}
	if ((nb = realloc(r->buf, r->len + add + 1)) == NULL)
		return 0;
	r->buf = nb;
	memcpy(r->buf + r->len, p, add);
	r->len += add;
	r->buf[r->len] = '\0';
	return add;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct resp *r = arg;
	size_t len = size * n;

	if (len > 14 + 64 && strncasecmp(p, "X-Audit-Head: ", 14) == 0) {
		memcpy(r->head, p + 14, 64);
		r->head[64] = '\0';
	}
	return len;
}

static int
read_file(const char *what, const char *path, size_t cap, uint8_t **buf, size_t *len)
{
	int r = file_read_all(path, cap, buf, len);

	if (r == 0)
		return 0;
	if (r == -EFBIG)
		fprintf(stderr, "nitride: %s %s: larger than %zu bytes\n", what, path, cap);
	else
		fprintf(stderr, "nitride: %s %s: %s\n", what, path, strerror(-r));
	return -1;
}

/* One admin API call.  Returns 0 with *res filled (any HTTP status), or -1
 * after printing why the exchange failed. */
static int
call(const struct opts *o, const char *method, const char *path, const char *body,
     struct resp *res)
{
	const char *url = o->url ? o->url : getenv("NITRIDE_PROVD_URL");
	const char *tf = o->token_file ? o->token_file : getenv("NITRIDE_ADMIN_TOKEN_FILE");
	uint8_t *tok = NULL;
	size_t toklen = 0;
	char *full = NULL, *auth = NULL;
	struct curl_slist *hdrs = NULL;
	CURL *c = NULL;
	CURLcode cr;
	int r = -1;

	memset(res, 0, sizeof(*res));
	if (o->cert != NULL && o->token_file == NULL)
		tf = NULL; /* the certificate authenticates */
	if (url == NULL || (tf == NULL && o->cert == NULL)) {
		fprintf(stderr, "nitride: --url and --token-file (or --cert/--key) are required (or "
				"$NITRIDE_PROVD_URL and $NITRIDE_ADMIN_TOKEN_FILE)\n");
		return -1;
	}
	if (tf != NULL) {
		if (read_file("token file", tf, TOKEN_MAX, &tok, &toklen) != 0)
			return -1;
		while (toklen > 0 && (tok[toklen - 1] == '\n' || tok[toklen - 1] == '\r' ||
				      tok[toklen - 1] == ' '))
			tok[--toklen] = '\0';
		if (toklen == 0) {
			fprintf(stderr, "nitride: token file %s: empty\n", tf);
			goto out;
		}
		if (asprintf(&auth, "Authorization: Bearer %s", (const char *)tok) < 0) {
			auth = NULL;
			goto out;
		}
		hdrs = curl_slist_append(hdrs, auth);
	} else
		hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (asprintf(&full, "%s%s", url, path) < 0) {
		full = NULL;
		goto out;
	}
	if (body != NULL)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (hdrs == NULL || (c = curl_easy_init()) == NULL)
		goto out;
	(void)curl_easy_setopt(c, CURLOPT_URL, full);
	(void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	(void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	(void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	(void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	(void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	(void)curl_easy_setopt(c, CURLOPT_WRITEDATA, res);
	(void)curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	(void)curl_easy_setopt(c, CURLOPT_HEADERDATA, res);
	if (o->cacert != NULL)
		(void)curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
	if (o->cert != NULL) {
		(void)curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
		(void)curl_easy_setopt(c, CURLOPT_SSLKEY, o->key ? o->key : o->cert);
	}
	if (body != NULL) {
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		(void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	cr = curl_easy_perform(c);
	if (cr != CURLE_OK) {
		fprintf(stderr, "nitride: %s %s: %s\n", method, full,
			res->overflow ? "answer too large" : curl_easy_strerror(cr));
		goto out;
	}
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	r = 0;
out:
	if (r != 0) {
		free(res->buf);
		res->buf = NULL;
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	free(full);
	if (tok != NULL) {
		OPENSSL_cleanse(tok, toklen);
		free(tok);
	}
	return r;
}

/* Exit code for a non-2xx answer, after printing the problem's detail. */
static int
report_failure(const char *what, const struct resp *res)
{
	json_t *p = res->buf ? json_loads(res->buf, 0, NULL) : NULL;
	const char *d = json_string_value(json_object_get(p, "detail"));

	fprintf(stderr, "nitride: %s: HTTP %ld: %s\n", what, res->status,
		d ? d : "(no detail)");
	json_decref(p);
	return res->status >= 400 && res->status < 500 && res->status != 400 && res->status != 413
		       ? EXIT_NEGATIVE
		       : EXIT_USAGE;
}

/* The JSON answer of a successful call, printed with --json. */
static json_t *
answer(const struct opts *o, const struct resp *res)
{
	json_t *j = json_loads(res->buf ? res->buf : "", 0, NULL);

	if (j == NULL)
		fprintf(stderr, "nitride: the service's answer is not JSON\n");
	else if (o->json)
		(void)cli_print_json(j);
	return j;
}

enum { O_URL = 1000, O_TOKEN, O_CACERT, O_CERT, O_KEY, O_JSON, O_TYPE, O_VALUE, O_GEN, O_USAGES, O_EXPORT,
       O_NOPERSIST, O_ACCESS, O_REQATT, O_VERSION, O_HEAD, O_HELP };

/* Parse options; positional arguments end up in argv[optind..]. */
static int
parse(int argc, char **argv, struct opts *o, const char *usage)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "token-file", required_argument, NULL, O_TOKEN },
		{ "cacert", required_argument, NULL, O_CACERT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "json", no_argument, NULL, O_JSON },
		{ "type", required_argument, NULL, O_TYPE },
		{ "value-file", required_argument, NULL, O_VALUE },
		{ "generate", no_argument, NULL, O_GEN },
		{ "usages", required_argument, NULL, O_USAGES },
		{ "exportable", no_argument, NULL, O_EXPORT },
		{ "no-persist", no_argument, NULL, O_NOPERSIST },
		{ "access-file", required_argument, NULL, O_ACCESS },
		{ "require-attestation", required_argument, NULL, O_REQATT },
		{ "version", required_argument, NULL, O_VERSION },
		{ "head", required_argument, NULL, O_HEAD },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(o, 0, sizeof(*o));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_URL: o->url = optarg; break;
		case O_TOKEN: o->token_file = optarg; break;
		case O_CACERT: o->cacert = optarg; break;
		case O_CERT: o->cert = optarg; break;
		case O_KEY: o->key = optarg; break;
		case O_JSON: o->json = true; break;
		case O_TYPE: o->type = optarg; break;
		case O_VALUE: o->value_file = optarg; break;
		case O_GEN: o->generate = true; break;
		case O_USAGES: o->usages = optarg; break;
		case O_EXPORT: o->exportable = true; break;
		case O_NOPERSIST: o->no_persist = true; break;
		case O_ACCESS: o->access_file = optarg; break;
		case O_REQATT: o->require_att = optarg; break;
		case O_VERSION: o->version = optarg; break;
		case O_HEAD: o->head = optarg; break;
		case 'h':
		case O_HELP:
			fputs(usage, stdout);
			fputs(common_help, stdout);
			return 1;
		default: fputs(usage, stderr); return -1;
		}
	}
	return 0;
}

/* A JSON body for `secret put`; NULL after printing an error. */
static char *
put_body(const struct opts *o)
{
	json_t *b = NULL, *attrs = json_object(), *u, *acc;
	uint8_t *val = NULL, *ab = NULL;
	size_t vlen = 0, alen = 0;
	char *enc = NULL, *text = NULL, *list = NULL, *p, *comma;
	uint64_t secs;
	int n;

	if (o->type == NULL || (o->value_file != NULL) == o->generate) {
		fprintf(stderr, "nitride: secret put: --type and one of --value-file or --generate "
				"are required\n");
		goto out;
	}
	b = json_pack("{s:s}", "type", o->type);
	if (b == NULL || attrs == NULL)
		goto out;
	if (o->value_file != NULL) {
		if (read_file("value file", o->value_file, 16384, &val, &vlen) != 0)
			goto out;
		if ((enc = malloc((vlen + 2) / 3 * 4 + 1)) == NULL)
			goto out;
		n = EVP_EncodeBlock((unsigned char *)enc, val, (int)vlen);
		(void)json_object_set_new(b, "value", json_stringn(enc, (size_t)n));
		OPENSSL_cleanse(enc, (size_t)n);
	} else
		(void)json_object_set_new(b, "generate", json_true());
	if (o->usages != NULL) {
		if ((list = strdup(o->usages)) == NULL || (u = json_array()) == NULL)
			goto out;
		for (p = list; p != NULL; p = comma) {
			comma = strchr(p, ',');
			if (comma != NULL)
				*comma++ = '\0';
			if (*p != '\0')
				(void)json_array_append_new(u, json_string(p));
		}
		(void)json_object_set_new(attrs, "usages", u);
	}
	if (o->exportable)
		(void)json_object_set_new(attrs, "exportable", json_true());
	if (o->no_persist)
		(void)json_object_set_new(attrs, "persist", json_false());
	if (o->access_file != NULL) {
		if (read_file("access file", o->access_file, 65536, &ab, &alen) != 0)
			goto out;
		if ((acc = json_loadb((const char *)ab, alen, 0, NULL)) == NULL) {
			fprintf(stderr, "nitride: access file %s: not JSON\n", o->access_file);
			goto out;
		}
		(void)json_object_set_new(attrs, "access", acc);
	}
	if (o->require_att != NULL) {
		if (cli_parse_u64("--require-attestation", o->require_att, 0xffffffffu, &secs) != 0)
			goto out;
		(void)json_object_set_new(attrs, "require_attestation", json_integer((json_int_t)secs));
	}
	(void)json_object_set(b, "attributes", attrs);
	text = json_dumps(b, JSON_COMPACT);
out:
	if (val != NULL) {
		OPENSSL_cleanse(val, vlen);
		free(val);
	}
	free(enc);
	free(ab);
	free(list);
	json_decref(attrs);
	json_decref(b);
	return text;
}

static void
wipe_free_str(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

int
cmd_secret(int argc, char **argv)
{
	struct opts o;
	struct resp res = { 0 };
	const char *sub = argc >= 2 ? argv[1] : NULL, *name;
	char path[512], *body = NULL, what[64];
	json_t *j = NULL, *e;
	size_t i;
	uint64_t ver = 0;
	int pr, rc = EXIT_USAGE;

	if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(secret_usage, sub ? stdout : stderr);
		fputs(common_help, sub ? stdout : stderr);
		return sub ? EXIT_OK : EXIT_USAGE;
	}
	if ((pr = parse(argc - 1, argv + 1, &o, secret_usage)) != 0)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	/* jansson's blocks wiped when freed: `secret put` builds its body with it. */
	json_set_alloc_funcs(wipemem_malloc, wipemem_free);
	argc -= 1;
	argv += 1;
	(void)snprintf(what, sizeof(what), "secret %s", sub);
	if (strcmp(sub, "list") == 0) {
		if (optind != argc)
			goto usage;
		if (call(&o, "GET", "/v1/admin/secrets", NULL, &res) != 0)
			goto out;
	} else {
		if (optind + 1 != argc)
			goto usage;
		name = argv[optind];
		if (strlen(name) > 128 || strchr(name, '/') != NULL || strchr(name, '?') != NULL) {
			fprintf(stderr, "nitride: %s: bad secret name\n", what);
			goto out;
		}
		if (strcmp(sub, "put") == 0) {
			if ((body = put_body(&o)) == NULL)
				goto out;
			(void)snprintf(path, sizeof(path), "/v1/admin/secrets/%s", name);
			if (call(&o, "POST", path, body, &res) != 0)
				goto out;
		} else if (strcmp(sub, "versions") == 0) {
			(void)snprintf(path, sizeof(path), "/v1/admin/secrets/%s", name);
			if (call(&o, "GET", path, NULL, &res) != 0)
				goto out;
		} else if (strcmp(sub, "rm") == 0) {
			if (o.version != NULL) {
				if (cli_parse_u64("--version", o.version, 0xffffffffu, &ver) != 0 ||
				    ver == 0)
					goto out;
				(void)snprintf(path, sizeof(path),
					       "/v1/admin/secrets/%s/versions/%llu/retire", name,
					       (unsigned long long)ver);
				if (call(&o, "POST", path, NULL, &res) != 0)
					goto out;
			} else {
				(void)snprintf(path, sizeof(path), "/v1/admin/secrets/%s", name);
				if (call(&o, "DELETE", path, NULL, &res) != 0)
					goto out;
			}
		} else {
			fprintf(stderr, "nitride: secret: unknown subcommand '%s'\n", sub);
			goto usage;
		}
	}
	if (res.status / 100 != 2) {
		rc = report_failure(what, &res);
		goto out;
	}
	if ((j = answer(&o, &res)) == NULL)
		goto out;
	rc = EXIT_OK;
	if (o.json)
		goto out;
	if (strcmp(sub, "list") == 0) {
		json_array_foreach(json_object_get(j, "secrets"), i, e) {
			json_t *l = json_object_get(e, "latest");
			char lb[24] = "-";

			if (json_is_integer(l))
				(void)snprintf(lb, sizeof(lb), "%lld", (long long)json_integer_value(l));
			printf("%-32s %-8s latest %-4s versions %lld (retired %lld)%s\n",
			       json_string_value(json_object_get(e, "name")),
			       json_string_value(json_object_get(e, "type")), lb,
			       (long long)json_integer_value(json_object_get(e, "versions")),
			       (long long)json_integer_value(json_object_get(e, "retired")),
			       json_is_true(json_object_get(e, "has_policy")) ? "" : "  [no policy]");
		}
	} else if (strcmp(sub, "versions") == 0) {
		printf("%s (%s)%s\n", json_string_value(json_object_get(j, "name")),
		       json_string_value(json_object_get(j, "type")),
		       json_is_true(json_object_get(j, "has_policy")) ? "" : "  [no policy]");
		json_array_foreach(json_object_get(j, "versions"), i, e)
			printf("  version %lld  %s  %s\n",
			       (long long)json_integer_value(json_object_get(e, "version")),
			       json_string_value(json_object_get(e, "created")),
			       json_is_true(json_object_get(e, "retired")) ? "retired" : "active");
	} else if (strcmp(sub, "put") == 0) {
		printf("%s version %lld stored\n", json_string_value(json_object_get(j, "name")),
		       (long long)json_integer_value(json_object_get(j, "version")));
	} else {
		printf("%s %s\n", argv[optind], ver ? "version retired" : "deleted");
	}
	goto out;
usage:
	fputs(secret_usage, stderr);
out:
	json_decref(j);
	wipe_free_str(body);
	free(res.buf);
	return rc;
}

int
cmd_policy(int argc, char **argv)
{
	struct opts o;
	struct resp res = { 0 };
	const char *sub = argc >= 2 ? argv[1] : NULL;
	char path[512], what[64];
	uint8_t *pol = NULL;
	size_t plen = 0;
	json_t *j = NULL;
	int pr, rc = EXIT_USAGE;

	if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(policy_usage, sub ? stdout : stderr);
		fputs(common_help, sub ? stdout : stderr);
		return sub ? EXIT_OK : EXIT_USAGE;
	}
	if ((pr = parse(argc - 1, argv + 1, &o, policy_usage)) != 0)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	argc -= 1;
	argv += 1;
	(void)snprintf(what, sizeof(what), "policy %s", sub);
	if (strcmp(sub, "set") == 0 && optind + 2 == argc) {
		if (read_file("policy", argv[optind + 1], 65536, &pol, &plen) != 0)
			goto out;
		(void)snprintf(path, sizeof(path), "/v1/admin/secrets/%s/policy", argv[optind]);
		if (call(&o, "PUT", path, (const char *)pol, &res) != 0)
			goto out;
	} else if (strcmp(sub, "show") == 0 && optind + 1 == argc) {
		(void)snprintf(path, sizeof(path), "/v1/admin/secrets/%s/policy", argv[optind]);
		if (call(&o, "GET", path, NULL, &res) != 0)
			goto out;
	} else {
		fputs(policy_usage, stderr);
		goto out;
	}
	if (res.status / 100 != 2) {
		rc = report_failure(what, &res);
		goto out;
	}
	if ((j = answer(&o, &res)) == NULL)
		goto out;
	rc = EXIT_OK;
	if (o.json)
		goto out;
	if (strcmp(sub, "set") == 0)
		printf("policy of %s set (sha256 %s)\n", argv[optind],
		       json_string_value(json_object_get(j, "digest")));
	else {
		printf("# sha256 %s\n", json_string_value(json_object_get(j, "digest")));
		(void)cli_print_json(json_object_get(j, "policy"));
	}
out:
	json_decref(j);
	free(pol);
	free(res.buf);
	return rc;
}

int
cmd_audit(int argc, char **argv)
{
	struct opts o;
	struct resp res = { 0 };
	const char *sub = argc >= 2 ? argv[1] : NULL;
	uint8_t *buf = NULL;
	size_t len = 0, n = 0;
	char head[AUDIT_HASH_HEX], why[256];
	const char *text;
	int pr, rc = EXIT_USAGE;

	if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
		fputs(audit_usage, sub ? stdout : stderr);
		fputs(common_help, sub ? stdout : stderr);
		return sub ? EXIT_OK : EXIT_USAGE;
	}
	if ((pr = parse(argc - 1, argv + 1, &o, audit_usage)) != 0)
		return pr > 0 ? EXIT_OK : EXIT_USAGE;
	argc -= 1;
	argv += 1;
	if (strcmp(sub, "show") == 0 && optind == argc) {
		if (call(&o, "GET", "/v1/admin/audit", NULL, &res) != 0)
			goto out;
		if (res.status / 100 != 2) {
			rc = report_failure("audit show", &res);
			goto out;
		}
		if (res.len > 0 && fwrite(res.buf, 1, res.len, stdout) != res.len)
			goto out;
		rc = EXIT_OK;
		goto out;
	}
	if (strcmp(sub, "verify") != 0 || optind + 1 < argc) {
		fputs(audit_usage, stderr);
		goto out;
	}
	if (optind + 1 == argc) {
		if (read_file("audit log", argv[optind], 1024u * 1024u * 1024u, &buf, &len) != 0)
			goto out;
		text = (const char *)buf;
	} else {
		if (call(&o, "GET", "/v1/admin/audit", NULL, &res) != 0)
			goto out;
		if (res.status / 100 != 2) {
			rc = report_failure("audit verify", &res);
			goto out;
		}
		text = res.buf ? res.buf : "";
		len = res.len;
	}
	if (audit_chain_verify(text, len, &n, head, why, sizeof(why)) != 0) {
		printf("audit log BROKEN: %s\n", why);
		rc = EXIT_NEGATIVE;
		goto out;
	}
	if (o.head != NULL && strcasecmp(o.head, head) != 0) {
		printf("audit log BROKEN: the last record hashes to %s, not the expected head %s "
		       "(tail truncated or last record edited)\n",
		       head, o.head);
		rc = EXIT_NEGATIVE;
		goto out;
	}
	if (buf == NULL && res.head[0] != '\0' && strcmp(res.head, head) != 0) {
		printf("audit log BROKEN: the service's head is %s, the log ends at %s\n", res.head,
		       head);
		rc = EXIT_NEGATIVE;
		goto out;
	}
	printf("audit log ok: %zu records, head %s\n", n, head);
	rc = EXIT_OK;
out:
	free(buf);
	free(res.buf);
	return rc;
}
