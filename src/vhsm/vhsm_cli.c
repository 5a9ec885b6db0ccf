/*
 * vhsm — command line for the Nitride vHSM (docs/vhsm.md, "The vhsm CLI").
 * Exit status: 0 success, 1 a negative answer (denied, not found, bad
 * signature, …), 2 usage, I/O or connection error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "nitride/vhsm.h"

#define INPUT_MAX (1024u * 1024u)

struct opts {
	const char *socket, *connect, *cert, *key, *ca; /* Unix socket, or TLS (--connect) */
	const char *in, *out, *sig, *aad, *peer, *new_name, *pubout;
	bool json, pem, prehashed;
	vhsm_key_spec spec;
	bool have_type;
	uint32_t alg, hash, version;
	bool have_version;
};

/* --hash with --prehashed's flag (sign, verify). */
static vhsm_hash
cli_hash(const struct opts *o)
{
	return (vhsm_hash)(o->hash | (o->prehashed ? (uint32_t)VHSM_HASH_PREHASHED : 0u));
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: vhsm [--socket PATH | --connect HOST:PORT --cert F --key F --ca F] [--json] COMMAND ARGS\n"
		"  ping\n"
		"  generate NAME --type T [--usage U,..] [--persistent] [--exportable] [--require-attestation S]\n"
		"  import   NAME --type T --in FILE [--usage ..] [--persistent] [--exportable]\n"
		"  delete   NAME\n"
		"  list\n"
		"  info     NAME [--pubout FILE [--pem]]\n"
		"  sign     NAME [--in FILE] [--out FILE] [--alg A] [--hash H] [--prehashed]\n"
		"  verify   NAME [--in FILE] --sig FILE [--alg A] [--hash H] [--prehashed] [--version N]\n"
		"  encrypt  NAME [--in FILE] [--out FILE] [--aad FILE] [--hash H]\n"
		"  decrypt  NAME [--in FILE] [--out FILE] [--aad FILE] [--hash H]\n"
		"  wrap     NAME [--in FILE] [--out FILE]\n"
		"  unwrap   NAME [--in FILE] --new NAME --type T [--usage ..] [--persistent]\n"
		"  hmac     NAME [--in FILE] [--out FILE]\n"
		"  derive   NAME --peer FILE(DER/PEM SPKI) --new NAME --type T [--usage ..] [--persistent]\n"
		"  random   N [--out FILE]\n"
		"  rotate   NAME\n"
		"  retire   NAME --version N\n"
		"  read     NAME [--out FILE|-]      (secret get NAME: raw bytes on stdout)\n"
		"  provision NAME                    (Case B: have nitrided provision/attest it)\n"
		"Types: aes256 hmac-sha256 hmac-sha384 p256 p384 ed25519 rsa2048 rsa3072 rsa4096 opaque\n"
		"Usages: sign verify encrypt decrypt wrap unwrap mac derive\n"
		"Algorithms: ecdsa-der ecdsa-raw ed25519 rsa-pss rsa-pkcs1; hashes: sha256 sha384 sha512\n"
		"--prehashed: the input is the digest (RSA PKCS#1 v1.5 without --hash: the DigestInfo)\n"
		"Input defaults to stdin; binary output goes to --out FILE, else hex on stdout\n"
		"(base64 in --json).  Socket: --socket, $VHSM_SOCKET, or " VHSM_DEFAULT_SOCKET ".\n"
		"TLS (vhsmd's [tls] listener): --connect HOST:PORT (or $VHSM_CONNECT) with the client\n"
		"certificate --cert, its key --key and the CA of vhsmd's certificate --ca (PEM files;\n"
		"or $VHSM_TLS_CERT, $VHSM_TLS_KEY, $VHSM_TLS_CA).\n"
		"Exit: 0 ok, 1 refused or negative answer, 2 usage/I-O/connection error.\n");
}

static int
die_usage(const char *msg)
{
	fprintf(stderr, "vhsm: %s (see vhsm --help)\n", msg);
	return 2;
}

