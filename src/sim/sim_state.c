/* The simulator's state directory: chip secret, AMD-like CA hierarchy, VCEK/VLEK (sim_state.h). */
#include "sim/sim_state.h"

#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "sim/sim_crypto.h"
#include "sim/sim_log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define AMD_OID "1.3.6.1.4.1.3704.1"
#define CA_KEY_BITS 4096
#define PSS_SALT_LEN 48
#define DAY (24 * 60 * 60)
#define CA_YEARS 25
#define VCEK_YEARS 7
#define VLEK_YEARS 1
#define STATE_FILE_MAX (256u * 1024u)
#define CA_ROLES 3 /* ARK, ASK, ASVK */

struct product_ca {
	bool loaded;
	EVP_PKEY *key[CA_ROLES];
	X509 *cert[CA_ROLES];
};

struct sim_state {
	char dir[PATH_MAX];
	uint8_t secret[SIM_CHIP_SECRET_LEN];
	struct product_ca ca[SNP_PRODUCT_COUNT];
	pthread_mutex_t lock;
};

static const char *const ca_file[CA_ROLES] = { "ark", "ask", "asvk" };

static int
role_index(snp_cert_role role)
{
	switch (role) {
	case SNP_ROLE_ARK: return 0;
	case SNP_ROLE_ASK: return 1;
	case SNP_ROLE_ASVK: return 2;
	default: return -1;
	}
}

static bool
product_ok(snp_product p)
{
	return p > SNP_PRODUCT_UNKNOWN && (unsigned)p < SNP_PRODUCT_COUNT;
}

/* dir/a[/b] into buf; -1 when too long. */
static int
path_join(char *buf, size_t len, const char *dir, const char *a, const char *b)
{
	int n = b != NULL ? snprintf(buf, len, "%s/%s/%s", dir, a, b) : snprintf(buf, len, "%s/%s", dir, a);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* mkdir with `mode` unless it exists; the result must be a directory owned by us,
 * and (private) not accessible by group or others — tightened if it is. */
static int
ensure_dir(const char *path, mode_t mode, bool private_dir, char *err, size_t errlen)
{
	struct stat sb;

	if (mkdir(path, mode) != 0 && errno != EEXIST)
		return sim_fail(err, errlen, "%s: cannot create directory: %s", path, strerror(errno));
	if (stat(path, &sb) != 0)
		return sim_fail(err, errlen, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		return sim_fail(err, errlen, "%s: not a directory", path);
	if (private_dir) {
		if (sb.st_uid != geteuid())
			return sim_fail(err, errlen, "%s: owned by uid %u, not by us", path, (unsigned)sb.st_uid);
		if ((sb.st_mode & 077) != 0) {
			if (chmod(path, 0700) != 0)
				return sim_fail(err, errlen, "%s: cannot chmod 0700: %s", path, strerror(errno));
			sim_log(SIM_LOG_WARN, "%s: was mode %04o, now 0700", path,
				(unsigned)(sb.st_mode & 07777));
		}
	}
	return 0;
}

static bool
file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Read a private file: it must not be readable by group or others. */
static int
read_private(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen)
{
	struct stat sb;
	int rc;

	if (stat(path, &sb) != 0)
		return sim_fail(err, errlen, "%s: %s", path, strerror(errno));
	if ((sb.st_mode & 077) != 0)
		return sim_fail(err, errlen, "%s: mode %04o, private files must be 0600", path,
			    (unsigned)(sb.st_mode & 07777));
	if ((rc = file_read_all(path, STATE_FILE_MAX, buf, len)) != 0)
		return sim_fail(err, errlen, "%s: %s", path, strerror(-rc));
	return 0;
}

static int
write_file(const char *path, const uint8_t *data, size_t len, mode_t mode, char *err, size_t errlen)
{
	int rc;

	if ((rc = atomic_write_file(path, data, len, mode)) != 0)
		return sim_fail(err, errlen, "%s: cannot write: %s", path, strerror(-rc));
	return 0;
}

int
sim_state_open(const char *dir, struct sim_state **out, char *err, size_t errlen)
{
	struct sim_state *st = NULL;
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = -1;

	if (dir == NULL || strlen(dir) >= sizeof(st->dir) - 64) {
		(void)sim_fail(err, errlen, "state directory path missing or too long");
		goto out;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		(void)sim_fail(err, errlen, "out of memory");
		goto out;
	}
	if (pthread_mutex_init(&st->lock, NULL) != 0) {
		free(st);
		st = NULL;
		(void)sim_fail(err, errlen, "cannot create a mutex");
		goto out;
	}
	memcpy(st->dir, dir, strlen(dir) + 1);
	if (ensure_dir(dir, 0700, true, err, errlen) != 0)
		goto out;
	if (path_join(path, sizeof(path), dir, "chip.secret", NULL) != 0) {
		(void)sim_fail(err, errlen, "%s: path too long", dir);
		goto out;
	}
	if (file_exists(path)) {
		if (read_private(path, &buf, &len, err, errlen) != 0)
			goto out;
		if (len != SIM_CHIP_SECRET_LEN) {
			(void)sim_fail(err, errlen, "%s: %zu bytes, expected %u", path, len, SIM_CHIP_SECRET_LEN);
			goto out;
		}
		memcpy(st->secret, buf, SIM_CHIP_SECRET_LEN);
	} else {
		if (RAND_priv_bytes(st->secret, SIM_CHIP_SECRET_LEN) != 1) {
			(void)sim_fail(err, errlen, "no random bytes for the chip secret");
			goto out;
		}
		if (write_file(path, st->secret, SIM_CHIP_SECRET_LEN, 0600, err, errlen) != 0)
			goto out;
		sim_log(SIM_LOG_INFO, "created a new chip secret in %s", dir);
	}
	*out = st;
	st = NULL;
	r = 0;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);
		free(buf);
	}
	sim_state_free(st);
	return r;
}

