/*
 * The SQLite store (contract in store.h).  One connection guarded by a mutex;
 * every change runs in a transaction (BEGIN IMMEDIATE); journal in WAL mode.
 * Each statement is prepared once, when the store is opened, and kept with
 * the connection: preparing it on every call was about 7 % of provd's CPU
 * in the Case B benchmark (docs/bench.md).  A kept statement is used only
 * under the lock and given back reset, its bindings cleared.
 * Material is sealed (seal.h) with AAD = "nitride-provd-v1" NUL name NUL
 * version (decimal) NUL type, so a row moved onto another name, version or
 * type does not decrypt.
 */
#include "provision/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <sqlite3.h>

#include "common/timefmt.h"

/* The statements, prepared once per store (sq_text). */
enum sq_query {
	Q_SECRET_TYPE,
	Q_SECRET_INSERT,
	Q_COUNTER_GET,
	Q_COUNTER_SET,
	Q_VERSION_INSERT,
	Q_GET_LATEST,
	Q_GET_VERSION,
	Q_RETIRE,
	Q_SECRET_DELETE,
	Q_VERSIONS_DELETE,
	Q_LIST,
	Q_SECRET_INFO,
	Q_VERSIONS_LIST,
	Q_POLICY_SET,
	Q_POLICY_GET,
	Q_COUNT
};

static const char *const sq_text[Q_COUNT] = {
	[Q_SECRET_TYPE] = "SELECT type FROM secrets WHERE name = ?1",
	[Q_SECRET_INSERT] = "INSERT INTO secrets (name, type, created) VALUES (?1, ?2, ?3)",
	[Q_COUNTER_GET] = "SELECT last_version FROM counters WHERE name = ?1",
	[Q_COUNTER_SET] = "INSERT INTO counters (name, last_version) VALUES (?1, ?2) "
			   "ON CONFLICT(name) DO UPDATE SET last_version = excluded.last_version",
	[Q_VERSION_INSERT] = "INSERT INTO versions (name, version, attrs, material, created) "
			      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[Q_GET_LATEST] = "SELECT v.version, s.type, v.attrs, v.material, v.retired "
			  "FROM versions v JOIN secrets s ON s.name = v.name "
			  "WHERE v.name = ?1 AND v.retired = 0 "
			  "ORDER BY v.version DESC LIMIT 1",
	[Q_GET_VERSION] = "SELECT v.version, s.type, v.attrs, v.material, v.retired "
			   "FROM versions v JOIN secrets s ON s.name = v.name "
			   "WHERE v.name = ?1 AND v.version = ?2",
	[Q_RETIRE] = "UPDATE versions SET retired = 1 WHERE name = ?1 AND version = ?2",
	[Q_SECRET_DELETE] = "DELETE FROM secrets WHERE name = ?1",
	[Q_VERSIONS_DELETE] = "DELETE FROM versions WHERE name = ?1",
	[Q_LIST] = "SELECT s.name, s.type, s.created, s.policy IS NOT NULL,"
		   " (SELECT MAX(version) FROM versions v WHERE v.name = s.name AND v.retired = 0),"
		   " (SELECT COUNT(*) FROM versions v WHERE v.name = s.name),"
		   " (SELECT COUNT(*) FROM versions v WHERE v.name = s.name AND v.retired = 1) "
		   "FROM secrets s ORDER BY s.name",
	[Q_SECRET_INFO] = "SELECT type, created, policy FROM secrets WHERE name = ?1",
	[Q_VERSIONS_LIST] = "SELECT version, retired, created, attrs FROM versions "
			     "WHERE name = ?1 ORDER BY version",
	[Q_POLICY_SET] = "UPDATE secrets SET policy = ?2 WHERE name = ?1",
	[Q_POLICY_GET] = "SELECT policy FROM secrets WHERE name = ?1",
};

