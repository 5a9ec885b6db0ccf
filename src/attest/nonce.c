/*
 * Nonce store: open addressing with linear probing over a power-of-two table
 * at most half full; deletion by backward shift (no tombstones).  Nonces are
 * uniformly random, so their first bytes are the hash.
 */
#include "attest/nonce.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

struct slot {
	bool used;
	bool consumed;
	time_t expires;
	unsigned char n[NONCE_BYTES];
};

struct nonce_store {
	pthread_mutex_t lock;
	struct slot *slots;
	size_t mask; /* table size - 1 */
	size_t count, cap;
	unsigned ttl;
	time_t last_sweep;
};

const char *
nonce_status_name(int status)
{
	switch (status) {
	case NONCE_OK: return "ok";
	case NONCE_MALFORMED: return "malformed";
	case NONCE_UNKNOWN: return "unknown";
	case NONCE_REUSED: return "reused";
	case NONCE_EXPIRED: return "expired";
	case NONCE_FULL: return "full";
	case NONCE_NOMEM: return "nomem";
	case NONCE_RANDOM: return "random";
	}
	return "invalid";
}

int
nonce_store_new(size_t cap, unsigned ttl, nonce_store **out)
{
	nonce_store *s = NULL;
	size_t size = 16;

	if (cap == 0 || ttl == 0 || cap > (SIZE_MAX / sizeof(struct slot)) / 4)
		return NONCE_NOMEM;
	while (size < cap * 2)
		size *= 2;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NONCE_NOMEM;
	if ((s->slots = calloc(size, sizeof(*s->slots))) == NULL ||
	    pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s->slots);
		free(s);
		return NONCE_NOMEM;
	}
	s->mask = size - 1;
	s->cap = cap;
	s->ttl = ttl;
	*out = s;
	return NONCE_OK;
}

void
nonce_store_free(nonce_store *s)
{
	if (s == NULL)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	free(s);
}

static size_t
home(const nonce_store *s, const unsigned char n[NONCE_BYTES])
{
	uint64_t h;

	memcpy(&h, n, sizeof(h));
	return (size_t)h & s->mask;
}

/* Remove slot i, shifting later members of the probe run back. */
static void
remove_at(nonce_store *s, size_t i)
{
	size_t j = i, k;

	s->slots[i].used = false;
	s->count--;
	for (;;) {
		j = (j + 1) & s->mask;
		if (!s->slots[j].used)
			break;
		k = home(s, s->slots[j].n);
		/* Move j into the hole i if k is not cyclically in (i, j]. */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		s->slots[i] = s->slots[j];
		s->slots[j].used = false;
		i = j;
	}
}

static void
sweep(nonce_store *s, time_t now)
{
	size_t i;
	bool again = true;

	/* Backward shifts may move a not-yet-visited expired entry before i: loop. */
	while (again) {
		again = false;
		for (i = 0; i <= s->mask; i++) {
			if (s->slots[i].used && s->slots[i].expires <= now) {
				remove_at(s, i);
				again = true;
			}
		}
	}
	s->last_sweep = now;
}

int
nonce_store_issue(nonce_store *s, time_t now, char text[NONCE_TEXT_LEN + 1], time_t *expires)
{
	unsigned char n[NONCE_BYTES];
	size_t i;
	int r = NONCE_OK;

	if (RAND_bytes(n, sizeof(n)) != 1)
		return NONCE_RANDOM;
	if (pthread_mutex_lock(&s->lock) != 0)
		return NONCE_NOMEM;
	/* Sweeping is O(table): when full, at most once a second. */
	if (s->count >= s->cap && s->last_sweep != now)
		sweep(s, now);
	if (s->count >= s->cap) {
		r = NONCE_FULL;
		goto out;
	}
	for (i = home(s, n); s->slots[i].used; i = (i + 1) & s->mask)
		;
	s->slots[i].used = true;
	s->slots[i].consumed = false;
	s->slots[i].expires = now + (time_t)s->ttl;
	memcpy(s->slots[i].n, n, sizeof(n));
	s->count++;
	b64url_encode(n, sizeof(n), text);
	*expires = now + (time_t)s->ttl;
out:
	(void)pthread_mutex_unlock(&s->lock);
	OPENSSL_cleanse(n, sizeof(n));
	return r;
}

int
nonce_store_consume(nonce_store *s, const char *text, time_t now)
{
	unsigned char n[NONCE_BYTES];
	size_t i, len = text ? strlen(text) : 0;
	int r = NONCE_UNKNOWN;

	if (len != NONCE_TEXT_LEN || b64url_decode(text, len, n, sizeof(n)) != (long)NONCE_BYTES)
		return NONCE_MALFORMED;
	if (pthread_mutex_lock(&s->lock) != 0)
		return NONCE_NOMEM;
	for (i = home(s, n); s->slots[i].used; i = (i + 1) & s->mask) {
		if (CRYPTO_memcmp(s->slots[i].n, n, sizeof(n)) != 0)
			continue;
		if (s->slots[i].consumed) {
			r = NONCE_REUSED;
		} else if (now >= s->slots[i].expires) {
			r = NONCE_EXPIRED;
			remove_at(s, i);
		} else {
			s->slots[i].consumed = true;
			r = NONCE_OK;
		}
		break;
	}
	(void)pthread_mutex_unlock(&s->lock);
	return r;
}

size_t
nonce_store_count(nonce_store *s)
{
	size_t n;

	(void)pthread_mutex_lock(&s->lock);
	n = s->count;
	(void)pthread_mutex_unlock(&s->lock);
	return n;
}