void
sim_state_free(struct sim_state *st)
{
	int p, i;

	if (st == NULL)
		return;
	for (p = 0; p < SNP_PRODUCT_COUNT; p++) {
		for (i = 0; i < CA_ROLES; i++) {
			EVP_PKEY_free(st->ca[p].key[i]);
			X509_free(st->ca[p].cert[i]);
		}
	}
	OPENSSL_cleanse(st->secret, sizeof(st->secret));
	pthread_mutex_destroy(&st->lock);
	free(st);
}

const char *
sim_state_dir(const struct sim_state *st)
{
	return st->dir;
}

const uint8_t *
sim_state_chip_secret(const struct sim_state *st)
{
	return st->secret;
}

int
sim_state_chip_id(const struct sim_state *st, snp_product p, uint8_t out[SNP_CHIP_ID_LEN])
{
	static const char salt[] = "snpsimd chip id v1";
	const char *name = snp_product_name(p);
	uint8_t id[SNP_CHIP_ID_LEN];

	if (!product_ok(p) ||
	    sim_hkdf_sha384(st->secret, sizeof(st->secret), (const uint8_t *)salt, strlen(salt),
			    (const uint8_t *)name, strlen(name), id, sizeof(id)) != 0)
		return -1;
	if (p == SNP_PRODUCT_TURIN)
		memset(id + SNP_HWID_LEN_TURIN, 0, SNP_CHIP_ID_LEN - SNP_HWID_LEN_TURIN);
	/* An all-zero id would read as masked; HKDF output is never that in practice,
	 * but make it impossible. */
	id[0] |= 1;
	memcpy(out, id, sizeof(id));
	return 0;
}

/* ------------------------------------------------------------------ */
/* Certificates                                                        */

/* AMD's DN with the given CN. */
static X509_NAME *
amd_name(const char *cn)
{
	static const char *const fields[][2] = {
		{ "OU", "Engineering" }, { "C", "US" }, { "L", "Santa Clara" }, { "ST", "CA" },
		{ "O", "Advanced Micro Devices" },
	};
	X509_NAME *n = X509_NAME_new();
	size_t i;

	if (n == NULL)
		return NULL;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (X509_NAME_add_entry_by_txt(n, fields[i][0], MBSTRING_ASC,
					       (const unsigned char *)fields[i][1], -1, -1, 0) != 1)
			goto fail;
	}
	if (X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) != 1)
		goto fail;
	return n;
fail:
	X509_NAME_free(n);
	return NULL;
}

