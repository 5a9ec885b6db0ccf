/*
 * Unit tests for src/common/wipemem.c: blocks wiped to their usable size,
 * realloc moving the content.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <string.h>

#include "common/wipemem.h"

static void
test_wipe_whole_block(void **state)
{
	unsigned char *p = wipemem_malloc(37);
	size_t n, i;

	(void)state;
	assert_non_null(p);
	n = malloc_usable_size(p);
	assert_true(n >= 37);
	memset(p, 0xa5, n); /* the caller may use every usable byte */
	wipemem_wipe(p);
	for (i = 0; i < n; i++)
		assert_int_equal(p[i], 0);
	wipemem_free(p);
	wipemem_wipe(NULL);
	wipemem_free(NULL);
}

static void
test_realloc_moves(void **state)
{
	char *p = wipemem_realloc(NULL, 8), *q;

	(void)state;
	assert_non_null(p);
	memcpy(p, "secret!", 8);
	q = wipemem_realloc(p, 4096); /* p is wiped and freed */
	assert_non_null(q);
	assert_string_equal(q, "secret!");
	p = wipemem_realloc(q, 4);
	assert_non_null(p);
	assert_memory_equal(p, "secr", 4);
	wipemem_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wipe_whole_block),
		cmocka_unit_test(test_realloc_moves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
