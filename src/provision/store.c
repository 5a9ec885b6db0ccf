/*
 * Store dispatch (contract in store.h).
 */
#include "provision/store.h"

#include <stdlib.h>

#include <openssl/crypto.h>

void
store_item_free(store_item *it)
{
	if (it == NULL)
		return;
	if (it->material != NULL)
		OPENSSL_secure_clear_free(it->material, it->material_len);
	free(it->attrs);
	free(it);
}

const char *
store_strerror(int r)
{
	switch (r) {
	case STORE_OK: return "ok";
	case STORE_NOT_FOUND: return "no such secret or version";
	case STORE_RETIRED: return "version retired";
	case STORE_CONFLICT: return "conflict";
	case STORE_CORRUPT: return "material does not decrypt (wrong master key or edited row)";
	default: return "store error";
	}
}

void
store_close(store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

int
store_put(store *s, const char *name, const char *type, const char *attrs_json,
	  const uint8_t *material, size_t len, unsigned *version)
{
	return s->ops->put(s, name, type, attrs_json, material, len, version);
}

int
store_get(store *s, const char *name, unsigned version, store_item **out)
{
	return s->ops->get(s, name, version, out);
}

int
store_retire(store *s, const char *name, unsigned version)
{
	return s->ops->retire(s, name, version);
}

int
store_delete(store *s, const char *name)
{
	return s->ops->del(s, name);
}

int
store_list(store *s, json_t **out)
{
	return s->ops->list(s, out);
}

int
store_versions(store *s, const char *name, json_t **out)
{
	return s->ops->versions(s, name, out);
}

int
store_set_policy(store *s, const char *name, const char *policy_json)
{
	return s->ops->set_policy(s, name, policy_json);
}

int
store_get_policy(store *s, const char *name, char **out)
{
	return s->ops->get_policy(s, name, out);
}