/* Sign with AMD's algorithm: RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48. */
static EVP_MD_CTX *
pss_ctx(EVP_PKEY *key)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;

	if (mctx == NULL || EVP_DigestSignInit(mctx, &pctx, EVP_sha384(), NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, PSS_SALT_LEN) != 1) {
		EVP_MD_CTX_free(mctx);
		return NULL;
	}
	return mctx;
}

static int
add_conf_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int r;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	r = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return r;
}

/* An extension under AMD's arc whose extnValue is `value` as it is. */
static int
add_raw_ext(X509 *x, const char *oid, const uint8_t *value, size_t len)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
	ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
	X509_EXTENSION *ext = NULL;
	int r = -1;

	if (obj == NULL || os == NULL || ASN1_OCTET_STRING_set(os, value, (int)len) != 1 ||
	    (ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os)) == NULL ||
	    X509_add_ext(x, ext, -1) != 1)
		goto out;
	r = 0;
out:
	X509_EXTENSION_free(ext);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(obj);
	return r;
}

static int
add_int_ext(X509 *x, const char *oid, long v)
{
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	unsigned char *der = NULL;
	int len, r = -1;

	if (ai != NULL && ASN1_INTEGER_set(ai, v) == 1 && (len = i2d_ASN1_INTEGER(ai, &der)) > 0)
		r = add_raw_ext(x, oid, der, (size_t)len);
	OPENSSL_free(der);
	ASN1_INTEGER_free(ai);
	return r;
}

static int
add_ia5_ext(X509 *x, const char *oid, const char *s)
{
	ASN1_IA5STRING *a = ASN1_IA5STRING_new();
	unsigned char *der = NULL;
	int len, r = -1;

	if (a != NULL && ASN1_STRING_set(a, s, -1) == 1 && (len = i2d_ASN1_IA5STRING(a, &der)) > 0)
		r = add_raw_ext(x, oid, der, (size_t)len);
	OPENSSL_free(der);
	ASN1_IA5STRING_free(a);
	return r;
}

/* A v3 certificate skeleton. */
static X509 *
skeleton(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *pub, ASN1_INTEGER *serial,
	 time_t not_before, time_t not_after)
{
	X509 *x = X509_new();

	if (x == NULL || X509_set_version(x, 2) != 1 || X509_set_serialNumber(x, serial) != 1 ||
	    X509_set_subject_name(x, subject) != 1 || X509_set_issuer_name(x, issuer) != 1 ||
	    ASN1_TIME_set(X509_getm_notBefore(x), not_before) == NULL ||
	    ASN1_TIME_set(X509_getm_notAfter(x), not_after) == NULL || X509_set_pubkey(x, pub) != 1) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* A random positive 64-bit serial number. */
static ASN1_INTEGER *
random_serial(void)
{
	uint8_t b[8];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;

	if (RAND_bytes(b, sizeof(b)) == 1) {
		b[0] = (uint8_t)((b[0] & 0x7f) | 0x01);
		if ((bn = BN_bin2bn(b, sizeof(b), NULL)) != NULL)
			ai = BN_to_ASN1_INTEGER(bn, NULL);
	}
	BN_free(bn);
	return ai;
}

/* ARK (issuer NULL: self-signed) or ASK/ASVK issued by the ARK. */
static X509 *
make_ca_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, time_t now)
{
	X509_NAME *subj = amd_name(cn);
	ASN1_INTEGER *serial = random_serial();
	EVP_MD_CTX *mctx = NULL;
	X509 *x = NULL;
	bool ark = issuer == NULL;

	if (subj == NULL || serial == NULL)
		goto fail;
	if ((x = skeleton(subj, ark ? subj : X509_get_subject_name(issuer), key, serial, now - DAY,
			  now + (time_t)CA_YEARS * 365 * DAY)) == NULL)
		goto fail;
	if (add_conf_ext(x, ark ? x : issuer, NID_basic_constraints,
			 ark ? "critical,CA:TRUE" : "critical,CA:TRUE,pathlen:0") != 0 ||
	    add_conf_ext(x, ark ? x : issuer, NID_key_usage,
			 ark ? "critical,keyCertSign,cRLSign" : "critical,keyCertSign") != 0 ||
	    add_conf_ext(x, ark ? x : issuer, NID_subject_key_identifier, "hash") != 0)
		goto fail;
	if ((mctx = pss_ctx(ark ? key : issuer_key)) == NULL || X509_sign_ctx(x, mctx) <= 0)
		goto fail;
	EVP_MD_CTX_free(mctx);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(subj);
	return x;
fail:
	EVP_MD_CTX_free(mctx);
	ASN1_INTEGER_free(serial);
	X509_NAME_free(subj);
	X509_free(x);
	return NULL;
}

