#include "vhsm/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "common/rbuf.h"
#include "nitride/snp.h"

#define STORE_FORMAT 1
#define CHECK_PLAIN "nitride-vhsm-store-check-v1"
#define RECORD_AAD "nitride-vhsm-record-v1"
#define KDF_INFO "nitride-vhsm-store-v1 "
#define NONCE_LEN 12
#define TAG_LEN 16
#define SEAL_TEXT_MAX 160
#define MATERIAL_MAX (64u * 1024u)

struct vstore {
	sqlite3 *db;
	uint8_t *key; /* 32 bytes, secure heap */
	char path[4096];
};

static const struct {
	const char *name;
	uint64_t bit;
} field_names[] = {
	{ "policy", SNP_KEY_FIELD_POLICY },
	{ "image_id", SNP_KEY_FIELD_IMAGE_ID },
	{ "family_id", SNP_KEY_FIELD_FAMILY_ID },
	{ "measurement", SNP_KEY_FIELD_MEASUREMENT },
	{ "guest_svn", SNP_KEY_FIELD_GUEST_SVN },
	{ "tcb_version", SNP_KEY_FIELD_TCB_VERSION },
};

int
vstore_parse_fields(const char *s, uint64_t *fields)
{
	uint64_t f = 0;
	const char *p = s;

	while (*p) {
		size_t n = strcspn(p, ", "), i;
		bool found = false;

		if (n == 0) {
			p++;
			continue;
		}
		for (i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++) {
			if (strlen(field_names[i].name) == n && strncmp(p, field_names[i].name, n) == 0) {
				f |= field_names[i].bit;
				found = true;
			}
		}
		if (!found)
			return -1;
		p += n;
	}
	*fields = f;
	return 0;
}

void
vstore_seal_text(const struct vstore_seal *s, char *out, size_t outlen)
{
	size_t i, off;
	int n;

	n = snprintf(out, outlen, "root=%s vmpl=%u guest_svn=%u tcb=%016llx fields=",
		     s->root_key == SNP_KEY_ROOT_VMRK ? "vmrk" : "vcek", s->vmpl, s->guest_svn,
		     (unsigned long long)s->tcb_version);
	off = n > 0 ? (size_t)n : 0;
	for (i = 0; i < sizeof(field_names) / sizeof(field_names[0]) && off < outlen; i++) {
		if (!(s->fields & field_names[i].bit))
			continue;
		n = snprintf(out + off, outlen - off, "%s%s", out[off - 1] == '=' ? "" : ",",
			     field_names[i].name);
		if (n > 0)
			off += (size_t)n;
	}
}

/* AES-256-GCM one-shot.  enc: out gets len bytes + tag; dec: in has len+TAG_LEN bytes. */
static int
gcm(const uint8_t *key, bool enc, const uint8_t nonce[NONCE_LEN], const uint8_t *aad,
    size_t aad_len, const uint8_t *in, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int l = 0, ok = 0;
	uint8_t tag[TAG_LEN];

	if (ctx == NULL || len > INT32_MAX || aad_len > INT32_MAX)
		goto out;
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc ? 1 : 0) != 1 ||
	    EVP_CipherUpdate(ctx, NULL, &l, aad, (int)aad_len) != 1 ||
	    (len > 0 && EVP_CipherUpdate(ctx, out, &l, in, (int)len) != 1))
		goto out;
	if (enc) {
		if (EVP_CipherFinal_ex(ctx, out + len, &l) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + len) != 1)
			goto out;
	} else {
		memcpy(tag, in + len, TAG_LEN);
		if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
		    EVP_CipherFinal_ex(ctx, out + len, &l) != 1)
			goto out;
	}
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ok ? 0 : -1;
}

