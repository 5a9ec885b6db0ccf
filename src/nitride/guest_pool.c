/*
 * Kept SNP guest handles (contract in guest_pool.h).
 */
#include "nitride/guest_pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct guest_pool {
	pthread_mutex_t lock;
	char *spec;                          /* NULL: snp_guest_open's default */
	snp_guest *idle[GUEST_POOL_MAX];
	size_t n;
};

int
guest_pool_new(const char *spec, guest_pool **out)
{
	guest_pool *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (p == NULL)
		return -1;
	if ((spec != NULL && (p->spec = strdup(spec)) == NULL) ||
	    pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p->spec);
		free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void
guest_pool_free(guest_pool *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++)
		snp_guest_close(p->idle[i]);
	pthread_mutex_destroy(&p->lock);
	free(p->spec);
	free(p);
}

static snp_guest *
take(guest_pool *p)
{
	snp_guest *g = NULL;

	pthread_mutex_lock(&p->lock);
	if (p->n > 0)
		g = p->idle[--p->n];
	pthread_mutex_unlock(&p->lock);
	return g;
}

static void
give(guest_pool *p, snp_guest *g)
{
	pthread_mutex_lock(&p->lock);
	if (p->n < GUEST_POOL_MAX) {
		p->idle[p->n++] = g;
		g = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	snp_guest_close(g);
}

int
guest_pool_report(guest_pool *p, const uint8_t report_data[SNP_REPORT_DATA_LEN], uint32_t vmpl,
		  uint8_t **report, size_t *report_len, uint8_t **certs, size_t *certs_len,
		  unsigned *opened, snp_error *err)
{
	snp_guest *g;
	bool kept;
	int r = SNP_E_ARGUMENT, attempt;

	if (opened != NULL)
		*opened = 0;
	if (p == NULL) {
		if (err != NULL) {
			err->status = SNP_E_ARGUMENT;
			(void)snprintf(err->detail, sizeof(err->detail), "guest_pool_report: no pool");
		}
		return SNP_E_ARGUMENT;
	}
	for (attempt = 0; attempt < 2; attempt++) {
		kept = (g = take(p)) != NULL;
		if (!kept) {
			if ((r = snp_guest_open(p->spec, &g, err)) != SNP_OK)
				return r;
			if (opened != NULL)
				(*opened)++;
		}
		r = snp_guest_get_report(g, report_data, vmpl, report, report_len, certs, certs_len,
					 err);
		if (r == SNP_OK) {
			give(p, g);
			return SNP_OK;
		}
		snp_guest_close(g);
		if (!kept)
			break; /* a fresh handle's error is the answer */
	}
	return r;
}