static int
x509_to_pem(X509 *x, uint8_t **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long n;
	int r = -1;

	if (b == NULL || PEM_write_bio_X509(b, x) != 1 || (n = BIO_get_mem_data(b, &data)) <= 0)
		goto out;
	if ((*out = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*out, data, (size_t)n);
	*len = (size_t)n;
	r = 0;
out:
	BIO_free(b);
	return r;
}

static int
x509_to_der(X509 *x, uint8_t **out, size_t *len)
{
	unsigned char *buf = NULL;
	int n;

	if ((n = i2d_X509(x, &buf)) <= 0)
		return -1;
	if ((*out = malloc((size_t)n)) == NULL) {
		OPENSSL_free(buf);
		return -1;
	}
	memcpy(*out, buf, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(buf);
	return 0;
}

static int
key_to_pem(EVP_PKEY *k, uint8_t **out, size_t *len)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long n;
	int r = -1;

	if (b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(b, &data)) <= 0)
		goto out;
	if ((*out = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*out, data, (size_t)n);
	*len = (size_t)n;
	r = 0;
out:
	BIO_free(b); /* a secmem BIO clears its buffer */
	return r;
}

static void
free_secret(uint8_t *p, size_t len)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, len);
		free(p);
	}
}

/* Load DIR/<p>/{ark,ask,asvk}.{key,pem} into st->ca[p]. */
static int
load_ca(struct sim_state *st, snp_product p, const char *pdir, char *err, size_t errlen)
{
	struct product_ca ca;
	char path[PATH_MAX], name[16];
	uint8_t *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int i, r = -1;

	memset(&ca, 0, sizeof(ca));
	for (i = 0; i < CA_ROLES; i++) {
		(void)snprintf(name, sizeof(name), "%s.key", ca_file[i]);
		if (path_join(path, sizeof(path), pdir, name, NULL) != 0 ||
		    read_private(path, &buf, &len, err, errlen) != 0)
			goto out;
		if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
		    (ca.key[i] = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
			(void)sim_fail(err, errlen, "%s: not a PEM private key", path);
			goto out;
		}
		BIO_free(b);
		b = NULL;
		free_secret(buf, len);
		buf = NULL;
		(void)snprintf(name, sizeof(name), "%s.pem", ca_file[i]);
		if (path_join(path, sizeof(path), pdir, name, NULL) != 0 ||
		    file_read_all(path, STATE_FILE_MAX, &buf, &len) != 0) {
			(void)sim_fail(err, errlen, "%s: cannot read", path);
			goto out;
		}
		if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
		    (ca.cert[i] = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
			(void)sim_fail(err, errlen, "%s: not a PEM certificate", path);
			goto out;
		}
		BIO_free(b);
		b = NULL;
		free(buf);
		buf = NULL;
		if (EVP_PKEY_eq(X509_get0_pubkey(ca.cert[i]), ca.key[i]) != 1) {
			(void)sim_fail(err, errlen, "%s: certificate does not match %s.key", path, ca_file[i]);
			goto out;
		}
	}
	ca.loaded = true;
	st->ca[p] = ca;
	memset(&ca, 0, sizeof(ca));
	r = 0;
out:
	BIO_free(b);
	free_secret(buf, len);
	for (i = 0; i < CA_ROLES; i++) {
		EVP_PKEY_free(ca.key[i]);
		X509_free(ca.cert[i]);
	}
	ERR_clear_error();
	return r;
}