static int
derive_store_key(const char *snp_spec, const struct vstore_seal *seal, const char *text,
		 uint8_t *key, char *err, size_t errlen)
{
	snp_guest *g = NULL;
	snp_error se;
	snp_key_request req;
	uint8_t *raw = NULL;
	EVP_KDF *kdf = NULL;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[4];
	char info[sizeof(KDF_INFO) + SEAL_TEXT_MAX];
	int r = -1;

	memset(&req, 0, sizeof(req));
	req.root_key = seal->root_key;
	req.guest_field_select = seal->fields;
	req.vmpl = seal->vmpl;
	req.guest_svn = seal->guest_svn;
	req.tcb_version = seal->tcb_version;
	if ((raw = OPENSSL_secure_malloc(SNP_DERIVED_KEY_LEN)) == NULL) {
		snprintf(err, errlen, "out of secure memory");
		goto out;
	}
	if (snp_guest_open(snp_spec, &g, &se) != 0) {
		snprintf(err, errlen, "cannot reach the SEV-SNP firmware (%s): %s",
			 snp_spec && *snp_spec ? snp_spec : "auto", se.detail);
		goto out;
	}
	if (snp_guest_derive_key(g, &req, raw, &se) != 0) {
		snprintf(err, errlen, "derived-key request (%s) failed: %s", text, se.detail);
		goto out;
	}
	snprintf(info, sizeof(info), "%s%s", KDF_INFO, text);
	if ((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL ||
	    (kctx = EVP_KDF_CTX_new(kdf)) == NULL) {
		snprintf(err, errlen, "HKDF unavailable");
		goto out;
	}
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						     (char *)(uintptr_t) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, raw, SNP_DERIVED_KEY_LEN);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, strlen(info));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, key, 32, params) != 1) {
		snprintf(err, errlen, "HKDF failed");
		goto out;
	}
	r = 0;
out:
	if (raw != NULL)
		OPENSSL_secure_clear_free(raw, SNP_DERIVED_KEY_LEN);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	snp_guest_close(g);
	return r;
}

static int
exec_sql(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* Read meta value `k` into a malloc'ed buffer. */
static int
meta_get(sqlite3 *db, const char *k, uint8_t **v, size_t *len)
{
	sqlite3_stmt *st = NULL;
	int r = -1, n;

	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		n = sqlite3_column_bytes(st, 0);
		if ((*v = malloc((size_t)n + 1)) != NULL) {
			if (n > 0)
				memcpy(*v, sqlite3_column_blob(st, 0), (size_t)n);
			(*v)[n] = 0;
			*len = (size_t)n;
			r = 0;
		}
	}
	sqlite3_finalize(st);
	return r;
}