typedef struct sq_store {
	store base; /* first: a store * is a sq_store * */
	sqlite3 *db;
	const seal_key *key;
	pthread_mutex_t lock;   /* the connection and the statements */
	sqlite3_stmt *q[Q_COUNT];
} sq_store;

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS secrets ("
	" name TEXT PRIMARY KEY, type TEXT NOT NULL, policy TEXT, created TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS versions ("
	" name TEXT NOT NULL, version INTEGER NOT NULL, attrs TEXT NOT NULL,"
	" material BLOB NOT NULL, retired INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL,"
	" PRIMARY KEY (name, version));"
	"CREATE TABLE IF NOT EXISTS counters ("
	" name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);";

/* The AAD of a row; returns its length or 0 when it does not fit. */
static size_t
row_aad(char *buf, size_t cap, const char *name, unsigned version, const char *type)
{
	int n = snprintf(buf, cap, "nitride-provd-v1%c%s%c%u%c%s", 0, name, 0, version, 0, type);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int
exec(sq_store *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : STORE_ERR;
}

/* Give a kept statement back: reset (which ends its read, if any) and its
 * bindings cleared (no pointer to the caller's buffers stays).  NULL-safe. */
static void
done(sqlite3_stmt *st)
{
	if (st == NULL)
		return;
	(void)sqlite3_reset(st);
	(void)sqlite3_clear_bindings(st);
}

static void
now_text(char out[RFC3339_LEN])
{
	rfc3339_format(time(NULL), out);
}

static int
sq_put(store *bs, const char *name, const char *type, const char *attrs, const uint8_t *mat,
       size_t len, unsigned *version)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	char aad[STORE_NAME_MAX + 64], created[RFC3339_LEN];
	uint8_t *ct = NULL;
	size_t ctlen = 0, aadlen;
	sqlite3_int64 last = 0;
	unsigned v;
	int r = STORE_ERR, rc, in_tx = 0;

	(void)pthread_mutex_lock(&s->lock);
	if (exec(s, "BEGIN IMMEDIATE") != 0)
		goto out;
	in_tx = 1;
	/* Same type as the existing secret, if any. */
	if ((st = s->q[Q_SECRET_TYPE]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (strcmp((const char *)sqlite3_column_text(st, 0), type) != 0) {
			r = STORE_CONFLICT;
			goto out;
		}
	} else if (rc != SQLITE_DONE)
		goto out;
	done(st);
	st = NULL;
	now_text(created);
	if (rc == SQLITE_DONE) {
		if ((st = s->q[Q_SECRET_INSERT]) == NULL ||
		    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(st, 3, created, -1, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_DONE)
			goto out;
		done(st);
		st = NULL;
	}
	/* The next number: one past the largest ever given. */
	if ((st = s->q[Q_COUNTER_GET]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		last = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		goto out;
	done(st);
	st = NULL;
	if (last < 0 || last >= UINT32_MAX)
		goto out;
	v = (unsigned)last + 1;
	if ((aadlen = row_aad(aad, sizeof(aad), name, v, type)) == 0 ||
	    seal_encrypt(s->key, (const uint8_t *)aad, aadlen, mat, len, &ct, &ctlen) != 0)
		goto out;
	if ((st = s->q[Q_COUNTER_SET]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, v) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		goto out;
	done(st);
	st = NULL;
	if ((st = s->q[Q_VERSION_INSERT]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, v) != SQLITE_OK ||
	    sqlite3_bind_text(st, 3, attrs, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 4, ct, (int)ctlen, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(st, 5, created, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		goto out;
	done(st);
	st = NULL;
	if (exec(s, "COMMIT") != 0)
		goto out;
	in_tx = 0;
	*version = v;
	r = STORE_OK;
out:
	done(st);
	if (in_tx)
		(void)exec(s, "ROLLBACK");
	(void)pthread_mutex_unlock(&s->lock);
	free(ct);
	return r;
}

static int
sq_get(store *bs, const char *name, unsigned version, store_item **out)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	store_item *it = NULL;
	const char *type, *attrs;
	const void *blob;
	char aad[STORE_NAME_MAX + 64];
	size_t aadlen;
	int r = STORE_ERR, rc, blen;

	if (strlen(name) > STORE_NAME_MAX)
		return STORE_NOT_FOUND;
	(void)pthread_mutex_lock(&s->lock);
	if (version == 0)
		st = s->q[Q_GET_LATEST];
	else
		st = s->q[Q_GET_VERSION];
	if (sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (version != 0 && sqlite3_bind_int64(st, 2, version) != SQLITE_OK))
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = STORE_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto out;
	if (sqlite3_column_int(st, 4) != 0) {
		r = STORE_RETIRED;
		goto out;
	}
	type = (const char *)sqlite3_column_text(st, 1);
	attrs = (const char *)sqlite3_column_text(st, 2);
	blob = sqlite3_column_blob(st, 3);
	blen = sqlite3_column_bytes(st, 3);
	if (type == NULL || attrs == NULL || blob == NULL || blen < 0 ||
	    strlen(type) >= sizeof(it->type) || (it = calloc(1, sizeof(*it))) == NULL ||
	    (it->attrs = strdup(attrs)) == NULL)
		goto out;
	memcpy(it->name, name, strlen(name) + 1);
	memcpy(it->type, type, strlen(type) + 1);
	it->version = (unsigned)sqlite3_column_int64(st, 0);
	if ((aadlen = row_aad(aad, sizeof(aad), name, it->version, type)) == 0)
		goto out;
	if (seal_decrypt(s->key, (const uint8_t *)aad, aadlen, blob, (size_t)blen, &it->material,
			 &it->material_len) != 0) {
		r = STORE_CORRUPT;
		goto out;
	}
	*out = it;
	it = NULL;
	r = STORE_OK;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	store_item_free(it);
	return r;
}

static int
sq_retire(store *bs, const char *name, unsigned version)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	int r = STORE_ERR;

	(void)pthread_mutex_lock(&s->lock);
	if ((st = s->q[Q_RETIRE]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, version) != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		goto out;
	r = sqlite3_changes(s->db) == 1 ? STORE_OK : STORE_NOT_FOUND;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	return r;
}

static int
sq_delete(store *bs, const char *name)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	int r = STORE_ERR, in_tx = 0, found;

	(void)pthread_mutex_lock(&s->lock);
	if (exec(s, "BEGIN IMMEDIATE") != 0)
		goto out;
	in_tx = 1;
	if ((st = s->q[Q_SECRET_DELETE]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		goto out;
	found = sqlite3_changes(s->db);
	done(st);
	st = NULL;
	if ((st = s->q[Q_VERSIONS_DELETE]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE)
		goto out;
	if (exec(s, "COMMIT") != 0)
		goto out;
	in_tx = 0;
	r = found ? STORE_OK : STORE_NOT_FOUND;
out:
	done(st);
	if (in_tx)
		(void)exec(s, "ROLLBACK");
	(void)pthread_mutex_unlock(&s->lock);
	return r;
}

static int
sq_list(store *bs, json_t **out)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array(), *o;
	int r = STORE_ERR, rc;

	(void)pthread_mutex_lock(&s->lock);
	if (arr == NULL ||
	    (st = s->q[Q_LIST]) == NULL)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I}", "name",
			      (const char *)sqlite3_column_text(st, 0), "type",
			      (const char *)sqlite3_column_text(st, 1), "created",
			      (const char *)sqlite3_column_text(st, 2), "has_policy",
			      sqlite3_column_int(st, 3), "versions",
			      (json_int_t)sqlite3_column_int64(st, 5), "retired",
			      (json_int_t)sqlite3_column_int64(st, 6));
		if (o == NULL)
			goto out;
		(void)json_object_set_new(o, "latest",
					  sqlite3_column_type(st, 4) == SQLITE_NULL
						  ? json_null()
						  : json_integer(sqlite3_column_int64(st, 4)));
		if (json_array_append_new(arr, o) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		goto out;
	*out = arr;
	arr = NULL;
	r = STORE_OK;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	json_decref(arr);
	return r;
}

static int
sq_versions(store *bs, const char *name, json_t **out)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	json_t *res = NULL, *arr = NULL, *attrs, *o;
	int r = STORE_ERR, rc;

	(void)pthread_mutex_lock(&s->lock);
	if ((st = s->q[Q_SECRET_INFO]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = STORE_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW ||
	    (res = json_pack("{s:s, s:s, s:s, s:b}", "name", name, "type",
			     (const char *)sqlite3_column_text(st, 0), "created",
			     (const char *)sqlite3_column_text(st, 1), "has_policy",
			     sqlite3_column_type(st, 2) != SQLITE_NULL)) == NULL ||
	    (arr = json_array()) == NULL)
		goto out;
	done(st);
	st = NULL;
	if ((st = s->q[Q_VERSIONS_LIST]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		attrs = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
		o = json_pack("{s:I, s:b, s:s, s:o*}", "version",
			      (json_int_t)sqlite3_column_int64(st, 0), "retired",
			      sqlite3_column_int(st, 1), "created",
			      (const char *)sqlite3_column_text(st, 2), "attributes", attrs);
		if (o == NULL || json_array_append_new(arr, o) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		goto out;
	(void)json_object_set_new(res, "versions", arr);
	arr = NULL;
	*out = res;
	res = NULL;
	r = STORE_OK;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	json_decref(arr);
	json_decref(res);
	return r;
}

static int
sq_set_policy(store *bs, const char *name, const char *policy)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	int r = STORE_ERR, rc;

	(void)pthread_mutex_lock(&s->lock);
	if ((st = s->q[Q_POLICY_SET]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = policy ? sqlite3_bind_text(st, 2, policy, -1, SQLITE_STATIC) : sqlite3_bind_null(st, 2);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_DONE)
		goto out;
	r = sqlite3_changes(s->db) == 1 ? STORE_OK : STORE_NOT_FOUND;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	return r;
}

static int
sq_get_policy(store *bs, const char *name, char **out)
{
	sq_store *s = (sq_store *)bs;
	sqlite3_stmt *st = NULL;
	const char *p;
	char *copy = NULL;
	int r = STORE_ERR, rc;

	(void)pthread_mutex_lock(&s->lock);
	if ((st = s->q[Q_POLICY_GET]) == NULL ||
	    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC) != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = STORE_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW)
		goto out;
	p = (const char *)sqlite3_column_text(st, 0);
	if (p != NULL && (copy = strdup(p)) == NULL)
		goto out;
	*out = copy;
	r = STORE_OK;
out:
	done(st);
	(void)pthread_mutex_unlock(&s->lock);
	return r;
}

static void
sq_close(store *bs)
{
	sq_store *s = (sq_store *)bs;
	size_t i;

	for (i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->q[i]);
	(void)sqlite3_close(s->db);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct store_ops sq_ops = {
	.put = sq_put,
	.get = sq_get,
	.retire = sq_retire,
	.del = sq_delete,
	.list = sq_list,
	.versions = sq_versions,
	.set_policy = sq_set_policy,
	.get_policy = sq_get_policy,
	.close = sq_close,
};

int
store_sqlite_open(const char *path, const seal_key *key, store **out, char *err, size_t errlen)
{
	sq_store *s = NULL;
	size_t i;
	int fd;

	/* Create the file 0600 before SQLite does (it would use the umask). */
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0) {
		(void)snprintf(err, errlen, "database %s: %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->base.ops = &sq_ops;
	s->key = key;
	(void)pthread_mutex_init(&s->lock, NULL);
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) !=
		    SQLITE_OK ||
	    sqlite3_busy_timeout(s->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
		(void)snprintf(err, errlen, "database %s: %s", path,
			       s->db ? sqlite3_errmsg(s->db) : "cannot open");
		sq_close(&s->base);
		return -1;
	}
	for (i = 0; i < Q_COUNT; i++)
		if (sqlite3_prepare_v3(s->db, sq_text[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i],
				       NULL) != SQLITE_OK) {
			(void)snprintf(err, errlen, "database %s: %s", path, sqlite3_errmsg(s->db));
			sq_close(&s->base);
			return -1;
		}
	*out = &s->base;
	return 0;
}