/* Generate and store a new hierarchy for p. */
static int
create_ca(struct sim_state *st, snp_product p, const char *pdir, char *err, size_t errlen)
{
	static const char *const cn_prefix[CA_ROLES] = { "ARK-", "SEV-", "SEV-VLEK-" };
	struct product_ca ca;
	char path[PATH_MAX], name[16], cn[32];
	uint8_t *buf = NULL;
	size_t len = 0;
	time_t now = time(NULL);
	int i, r = -1;

	memset(&ca, 0, sizeof(ca));
	sim_log(SIM_LOG_INFO, "creating the %s ARK, ASK and ASVK (RSA-%d) in %s", snp_product_name(p),
		CA_KEY_BITS, pdir);
	for (i = 0; i < CA_ROLES; i++) {
		if ((ca.key[i] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)CA_KEY_BITS)) == NULL) {
			(void)sim_fail(err, errlen, "RSA-%d key generation failed", CA_KEY_BITS);
			goto out;
		}
		(void)snprintf(cn, sizeof(cn), "%s%s", cn_prefix[i], snp_product_kds_name(p));
		ca.cert[i] = make_ca_cert(cn, ca.key[i], i == 0 ? NULL : ca.cert[0],
					  i == 0 ? NULL : ca.key[0], now);
		if (ca.cert[i] == NULL) {
			(void)sim_fail(err, errlen, "cannot issue the %s certificate", cn);
			goto out;
		}
	}
	/* Keys first: a directory with certificates always has their keys. */
	for (i = 0; i < CA_ROLES; i++) {
		(void)snprintf(name, sizeof(name), "%s.key", ca_file[i]);
		if (path_join(path, sizeof(path), pdir, name, NULL) != 0 ||
		    key_to_pem(ca.key[i], &buf, &len) != 0) {
			(void)sim_fail(err, errlen, "cannot encode the %s key", ca_file[i]);
			goto out;
		}
		if (write_file(path, buf, len, 0600, err, errlen) != 0)
			goto out;
		free_secret(buf, len);
		buf = NULL;
	}
	for (i = CA_ROLES - 1; i >= 0; i--) { /* ark.pem last: it marks a complete hierarchy */
		(void)snprintf(name, sizeof(name), "%s.pem", ca_file[i]);
		if (path_join(path, sizeof(path), pdir, name, NULL) != 0 ||
		    x509_to_pem(ca.cert[i], &buf, &len) != 0) {
			(void)sim_fail(err, errlen, "cannot encode the %s certificate", ca_file[i]);
			goto out;
		}
		if (write_file(path, buf, len, 0644, err, errlen) != 0)
			goto out;
		free(buf);
		buf = NULL;
	}
	ca.loaded = true;
	st->ca[p] = ca;
	memset(&ca, 0, sizeof(ca));
	r = 0;
out:
	free_secret(buf, len);
	for (i = 0; i < CA_ROLES; i++) {
		EVP_PKEY_free(ca.key[i]);
		X509_free(ca.cert[i]);
	}
	ERR_clear_error();
	return r;
}

/* Caller holds the lock. */
static int
ensure_ca_locked(struct sim_state *st, snp_product p, char *err, size_t errlen)
{
	char pdir[PATH_MAX], path[PATH_MAX];

	if (!product_ok(p))
		return sim_fail(err, errlen, "unknown product");
	if (st->ca[p].loaded)
		return 0;
	if (path_join(pdir, sizeof(pdir), st->dir, snp_product_name(p), NULL) != 0 ||
	    path_join(path, sizeof(path), pdir, "ark.pem", NULL) != 0)
		return sim_fail(err, errlen, "%s: path too long", st->dir);
	if (ensure_dir(pdir, 0700, true, err, errlen) != 0)
		return -1;
	if (file_exists(path))
		return load_ca(st, p, pdir, err, errlen);
	return create_ca(st, p, pdir, err, errlen);
}

int
sim_state_ensure_ca(struct sim_state *st, snp_product p, char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&st->lock);
	r = ensure_ca_locked(st, p, err, errlen);
	pthread_mutex_unlock(&st->lock);
	return r;
}

bool
sim_state_has_ca(struct sim_state *st, snp_product p)
{
	char path[PATH_MAX];
	bool has;

	if (!product_ok(p))
		return false;
	pthread_mutex_lock(&st->lock);
	has = st->ca[p].loaded ||
	      (path_join(path, sizeof(path), st->dir, snp_product_name(p), "ark.pem") == 0 &&
	       file_exists(path));
	pthread_mutex_unlock(&st->lock);
	return has;
}