static int
read_input(const char *path, uint8_t **buf, size_t *len)
{
	uint8_t *b = NULL;
	size_t n = 0, cap = 0;
	ssize_t r;
	int e;

	if (path != NULL && strcmp(path, "-") != 0) {
		if ((e = file_read_all(path, INPUT_MAX, buf, len)) != 0) {
			fprintf(stderr, "vhsm: %s: %s\n", path, strerror(-e));
			return -1;
		}
		return 0;
	}
	for (;;) {
		if (n == cap) {
			uint8_t *nb;

			if (cap >= INPUT_MAX) {
				fprintf(stderr, "vhsm: stdin: more than %u bytes\n", INPUT_MAX);
				free(b);
				return -1;
			}
			cap = cap ? cap * 2 : 4096;
			if ((nb = realloc(b, cap)) == NULL) {
				free(b);
				return -1;
			}
			b = nb;
		}
		r = read(0, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "vhsm: stdin: %s\n", strerror(errno));
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*buf = b ? b : calloc(1, 1);
	*len = n;
	return *buf ? 0 : -1;
}

static int
write_file(const char *path, const uint8_t *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	size_t off = 0;

	if (fd < 0) {
		fprintf(stderr, "vhsm: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (off < n) {
		ssize_t r = write(fd, p + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "vhsm: %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)r;
	}
	if (close(fd) != 0) {
		fprintf(stderr, "vhsm: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return 0;
}

static char *
b64(const uint8_t *p, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1;
	char *s = malloc(cap);

	if (s && EVP_EncodeBlock((unsigned char *)s, p, (int)n) < 0) {
		free(s);
		return NULL;
	}
	return s;
}

/* Emit a binary result: to --out FILE, raw to stdout with --out -, or hex /
 * base64 ("data") on stdout. */
static int
emit_bytes(const struct opts *o, json_t *j, const char *key, const uint8_t *p, size_t n)
{
	if (o->out != NULL && strcmp(o->out, "-") == 0 && j == NULL) {
		if (fwrite(p, 1, n, stdout) != n || fflush(stdout) != 0)
			return -1;
		return 0;
	}
	if (o->out != NULL) {
		if (write_file(o->out, p, n) != 0)
			return -1;
		if (j)
			json_object_set_new(j, "out", json_string(o->out));
		return 0;
	}
	if (j) {
		char *s = b64(p, n);

		if (s == NULL)
			return -1;
		json_object_set_new(j, key, json_string(s));
		free(s);
		return 0;
	}
	{
		char *h = malloc(2 * n + 1);

		if (h == NULL)
			return -1;
		hex_encode(p, n, h);
		printf("%s\n", h);
		free(h);
	}
	return 0;
}

static const char *
usage_names(uint32_t u, char *buf, size_t cap)
{
	static const char *const names[] = { "sign", "verify", "encrypt", "decrypt",
					     "wrap", "unwrap", "mac", "derive" };
	size_t i, off = 0;

	buf[0] = 0;
	for (i = 0; i < 8; i++) {
		if (u & (1u << i)) {
			int n = snprintf(buf + off, cap - off, "%s%s", off ? "," : "", names[i]);

			if (n < 0 || (size_t)n >= cap - off)
				break;
			off += (size_t)n;
		}
	}
	return buf;
}

static int
parse_usages(const char *s, uint32_t *u)
{
	static const char *const names[] = { "sign", "verify", "encrypt", "decrypt",
					     "wrap", "unwrap", "mac", "derive" };
	uint32_t v = 0;

	while (*s) {
		size_t n = strcspn(s, ","), i;
		bool ok = false;

		for (i = 0; i < 8; i++)
			if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0) {
				v |= 1u << i;
				ok = true;
			}
		if (!ok)
			return -1;
		s += n;
		if (*s == ',')
			s++;
	}
	*u = v;
	return 0;
}

static int
parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long n;

	if (*s == '-' || *s == 0)
		return -1;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || *end || n > UINT32_MAX)
		return -1;
	*v = (uint32_t)n;
	return 0;
}

static json_t *
info_json(const vhsm_key_info *i)
{
	char ub[128];

	return json_pack("{s:s, s:s, s:s, s:b, s:b, s:i, s:i, s:s, s:i}", "name", i->name, "type",
			 vhsm_key_type_name(i->type), "usages", usage_names(i->usages, ub, sizeof(ub)),
			 "exportable", (i->flags & VHSM_FLAG_EXPORTABLE) != 0, "persistent",
			 (i->flags & VHSM_FLAG_PERSISTENT) != 0, "version", (json_int_t)i->version,
			 "versions", (json_int_t)i->versions, "origin",
			 i->origin == VHSM_ORIGIN_GENERATED ? "generated"
			 : i->origin == VHSM_ORIGIN_DERIVED ? "derived"
							    : "provisioned",
			 "require_attestation", (json_int_t)i->require_attestation);
}

static void
print_info(const vhsm_key_info *i)
{
	char ub[128];

	printf("%s\t%s\tv%u (%u usable)\t%s%s%s\n", i->name, vhsm_key_type_name(i->type), i->version,
	       i->versions, usage_names(i->usages, ub, sizeof(ub)),
	       (i->flags & VHSM_FLAG_PERSISTENT) ? "\tpersistent" : "\tvolatile",
	       (i->flags & VHSM_FLAG_EXPORTABLE) ? "\texportable" : "");
}

/* SPKI from a DER or PEM file, as DER. */
static int
read_spki(const char *path, uint8_t **der, size_t *len)
{
	uint8_t *buf = NULL;
	size_t n = 0;
	BIO *bio = NULL;
	EVP_PKEY *pk = NULL;
	unsigned char *d = NULL;
	int dl, r = -1;

	if (read_input(path, &buf, &n) != 0)
		return -1;
	if (n > 10 && memcmp(buf, "-----BEGIN", 10) == 0) {
		if ((bio = BIO_new_mem_buf(buf, (int)n)) == NULL ||
		    (pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL)) == NULL ||
		    (dl = i2d_PUBKEY(pk, &d)) <= 0) {
			fprintf(stderr, "vhsm: %s: not a PEM public key\n", path);
			goto out;
		}
		if ((*der = malloc((size_t)dl)) == NULL)
			goto out;
		memcpy(*der, d, (size_t)dl);
		*len = (size_t)dl;
	} else {
		*der = buf;
		*len = n;
		buf = NULL;
	}
	r = 0;
out:
	free(buf);
	OPENSSL_free(d);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return r;
}

static int
write_pub(const struct opts *o, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	int r = -1;

	if (!o->pem)
		return write_file(o->pubout, der, len);
	if ((pk = d2i_PUBKEY(NULL, &p, (long)len)) == NULL ||
	    (bio = BIO_new_file(o->pubout, "w")) == NULL || PEM_write_bio_PUBKEY(bio, pk) != 1) {
		fprintf(stderr, "vhsm: %s: cannot write PEM\n", o->pubout);
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return r;
}

int
main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_CONNECT, O_CERT, O_KEY, O_CA, O_JSON, O_TYPE, O_USAGE, O_PERSIST, O_EXPORT, O_ATTEST, O_IN, O_OUT,
	       O_SIG, O_AAD, O_ALG, O_HASH, O_VERSION, O_PEER, O_NEW, O_PUBOUT, O_PEM, O_PREHASHED, O_HELP };
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "connect", required_argument, NULL, O_CONNECT },
		{ "cert", required_argument, NULL, O_CERT },
		{ "key", required_argument, NULL, O_KEY },
		{ "ca", required_argument, NULL, O_CA },
		{ "json", no_argument, NULL, O_JSON },
		{ "type", required_argument, NULL, O_TYPE },
		{ "usage", required_argument, NULL, O_USAGE },
		{ "persistent", no_argument, NULL, O_PERSIST },
		{ "exportable", no_argument, NULL, O_EXPORT },
		{ "require-attestation", required_argument, NULL, O_ATTEST },
		{ "in", required_argument, NULL, O_IN },
		{ "out", required_argument, NULL, O_OUT },
		{ "sig", required_argument, NULL, O_SIG },
		{ "aad", required_argument, NULL, O_AAD },
		{ "alg", required_argument, NULL, O_ALG },
		{ "hash", required_argument, NULL, O_HASH },
		{ "version", required_argument, NULL, O_VERSION },
		{ "peer", required_argument, NULL, O_PEER },
		{ "new", required_argument, NULL, O_NEW },
		{ "pubout", required_argument, NULL, O_PUBOUT },
		{ "pem", no_argument, NULL, O_PEM },
		{ "prehashed", no_argument, NULL, O_PREHASHED },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const algs[] = { "default", "ecdsa-der", "ecdsa-raw", "ed25519", "rsa-pss",
					    "rsa-pkcs1", "rsa-oaep" };
	static const char *const hashes[] = { "default", "sha256", "sha384", "sha512" };
	struct opts o;
	vhsm_client *c = NULL;
	json_t *j = NULL;
	uint8_t *in = NULL, *out = NULL, *sig = NULL, *aad = NULL, *peer = NULL;
	size_t inl = 0, outl = 0, sigl = 0, aadl = 0, peerl = 0;
	const char *cmd, *name = NULL;
	int opt, r = 0, rc = 2;
	bool secret_get = false;
	uint32_t u;
	size_t i;

	memset(&o, 0, sizeof(o));
	while ((opt = getopt_long(argc, argv, "+", lopts, NULL)) != -1) {
		switch (opt) {
		case O_SOCKET: o.socket = optarg; break;
		case O_CONNECT: o.connect = optarg; break;
		case O_CERT: o.cert = optarg; break;
		case O_KEY: o.key = optarg; break;
		case O_CA: o.ca = optarg; break;
		case O_JSON: o.json = true; break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc)
		return die_usage("missing command");
	cmd = argv[optind++];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	/* "secret get NAME" is "read NAME" with the raw bytes on stdout, for
	 * `vhsm secret get root-disk | cryptsetup open --key-file=- …`. */
	if (strcmp(cmd, "secret") == 0) {
		if (optind >= argc || strcmp(argv[optind], "get") != 0)
			return die_usage("secret: only 'secret get NAME'");
		optind++;
		cmd = "read";
		secret_get = true;
	}
	if (strcmp(cmd, "ping") != 0 && strcmp(cmd, "list") != 0) {
		if (optind >= argc || argv[optind][0] == '-')
			return die_usage(strcmp(cmd, "random") == 0 ? "random needs a byte count"
								   : "missing key name");
		name = argv[optind++];
	}
	while ((opt = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		switch (opt) {
		case O_SOCKET: o.socket = optarg; break;
		case O_CONNECT: o.connect = optarg; break;
		case O_CERT: o.cert = optarg; break;
		case O_KEY: o.key = optarg; break;
		case O_CA: o.ca = optarg; break;
		case O_JSON: o.json = true; break;
		case O_TYPE:
			if ((o.spec.type = vhsm_key_type_from_name(optarg)) == 0)
				return die_usage("unknown key type");
			o.have_type = true;
			break;
		case O_USAGE:
			if (parse_usages(optarg, &o.spec.usages) != 0)
				return die_usage("unknown usage");
			break;
		case O_PERSIST: o.spec.flags |= VHSM_FLAG_PERSISTENT; break;
		case O_EXPORT: o.spec.flags |= VHSM_FLAG_EXPORTABLE; break;
		case O_ATTEST:
			if (parse_u32(optarg, &o.spec.require_attestation) != 0)
				return die_usage("--require-attestation: seconds");
			break;
		case O_IN: o.in = optarg; break;
		case O_OUT: o.out = optarg; break;
		case O_SIG: o.sig = optarg; break;
		case O_AAD: o.aad = optarg; break;
		case O_PEER: o.peer = optarg; break;
		case O_NEW: o.new_name = optarg; break;
		case O_PUBOUT: o.pubout = optarg; break;
		case O_PEM: o.pem = true; break;
		case O_PREHASHED: o.prehashed = true; break;
		case O_ALG:
			for (i = 0; i < sizeof(algs) / sizeof(algs[0]) && strcmp(algs[i], optarg); i++)
				;
			if (i == sizeof(algs) / sizeof(algs[0]))
				return die_usage("unknown --alg");
			o.alg = (uint32_t)i;
			break;
		case O_HASH:
			for (i = 0; i < sizeof(hashes) / sizeof(hashes[0]) && strcmp(hashes[i], optarg); i++)
				;
			if (i == sizeof(hashes) / sizeof(hashes[0]))
				return die_usage("unknown --hash");
			o.hash = (uint32_t)i;
			break;
		case O_VERSION:
			if (parse_u32(optarg, &o.version) != 0)
				return die_usage("--version: a number");
			o.have_version = true;
			break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc)
		return die_usage("unexpected argument");
	if (o.json && (j = json_object()) == NULL)
		return 2;

	if (secret_get && o.out == NULL && !o.json)
		o.out = "-"; /* raw bytes on stdout, for a pipe into cryptsetup */
	if (o.connect != NULL && o.socket != NULL) {
		rc = die_usage("--socket and --connect exclude each other");
		goto out;
	}
	if (o.connect == NULL && o.socket == NULL && (o.connect = getenv("VHSM_CONNECT")) != NULL &&
	    o.connect[0] == 0)
		o.connect = NULL;
	if (o.connect != NULL) {
		if (o.cert == NULL)
			o.cert = getenv("VHSM_TLS_CERT");
		if (o.key == NULL)
			o.key = getenv("VHSM_TLS_KEY");
		if (o.ca == NULL)
			o.ca = getenv("VHSM_TLS_CA");
		if (o.cert == NULL || o.key == NULL || o.ca == NULL) {
			rc = die_usage("--connect needs --cert, --key and --ca "
				       "(or $VHSM_TLS_CERT, $VHSM_TLS_KEY, $VHSM_TLS_CA)");
			goto out;
		}
	} else if (o.cert != NULL || o.key != NULL || o.ca != NULL) {
		rc = die_usage("--cert, --key and --ca go with --connect");
		goto out;
	}
	if (o.connect != NULL)
		r = vhsm_connect_tls(o.connect, o.cert, o.key, o.ca, &c);
	else
		r = vhsm_connect(o.socket, &c);
	if (r != 0) {
		fprintf(stderr, "vhsm: %s: %s\n", vhsm_strerror(r), vhsm_last_message());
		rc = 2;
		goto out;
	}
#define NEED_IN() do { if (read_input(o.in, &in, &inl) != 0) { rc = 2; goto out; } } while (0)
	if (strcmp(cmd, "ping") == 0) {
		r = vhsm_ping(c);
	} else if (strcmp(cmd, "generate") == 0 || strcmp(cmd, "import") == 0) {
		if (!o.have_type) {
			rc = die_usage("--type is required");
			goto out;
		}
		if (cmd[0] == 'g') {
			r = vhsm_generate(c, name, &o.spec);
		} else {
			NEED_IN();
			r = vhsm_import(c, name, &o.spec, in, inl);
		}
	} else if (strcmp(cmd, "delete") == 0) {
		r = vhsm_delete(c, name);
	} else if (strcmp(cmd, "list") == 0) {
		vhsm_key_info *infos = NULL;
		size_t n = 0;

		if ((r = vhsm_list(c, &infos, &n)) == 0) {
			json_t *arr = j ? json_array() : NULL;

			for (i = 0; i < n; i++) {
				if (arr)
					json_array_append_new(arr, info_json(&infos[i]));
				else
					print_info(&infos[i]);
			}
			if (j)
				json_object_set_new(j, "keys", arr);
		}
		free(infos);
	} else if (strcmp(cmd, "info") == 0 || strcmp(cmd, "pubkey") == 0) {
		vhsm_key_info info;

		if ((r = vhsm_get_public(c, name, &info, &out, &outl)) == 0) {
			if (j)
				json_object_set_new(j, "key", info_json(&info));
			else
				print_info(&info);
			if (o.pubout) {
				if (out == NULL) {
					fprintf(stderr, "vhsm: %s has no public key\n", name);
					rc = 1;
					goto out;
				}
				if (write_pub(&o, out, outl) != 0) {
					rc = 2;
					goto out;
				}
			}
		}
	} else if (strcmp(cmd, "sign") == 0) {
		uint32_t ver = 0;

		NEED_IN();
		if ((r = vhsm_sign(c, name, o.alg, cli_hash(&o), in, inl, &out, &outl, &ver)) == 0) {
			if (emit_bytes(&o, j, "signature", out, outl) != 0) {
				rc = 2;
				goto out;
			}
			if (j)
				json_object_set_new(j, "version", json_integer(ver));
		}
	} else if (strcmp(cmd, "verify") == 0) {
		if (o.sig == NULL) {
			rc = die_usage("--sig is required");
			goto out;
		}
		NEED_IN();
		if (read_input(o.sig, &sig, &sigl) != 0)
			goto out;
		r = vhsm_verify(c, name, o.version, o.alg, cli_hash(&o), in, inl, sig, sigl);
		if (j && (r == 0 || r == VHSM_E_BAD_SIGNATURE))
			json_object_set_new(j, "valid", json_boolean(r == 0));
		if (!j && r == 0)
			printf("valid\n");
	} else if (strcmp(cmd, "encrypt") == 0 || strcmp(cmd, "decrypt") == 0 ||
		   strcmp(cmd, "wrap") == 0 || strcmp(cmd, "hmac") == 0) {
		NEED_IN();
		if (o.aad && read_input(o.aad, &aad, &aadl) != 0)
			goto out;
		if (cmd[0] == 'e')
			r = vhsm_encrypt(c, name, o.hash, aad, aadl, in, inl, &out, &outl);
		else if (cmd[0] == 'd')
			r = vhsm_decrypt(c, name, o.hash, aad, aadl, in, inl, &out, &outl);
		else if (cmd[0] == 'w')
			r = vhsm_wrap(c, name, in, inl, &out, &outl);
		else
			r = vhsm_hmac(c, name, in, inl, &out, &outl);
		if (r == 0 && emit_bytes(&o, j, "data", out, outl) != 0) {
			rc = 2;
			goto out;
		}
	} else if (strcmp(cmd, "unwrap") == 0 || strcmp(cmd, "derive") == 0) {
		if (o.new_name == NULL || !o.have_type) {
			rc = die_usage("--new NAME and --type are required");
			goto out;
		}
		if (cmd[0] == 'u') {
			NEED_IN();
			r = vhsm_unwrap(c, name, in, inl, o.new_name, &o.spec);
		} else {
			if (o.peer == NULL) {
				rc = die_usage("--peer FILE is required");
				goto out;
			}
			if (read_spki(o.peer, &peer, &peerl) != 0)
				goto out;
			r = vhsm_derive(c, name, peer, peerl, o.new_name, &o.spec);
		}
	} else if (strcmp(cmd, "random") == 0) {
		if (parse_u32(name, &u) != 0 || u == 0 || u > 65536) {
			rc = die_usage("random: count 1..65536");
			goto out;
		}
		if ((r = vhsm_random(c, u, &out)) == 0) {
			outl = u;
			if (emit_bytes(&o, j, "data", out, outl) != 0) {
				rc = 2;
				goto out;
			}
		}
	} else if (strcmp(cmd, "rotate") == 0) {
		if ((r = vhsm_rotate(c, name, &u)) == 0) {
			if (j)
				json_object_set_new(j, "version", json_integer(u));
			else
				printf("%s: version %u\n", name, u);
		}
	} else if (strcmp(cmd, "retire") == 0) {
		if (!o.have_version) {
			rc = die_usage("--version is required");
			goto out;
		}
		r = vhsm_retire(c, name, o.version);
	} else if (strcmp(cmd, "provision") == 0) {
		r = vhsm_provision(c, name);
	} else if (strcmp(cmd, "read") == 0) {
		if ((r = vhsm_read_secret(c, name, &out, &outl)) == 0 &&
		    emit_bytes(&o, j, "data", out, outl) != 0) {
			rc = 2;
			goto out;
		}
	} else {
		rc = die_usage("unknown command");
		goto out;
	}
	if (r == 0) {
		rc = 0;
	} else {
		rc = (r == VHSM_E_IO || r == VHSM_E_PROTOCOL || r == VHSM_E_NOMEM) ? 2 : 1;
		if (j) {
			json_object_set_new(j, "error", json_string(vhsm_strerror(r)));
			json_object_set_new(j, "status", json_integer(r));
			json_object_set_new(j, "message", json_string(vhsm_last_message()));
		}
		if (r != VHSM_E_BAD_SIGNATURE || !j)
			fprintf(stderr, "vhsm: %s %s: %s%s%s\n", cmd, name ? name : "", vhsm_strerror(r),
				vhsm_last_message()[0] ? ": " : "", vhsm_last_message());
	}
	if (j) {
		json_object_set_new(j, "ok", json_boolean(r == 0));
		json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
		putchar('\n');
	}
out:
	vhsm_buf_free(in, inl);
	vhsm_buf_free(out, outl);
	vhsm_buf_free(aad, aadl);
	free(sig);
	free(peer);
	json_decref(j);
	vhsm_close(c);
	return rc;
}
