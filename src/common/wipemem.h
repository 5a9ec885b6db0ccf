/*
 * Heap blocks wiped when they are released, for libraries that keep secrets
 * in memory they allocate themselves (jansson strings of a release payload or
 * of an admin request, cjose's key buffers).  Plain malloc blocks, so that
 * free() may release what such a library returns; the size wiped is glibc's
 * malloc_usable_size(), which covers every byte the caller could have used.
 */
#ifndef NITRIDE_COMMON_WIPEMEM_H
#define NITRIDE_COMMON_WIPEMEM_H

#include <stddef.h>

void *wipemem_malloc(size_t n);
/* Zeroes every usable byte of a malloc block, without freeing it. */
void wipemem_wipe(void *p); /* NULL-safe */
void wipemem_free(void *p); /* NULL-safe */
/* Moves to a new block and wipes the old one (realloc could leave a copy). */
void *wipemem_realloc(void *p, size_t n);

#endif