int
sim_state_ca_cert(struct sim_state *st, snp_product p, snp_cert_role role, bool pem, uint8_t **out,
		  size_t *len, char *err, size_t errlen)
{
	int i = role_index(role), r = -1;

	if (i < 0)
		return sim_fail(err, errlen, "not a CA role");
	pthread_mutex_lock(&st->lock);
	if (ensure_ca_locked(st, p, err, errlen) != 0)
		goto out;
	if ((pem ? x509_to_pem(st->ca[p].cert[i], out, len) : x509_to_der(st->ca[p].cert[i], out, len)) != 0) {
		(void)sim_fail(err, errlen, "cannot encode the %s certificate", ca_file[i]);
		goto out;
	}
	r = 0;
out:
	pthread_mutex_unlock(&st->lock);
	return r;
}

/* ------------------------------------------------------------------ */
/* VCEK / VLEK                                                         */

/* The leaf's private key: HKDF-SHA-384(chip secret, salt "snpsimd leaf key v1",
 * info = "VCEK"|"VLEK" ‖ product (u8) ‖ chip id (64 bytes; zero for a VLEK) ‖ TCB (u64le)),
 * 64 bytes, turned into a P-384 scalar by sim_p384_from_seed. */
static int
leaf_key(const struct sim_state *st, snp_product p, bool vlek, const uint8_t chip_id[SNP_CHIP_ID_LEN],
	 uint64_t tcb, EVP_PKEY **out)
{
	static const char salt[] = "snpsimd leaf key v1";
	uint8_t info[4 + 1 + SNP_CHIP_ID_LEN + 8], seed[64];
	int i, r;

	memcpy(info, vlek ? "VLEK" : "VCEK", 4);
	info[4] = (uint8_t)p;
	if (vlek)
		memset(info + 5, 0, SNP_CHIP_ID_LEN);
	else
		memcpy(info + 5, chip_id, SNP_CHIP_ID_LEN);
	for (i = 0; i < 8; i++)
		info[5 + SNP_CHIP_ID_LEN + i] = (uint8_t)(tcb >> (8 * i));
	r = sim_hkdf_sha384(st->secret, sizeof(st->secret), (const uint8_t *)salt, strlen(salt), info,
			    sizeof(info), seed, sizeof(seed));
	if (r == 0)
		r = sim_p384_from_seed(seed, out);
	OPENSSL_cleanse(seed, sizeof(seed));
	return r;
}

/* productName as AMD writes it: VCEK "Milan-B0" / "Genoa" / "Turin"; VLEK without stepping. */
static const char *
leaf_product_name(snp_product p, bool vlek)
{
	if (p == SNP_PRODUCT_MILAN && !vlek)
		return "Milan-B0";
	return snp_product_kds_name(p);
}

static X509 *
issue_leaf(struct product_ca *ca, snp_product p, bool vlek, const uint8_t chip_id[SNP_CHIP_ID_LEN],
	   uint64_t tcb_raw, EVP_PKEY *key)
{
	X509_NAME *subj = amd_name(vlek ? "SEV-VLEK" : "SEV-VCEK");
	ASN1_INTEGER *zero = ASN1_INTEGER_new();
	X509 *issuer = ca->cert[vlek ? 2 : 1];
	EVP_MD_CTX *mctx = NULL;
	X509 *x = NULL;
	bool turin = p == SNP_PRODUCT_TURIN;
	time_t now = time(NULL);
	snp_tcb t;
	int spl[9], i;
	char oid[40];

	snp_tcb_decode(tcb_raw, p, &t);
	/* .3.1 bl, .3.2 tee, .3.3 snp, .3.4 spl_4 (not on Turin), .3.5-.3.7 zero, .3.8 ucode, .3.9 fmc (Turin) */
	spl[0] = t.bootloader, spl[1] = t.tee, spl[2] = t.snp, spl[3] = turin ? -1 : 0;
	spl[4] = spl[5] = spl[6] = 0;
	spl[7] = t.microcode;
	spl[8] = turin ? t.fmc : -1;
	if (subj == NULL || zero == NULL || ASN1_INTEGER_set(zero, 0) != 1)
		goto fail;
	/* AMD issues every VCEK/VLEK with serial number 0; VCEK 7 years, VLEK 1 year. */
	if ((x = skeleton(subj, X509_get_subject_name(issuer), key, zero, now - DAY,
			  now + (time_t)(vlek ? VLEK_YEARS : VCEK_YEARS) * 365 * DAY)) == NULL)
		goto fail;
	if (add_int_ext(x, AMD_OID ".1", turin ? 1 : 0) != 0 ||
	    add_ia5_ext(x, AMD_OID ".2", leaf_product_name(p, vlek)) != 0)
		goto fail;
	for (i = 0; i < 9; i++) {
		if (spl[i] < 0)
			continue;
		(void)snprintf(oid, sizeof(oid), AMD_OID ".3.%d", i + 1);
		if (add_int_ext(x, oid, spl[i]) != 0)
			goto fail;
	}
	if (vlek ? add_ia5_ext(x, AMD_OID ".5", SIM_VLEK_CSP_ID)
		 : add_raw_ext(x, AMD_OID ".4", chip_id, turin ? SNP_HWID_LEN_TURIN : SNP_HWID_LEN_LEGACY))
		goto fail;
	if ((mctx = pss_ctx(ca->key[vlek ? 2 : 1])) == NULL || X509_sign_ctx(x, mctx) <= 0)
		goto fail;
	EVP_MD_CTX_free(mctx);
	ASN1_INTEGER_free(zero);
	X509_NAME_free(subj);
	return x;
fail:
	EVP_MD_CTX_free(mctx);
	ASN1_INTEGER_free(zero);
	X509_NAME_free(subj);
	X509_free(x);
	return NULL;
}