static int
meta_put(sqlite3 *db, const char *k, const void *v, size_t len)
{
	sqlite3_stmt *st = NULL;
	int r = -1;

	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta(k, v) VALUES (?1, ?2)", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, v, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

static int
create_store(struct vstore *s, const char *text, char *err, size_t errlen)
{
	uint8_t chk[NONCE_LEN + sizeof(CHECK_PLAIN) - 1 + TAG_LEN];
	char fmt[8];

	if (exec_sql(s->db, "PRAGMA journal_mode=WAL") != 0 ||
	    exec_sql(s->db, "PRAGMA synchronous=FULL") != 0 ||
	    exec_sql(s->db, "BEGIN IMMEDIATE") != 0) {
		snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	snprintf(fmt, sizeof(fmt), "%d", STORE_FORMAT);
	if (RAND_bytes(chk, NONCE_LEN) != 1 ||
	    gcm(s->key, true, chk, (const uint8_t *)text, strlen(text),
		(const uint8_t *)CHECK_PLAIN, sizeof(CHECK_PLAIN) - 1, chk + NONCE_LEN) != 0)
		goto fail;
	if (exec_sql(s->db, "CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL)") != 0 ||
	    exec_sql(s->db, "CREATE TABLE keys (name TEXT NOT NULL, version INTEGER NOT NULL, "
			    "attrs BLOB NOT NULL, nonce BLOB NOT NULL, ct BLOB NOT NULL, "
			    "PRIMARY KEY (name, version))") != 0 ||
	    meta_put(s->db, "format", fmt, strlen(fmt)) != 0 ||
	    meta_put(s->db, "sealing", text, strlen(text)) != 0 ||
	    meta_put(s->db, "check", chk, sizeof(chk)) != 0 || exec_sql(s->db, "COMMIT") != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot initialise the store: %s", s->path, sqlite3_errmsg(s->db));
	exec_sql(s->db, "ROLLBACK");
	return -1;
}

int
vstore_open(const char *path, const char *snp_spec, const struct vstore_seal *seal,
	    struct vstore **out, char *err, size_t errlen)
{
	struct vstore *s = NULL;
	struct stat sb;
	char text[SEAL_TEXT_MAX];
	uint8_t *v = NULL, plain[sizeof(CHECK_PLAIN)];
	size_t vlen = 0;
	bool exists, created = false;
	int r = -1;

	vstore_seal_text(seal, text, sizeof(text));
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->key = OPENSSL_secure_malloc(32)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	exists = stat(path, &sb) == 0;
	if (!exists && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!exists) {
		/* Derive first: a store that cannot be sealed is never created. */
		if (derive_store_key(snp_spec, seal, text, s->key, err, errlen) != 0)
			goto out;
	}
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | (exists ? 0 : SQLITE_OPEN_CREATE) |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: cannot open: %s", path,
			 s->db ? sqlite3_errmsg(s->db) : "out of memory");
		goto out;
	}
	created = !exists;
	/* Until the store is known to be ours, never let SQLite write the main file. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_busy_timeout(s->db, 5000);
	if (exists) {
		if (meta_get(s->db, "sealing", &v, &vlen) != 0) {
			snprintf(err, errlen, "%s: not a vhsmd key store (no header)", path);
			goto out;
		}
		if (strcmp((const char *)v, text) != 0) {
			snprintf(err, errlen,
				 "%s: the store is sealed with policy \"%s\" but the configuration "
				 "says \"%s\"; refusing to open it (the file is untouched)",
				 path, (const char *)v, text);
			goto out;
		}
		free(v);
		v = NULL;
		if (derive_store_key(snp_spec, seal, text, s->key, err, errlen) != 0)
			goto out;
	}
	if (exists) {
		if (meta_get(s->db, "check", &v, &vlen) != 0 ||
		    vlen != NONCE_LEN + sizeof(CHECK_PLAIN) - 1 + TAG_LEN) {
			snprintf(err, errlen, "%s: store header has no valid check record", path);
			goto out;
		}
		if (gcm(s->key, false, v, (const uint8_t *)text, strlen(text), v + NONCE_LEN,
			sizeof(CHECK_PLAIN) - 1, plain) != 0 ||
		    CRYPTO_memcmp(plain, CHECK_PLAIN, sizeof(CHECK_PLAIN) - 1) != 0) {
			snprintf(err, errlen,
				 "%s: sealed store cannot be opened: the sealing key this VM derives "
				 "(%s) is not the one that sealed it — the launch measurement or "
				 "another sealed field differs. The file was left untouched.",
				 path, text);
			goto out;
		}
		if (exec_sql(s->db, "PRAGMA journal_mode=WAL") != 0 ||
		    exec_sql(s->db, "PRAGMA synchronous=FULL") != 0) {
			snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(s->db));
			goto out;
		}
	} else {
		if (chmod(path, 0600) != 0 || create_store(s, text, err, errlen) != 0)
			goto out;
	}
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	*out = s;
	s = NULL;
	r = 0;
out:
	free(v);
	OPENSSL_cleanse(plain, sizeof(plain));
	vstore_close(s);
	if (r != 0 && created) {
		char aux[4200];

		unlink(path);
		snprintf(aux, sizeof(aux), "%s-wal", path);
		unlink(aux);
		snprintf(aux, sizeof(aux), "%s-shm", path);
		unlink(aux);
	}
	return r;
}

void
vstore_close(struct vstore *s)
{
	if (s == NULL)
		return;
	sqlite3_close(s->db);
	if (s->key)
		OPENSSL_secure_clear_free(s->key, 32);
	free(s);
}

static void
attrs_encode(const struct vstore_attrs *a, uint8_t out[24])
{
	put_u32le(out, a->type);
	put_u32le(out + 4, a->usages);
	put_u32le(out + 8, a->flags);
	put_u32le(out + 12, a->origin);
	put_u32le(out + 16, a->max_age);
	put_u32le(out + 20, a->retired);
}

static int
attrs_decode(const uint8_t *in, size_t len, struct vstore_attrs *a)
{
	struct rbuf b;

	rbuf_init(&b, in, len);
	if (len != 24 || rbuf_get_u32le(&b, &a->type) != 0 || rbuf_get_u32le(&b, &a->usages) != 0 ||
	    rbuf_get_u32le(&b, &a->flags) != 0 || rbuf_get_u32le(&b, &a->origin) != 0 ||
	    rbuf_get_u32le(&b, &a->max_age) != 0 || rbuf_get_u32le(&b, &a->retired) != 0)
		return -1;
	return 0;
}

/* AAD = RECORD_AAD || u32 len(name) || name || u32 version || attrs(24). */
static size_t
record_aad(const char *name, uint32_t version, const uint8_t attrs[24], uint8_t *out)
{
	size_t nl = strlen(name), off = 0;

	memcpy(out, RECORD_AAD, sizeof(RECORD_AAD) - 1);
	off += sizeof(RECORD_AAD) - 1;
	put_u32le(out + off, (uint32_t)nl);
	off += 4;
	memcpy(out + off, name, nl);
	off += nl;
	put_u32le(out + off, version);
	off += 4;
	memcpy(out + off, attrs, 24);
	return off + 24;
}

#define AAD_MAX (sizeof(RECORD_AAD) + 4 + 256 + 4 + 24)

int
vstore_load(struct vstore *s, vstore_load_cb cb, void *arg, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	uint8_t aad[AAD_MAX], *plain = NULL;
	size_t plen = 0;
	int r = -1, rc;

	if (sqlite3_prepare_v2(s->db, "SELECT name, version, attrs, nonce, ct FROM keys "
				      "ORDER BY name, version",
			       -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		sqlite3_int64 ver = sqlite3_column_int64(st, 1);
		const uint8_t *ab = sqlite3_column_blob(st, 2);
		size_t al = (size_t)sqlite3_column_bytes(st, 2);
		const uint8_t *nonce = sqlite3_column_blob(st, 3);
		size_t nl = (size_t)sqlite3_column_bytes(st, 3);
		const uint8_t *ct = sqlite3_column_blob(st, 4);
		size_t cl = (size_t)sqlite3_column_bytes(st, 4);
		struct vstore_attrs a;
		size_t aadl;

		if (name == NULL || strlen(name) > 255 || ver < 1 || ver > UINT32_MAX ||
		    attrs_decode(ab, al, &a) != 0 || nl != NONCE_LEN || cl < TAG_LEN ||
		    cl - TAG_LEN > MATERIAL_MAX) {
			snprintf(err, errlen, "%s: malformed record", s->path);
			goto out;
		}
		aadl = record_aad(name, (uint32_t)ver, ab, aad);
		plen = cl - TAG_LEN;
		if ((plain = OPENSSL_secure_malloc(plen ? plen : 1)) == NULL) {
			snprintf(err, errlen, "out of secure memory");
			goto out;
		}
		if (gcm(s->key, false, nonce, aad, aadl, ct, plen, plain) != 0) {
			snprintf(err, errlen, "%s: record %s v%lld does not authenticate "
					      "(tampered or sealed under another key)",
				 s->path, name, (long long)ver);
			goto out;
		}
		if (cb(arg, name, (uint32_t)ver, &a, plain, plen) != 0) {
			snprintf(err, errlen, "%s: record %s v%lld: invalid key material", s->path,
				 name, (long long)ver);
			goto out;
		}
		OPENSSL_secure_clear_free(plain, plen ? plen : 1);
		plain = NULL;
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "%s: %s", s->path, sqlite3_errmsg(s->db));
		goto out;
	}
	r = 0;
out:
	if (plain)
		OPENSSL_secure_clear_free(plain, plen ? plen : 1);
	OPENSSL_cleanse(aad, sizeof(aad));
	sqlite3_finalize(st);
	return r;
}

int
vstore_begin(struct vstore *s)
{
	return exec_sql(s->db, "BEGIN IMMEDIATE");
}

int
vstore_commit(struct vstore *s)
{
	if (exec_sql(s->db, "COMMIT") != 0) {
		vstore_rollback(s);
		return -1;
	}
	return 0;
}

void
vstore_rollback(struct vstore *s)
{
	if (!sqlite3_get_autocommit(s->db))
		exec_sql(s->db, "ROLLBACK");
}

int
vstore_put(struct vstore *s, const char *name, uint32_t version, const struct vstore_attrs *a,
	   const uint8_t *material, size_t len)
{
	sqlite3_stmt *st = NULL;
	uint8_t ab[24], nonce[NONCE_LEN], aad[AAD_MAX], *ct = NULL;
	size_t aadl;
	int r = -1;

	if (strlen(name) > 255 || len > MATERIAL_MAX)
		return -1;
	attrs_encode(a, ab);
	aadl = record_aad(name, version, ab, aad);
	if ((ct = malloc(len + TAG_LEN)) == NULL || RAND_bytes(nonce, NONCE_LEN) != 1 ||
	    gcm(s->key, true, nonce, aad, aadl, material, len, ct) != 0)
		goto out;
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO keys(name, version, attrs, nonce, ct) "
				      "VALUES (?1, ?2, ?3, ?4, ?5)",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, version);
	sqlite3_bind_blob(st, 3, ab, sizeof(ab), SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, nonce, sizeof(nonce), SQLITE_STATIC);
	sqlite3_bind_blob(st, 5, ct, (int)(len + TAG_LEN), SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
out:
	sqlite3_finalize(st);
	free(ct); /* ciphertext: not secret */
	return r;
}

int
vstore_delete(struct vstore *s, const char *name)
{
	sqlite3_stmt *st = NULL;
	int r = -1;

	if (sqlite3_prepare_v2(s->db, "DELETE FROM keys WHERE name = ?1", -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

int
vstore_count(struct vstore *s)
{
	sqlite3_stmt *st = NULL;
	int n = -1;

	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM keys", -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return n;
}
