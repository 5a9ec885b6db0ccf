/*
 * store — provd's secret store behind one interface (SQLite now; a
 * PostgreSQL implementation can provide the same table of operations).
 *
 * A secret has a name, a type fixed at creation, a release policy (JSON text,
 * or none) and versions 1, 2, 3, … that only grow: a version number is never
 * given twice for a name, even after the secret was deleted and re-created.
 * Each version has its own vHSM attributes (JSON text) and material; a
 * version can be retired (never released again).  Material is sealed with
 * the master key (seal.h) before it reaches the implementation.
 *
 * Every function returns STORE_OK (0) or a negative STORE_* code.  Safe to
 * call from several threads.
 */
#ifndef NITRIDE_PROVISION_STORE_H
#define NITRIDE_PROVISION_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "provision/seal.h"

#define STORE_NAME_MAX 128u
#define STORE_MATERIAL_MAX 16384u /* bytes of plaintext material */

enum {
	STORE_OK = 0,
	STORE_ERR = -1,       /* I/O, SQL or memory */
	STORE_NOT_FOUND = -2, /* no such secret or version */
	STORE_RETIRED = -3,   /* the version exists but is retired */
	STORE_CONFLICT = -4,  /* e.g. a new version of another type */
	STORE_CORRUPT = -5    /* material does not decrypt (wrong key, edited row) */
};

typedef struct store store;

/* One version with its material in plaintext (secure heap). */
typedef struct store_item {
	char name[STORE_NAME_MAX + 1];
	char type[16];
	unsigned version;
	char *attrs;       /* JSON object text, malloc'ed */
	uint8_t *material; /* secure heap */
	size_t material_len;
} store_item;

/* Wipe and free; NULL-safe. */
void store_item_free(store_item *it);

/* Text for a STORE_* code. */
const char *store_strerror(int r);

/* Open (creating when needed) the SQLite database at path, mode 0600, WAL.
 * `key` is borrowed and must outlive the store. */
__attribute__((warn_unused_result)) int store_sqlite_open(const char *path, const seal_key *key,
							  store **out, char *err, size_t errlen);
/* Close; NULL-safe. */
void store_close(store *s);

/* Add a version (creating the secret when absent); *version gets its number.
 * STORE_CONFLICT when the secret exists with another type. */
__attribute__((warn_unused_result)) int store_put(store *s, const char *name, const char *type,
						  const char *attrs_json, const uint8_t *material,
						  size_t len, unsigned *version);
/* Version `version` of name (0: the newest not retired).  STORE_RETIRED for
 * a retired version asked by number.  *out: free with store_item_free. */
__attribute__((warn_unused_result)) int store_get(store *s, const char *name, unsigned version,
						  store_item **out);
/* Mark a version retired (idempotent). */
__attribute__((warn_unused_result)) int store_retire(store *s, const char *name,
						     unsigned version);
/* Delete the secret, its versions and policy (numbering is remembered). */
__attribute__((warn_unused_result)) int store_delete(store *s, const char *name);
/* [{name, type, latest, versions, retired, has_policy, created}] — never values. */
__attribute__((warn_unused_result)) int store_list(store *s, json_t **out);
/* {name, type, policy?, versions: [{version, retired, created, attributes}]} */
__attribute__((warn_unused_result)) int store_versions(store *s, const char *name, json_t **out);
/* Set (text; NULL clears) / get (*out malloc'ed, NULL when none) the policy. */
__attribute__((warn_unused_result)) int store_set_policy(store *s, const char *name,
							 const char *policy_json);
__attribute__((warn_unused_result)) int store_get_policy(store *s, const char *name, char **out);

/* The table an implementation fills in. */
struct store_ops {
	int (*put)(store *, const char *, const char *, const char *, const uint8_t *, size_t,
		   unsigned *);
	int (*get)(store *, const char *, unsigned, store_item **);
	int (*retire)(store *, const char *, unsigned);
	int (*del)(store *, const char *);
	int (*list)(store *, json_t **);
	int (*versions)(store *, const char *, json_t **);
	int (*set_policy)(store *, const char *, const char *);
	int (*get_policy)(store *, const char *, char **);
	void (*close)(store *);
};

struct store {
	const struct store_ops *ops;
};

#endif