/* A stored leaf is reused when it parses, matches the derived key and is valid for a day. */
static X509 *
load_leaf(const char *path, EVP_PKEY *key)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const unsigned char *q;
	X509 *x = NULL;
	time_t soon = time(NULL) + DAY;

	if (!file_exists(path) || file_read_all(path, STATE_FILE_MAX, &buf, &len) != 0)
		return NULL;
	q = buf;
	if ((x = d2i_X509(NULL, &q, (long)len)) == NULL || q != buf + len ||
	    EVP_PKEY_eq(X509_get0_pubkey(x), key) != 1 ||
	    X509_cmp_time(X509_get0_notAfter(x), &soon) <= 0) {
		X509_free(x);
		x = NULL;
	}
	free(buf);
	ERR_clear_error();
	return x;
}

int
sim_state_leaf(struct sim_state *st, snp_product p, snp_cert_role role,
	       const uint8_t chip_id[SNP_CHIP_ID_LEN], uint64_t tcb, uint8_t **der, size_t *der_len,
	       EVP_PKEY **key_out, char *err, size_t errlen)
{
	bool vlek = role == SNP_ROLE_VLEK;
	char dir[PATH_MAX], path[PATH_MAX], name[2 * SNP_CHIP_ID_LEN + 32], chip_hex[2 * SNP_CHIP_ID_LEN + 1];
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	int r = -1;

	if (role != SNP_ROLE_VCEK && role != SNP_ROLE_VLEK)
		return sim_fail(err, errlen, "a leaf is a VCEK or a VLEK");
	if (!vlek && chip_id == NULL)
		return sim_fail(err, errlen, "a VCEK needs a chip id");
	pthread_mutex_lock(&st->lock);
	if (ensure_ca_locked(st, p, err, errlen) != 0)
		goto out;
	if (leaf_key(st, p, vlek, chip_id, tcb, &key) != 0) {
		(void)sim_fail(err, errlen, "cannot derive the %s key", vlek ? "VLEK" : "VCEK");
		goto out;
	}
	if (vlek) {
		(void)snprintf(name, sizeof(name), "%016llx.der", (unsigned long long)tcb);
	} else {
		hex_encode(chip_id, SNP_CHIP_ID_LEN, chip_hex);
		(void)snprintf(name, sizeof(name), "%016llx-%s.der", (unsigned long long)tcb, chip_hex);
	}
	if (path_join(dir, sizeof(dir), st->dir, snp_product_name(p), vlek ? "vlek" : "vcek") != 0 ||
	    path_join(path, sizeof(path), dir, name, NULL) != 0) {
		(void)sim_fail(err, errlen, "%s: path too long", st->dir);
		goto out;
	}
	if (ensure_dir(dir, 0700, true, err, errlen) != 0)
		goto out;
	if ((x = load_leaf(path, key)) == NULL) {
		if ((x = issue_leaf(&st->ca[p], p, vlek, chip_id, tcb, key)) == NULL) {
			(void)sim_fail(err, errlen, "cannot issue the %s", vlek ? "VLEK" : "VCEK");
			goto out;
		}
		if (x509_to_der(x, &buf, &len) != 0) {
			(void)sim_fail(err, errlen, "cannot encode the %s", vlek ? "VLEK" : "VCEK");
			goto out;
		}
		if (write_file(path, buf, len, 0644, err, errlen) != 0)
			goto out;
		sim_log(SIM_LOG_INFO, "issued a %s %s for TCB 0x%016llx", snp_product_name(p),
			vlek ? "VLEK" : "VCEK", (unsigned long long)tcb);
	} else if (x509_to_der(x, &buf, &len) != 0) {
		(void)sim_fail(err, errlen, "cannot encode the %s", vlek ? "VLEK" : "VCEK");
		goto out;
	}
	*der = buf;
	*der_len = len;
	buf = NULL;
	if (key_out != NULL) {
		*key_out = key;
		key = NULL;
	}
	r = 0;
out:
	pthread_mutex_unlock(&st->lock);
	free(buf);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return r;
}

