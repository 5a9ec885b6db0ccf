/*
 * Heap blocks wiped when released (contract in wipemem.h).
 */
#include "common/wipemem.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

void *
wipemem_malloc(size_t n)
{
	return malloc(n);
}

void
wipemem_wipe(void *p)
{
	if (p != NULL)
		explicit_bzero(p, malloc_usable_size(p));
}

void
wipemem_free(void *p)
{
	if (p == NULL)
		return;
	wipemem_wipe(p);
	free(p);
}

void *
wipemem_realloc(void *p, size_t n)
{
	void *r;
	size_t old;

	if (p == NULL)
		return malloc(n);
	if ((r = malloc(n)) == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(r, p, old < n ? old : n);
	wipemem_free(p);
	return r;
}