int
sim_state_crl(struct sim_state *st, snp_product p, uint8_t **der, size_t *der_len, char *err,
	      size_t errlen)
{
	X509_CRL *crl = NULL;
	ASN1_TIME *tu = NULL, *nu = NULL;
	EVP_MD_CTX *mctx = NULL;
	unsigned char *buf = NULL;
	time_t now = time(NULL);
	int n, r = -1;

	pthread_mutex_lock(&st->lock);
	if (ensure_ca_locked(st, p, err, errlen) != 0)
		goto out;
	if ((crl = X509_CRL_new()) == NULL || (tu = ASN1_TIME_set(NULL, now)) == NULL ||
	    (nu = ASN1_TIME_set(NULL, now + 7 * DAY)) == NULL || X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(st->ca[p].cert[0])) != 1 ||
	    X509_CRL_set1_lastUpdate(crl, tu) != 1 || X509_CRL_set1_nextUpdate(crl, nu) != 1 ||
	    (mctx = pss_ctx(st->ca[p].key[0])) == NULL || X509_CRL_sign_ctx(crl, mctx) <= 0 ||
	    (n = i2d_X509_CRL(crl, &buf)) <= 0) {
		(void)sim_fail(err, errlen, "cannot issue the %s CRL", snp_product_name(p));
		goto out;
	}
	if ((*der = malloc((size_t)n)) == NULL) {
		(void)sim_fail(err, errlen, "out of memory");
		goto out;
	}
	memcpy(*der, buf, (size_t)n);
	*der_len = (size_t)n;
	r = 0;
out:
	pthread_mutex_unlock(&st->lock);
	OPENSSL_free(buf);
	EVP_MD_CTX_free(mctx);
	ASN1_TIME_free(tu);
	ASN1_TIME_free(nu);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
sim_state_export_roots(struct sim_state *st, const char *outdir, int *count, char *err, size_t errlen)
{
	char path[PATH_MAX], name[32];
	uint8_t *pem = NULL;
	size_t len = 0;
	int p, i, n = 0;

	if (ensure_dir(outdir, 0755, false, err, errlen) != 0)
		return -1;
	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		if (!sim_state_has_ca(st, (snp_product)p))
			continue;
		for (i = 0; i < CA_ROLES; i++) {
			snp_cert_role role = i == 0 ? SNP_ROLE_ARK : i == 1 ? SNP_ROLE_ASK : SNP_ROLE_ASVK;

			(void)snprintf(name, sizeof(name), "%s_%s.pem", ca_file[i],
				       snp_product_name((snp_product)p));
			if (path_join(path, sizeof(path), outdir, name, NULL) != 0)
				return sim_fail(err, errlen, "%s: path too long", outdir);
			if (sim_state_ca_cert(st, (snp_product)p, role, true, &pem, &len, err, errlen) != 0)
				return -1;
			if (write_file(path, pem, len, 0644, err, errlen) != 0) {
				free(pem);
				return -1;
			}
			free(pem);
			pem = NULL;
		}
		n++;
	}
	*count = n;
	return 0;
}
