/*
 * Release policies (contract in policy.h).
 */
#include "provision/policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* jansson's iterators take a non-const object; they do not modify it. */
static json_t *
unconst(const json_t *j)
{
	union {
		const json_t *c;
		json_t *m;
	} u = { .c = j };

	return u.m;
}

static bool
is_hex(const char *s, size_t n)
{
	size_t i;

	if (s == NULL || strlen(s) != n)
		return false;
	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static const char *const products[] = { "milan", "genoa", "turin", NULL };
static const char *const signing_keys[] = { "vcek", "vlek", NULL };
static const char *const statuses[] = { "affirming", "warning", "contraindicated", "none", NULL };
static const char *const tcb_parts[] = { "bootloader", "tee", "snp", "microcode", "fmc", NULL };

static bool
in_list(const char *s, const char *const *l)
{
	for (; *l != NULL; l++)
		if (strcmp(s, *l) == 0)
			return true;
	return false;
}

/* A non-empty array of strings, each accepted by hexlen (>0) or the list. */
static int
check_set(const json_t *v, const char *path, size_t hexlen, const char *const *names, char *err,
	  size_t errlen)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 1024) {
		(void)snprintf(err, errlen, "%s: expected a non-empty array (at most 1024)", path);
		return -1;
	}
	json_array_foreach(v, i, e) {
		const char *s = json_string_value(e);

		if (hexlen > 0 && !is_hex(s, hexlen)) {
			(void)snprintf(err, errlen, "%s[%zu]: expected %zu hex digits", path, i, hexlen);
			return -1;
		}
		if (names != NULL && (s == NULL || !in_list(s, names))) {
			(void)snprintf(err, errlen, "%s[%zu]: unknown value", path, i);
			return -1;
		}
	}
	return 0;
}

static int
check_expr(const json_t *e, const char *path, int depth, char *err, size_t errlen)
{
	const char *k;
	json_t *v, *sub;
	char p[256];
	size_t i;

	if (depth > POLICY_MAX_DEPTH) {
		(void)snprintf(err, errlen, "%s: nested deeper than %d", path, POLICY_MAX_DEPTH);
		return -1;
	}
	if (!json_is_object(e) || json_object_size(e) == 0) {
		(void)snprintf(err, errlen, "%s: expected a non-empty object", path);
		return -1;
	}
	json_object_foreach(unconst(e), k, v) {
		(void)snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", k);
		if (strcmp(k, "all") == 0 || strcmp(k, "any") == 0) {
			if (!json_is_array(v) || json_array_size(v) == 0) {
				(void)snprintf(err, errlen, "%s: expected a non-empty array", p);
				return -1;
			}
			json_array_foreach(v, i, sub) {
				char q[300];

				(void)snprintf(q, sizeof(q), "%s[%zu]", p, i);
				if (check_expr(sub, q, depth + 1, err, errlen) != 0)
					return -1;
			}
		} else if (strcmp(k, "measurement") == 0) {
			if (check_set(v, p, 96, NULL, err, errlen) != 0)
				return -1;
		} else if (strcmp(k, "host_data") == 0) {
			if (check_set(v, p, 64, NULL, err, errlen) != 0)
				return -1;
		} else if (strcmp(k, "product") == 0) {
			if (check_set(v, p, 0, products, err, errlen) != 0)
				return -1;
		} else if (strcmp(k, "signing_key") == 0) {
			if (check_set(v, p, 0, signing_keys, err, errlen) != 0)
				return -1;
		} else if (strcmp(k, "ear_status") == 0) {
			if (check_set(v, p, 0, statuses, err, errlen) != 0)
				return -1;
		} else if (strcmp(k, "min_tcb") == 0) {
			const char *c;
			json_t *n;

			if (!json_is_object(v) || json_object_size(v) == 0) {
				(void)snprintf(err, errlen, "%s: expected an object of components", p);
				return -1;
			}
			json_object_foreach(v, c, n) {
				if (!in_list(c, tcb_parts) || !json_is_integer(n) ||
				    json_integer_value(n) < 0 || json_integer_value(n) > 255) {
					(void)snprintf(err, errlen,
						       "%s.%s: expected bootloader, tee, snp, microcode "
						       "or fmc with an integer 0..255",
						       p, c);
					return -1;
				}
			}
		} else {
			(void)snprintf(err, errlen, "%s: unknown condition", p);
			return -1;
		}
	}
	return 0;
}

int
release_policy_check(const json_t *policy, char *err, size_t errlen)
{
	return check_expr(policy, "", 0, err, errlen);
}

static void
fail(json_t *failed, const char *path, const char *expected, const char *actual)
{
	(void)json_array_append_new(failed, json_pack("{s:s, s:s, s:s}", "condition", path,
						      "expected", expected, "actual", actual));
}

static bool
set_has(const json_t *set, const char *s)
{
	size_t i;
	json_t *e;

	if (s == NULL)
		return false;
	json_array_foreach(set, i, e)
		if (strcasecmp(json_string_value(e), s) == 0)
			return true;
	return false;
}

static bool
eval_set(const json_t *set, const char *actual, const char *path, json_t *failed)
{
	char exp[160];

	if (set_has(set, actual))
		return true;
	if (json_array_size(set) == 1)
		(void)snprintf(exp, sizeof(exp), "%s", json_string_value(json_array_get(set, 0)));
	else
		(void)snprintf(exp, sizeof(exp), "one of %zu allowed values", json_array_size(set));
	fail(failed, path, exp, actual ? actual : "(absent)");
	return false;
}

static bool eval_expr(const json_t *e, const json_t *cpu0, const char *path, json_t *failed);

static bool
eval_expr(const json_t *e, const json_t *cpu0, const char *path, json_t *failed)
{
	const json_t *ev = json_object_get(cpu0, "ear.veraison.annotated-evidence");
	const char *k;
	json_t *v, *sub;
	char p[256];
	size_t i;
	bool ok = true;

	json_object_foreach(unconst(e), k, v) {
		(void)snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", k);
		if (strcmp(k, "all") == 0) {
			json_array_foreach(v, i, sub) {
				char q[300];

				(void)snprintf(q, sizeof(q), "%s[%zu]", p, i);
				if (!eval_expr(sub, cpu0, q, failed))
					ok = false;
			}
		} else if (strcmp(k, "any") == 0) {
			json_t *tmp = json_array();
			bool one = false;

			json_array_foreach(v, i, sub) {
				char q[300];

				(void)snprintf(q, sizeof(q), "%s[%zu]", p, i);
				if (eval_expr(sub, cpu0, q, tmp))
					one = true;
			}
			if (!one) {
				ok = false;
				(void)json_array_extend(failed, tmp);
			}
			json_decref(tmp);
		} else if (strcmp(k, "measurement") == 0 || strcmp(k, "host_data") == 0 ||
			   strcmp(k, "product") == 0 || strcmp(k, "signing_key") == 0) {
			if (!eval_set(v, json_string_value(json_object_get(ev, k)), p, failed))
				ok = false;
		} else if (strcmp(k, "ear_status") == 0) {
			if (!eval_set(v, json_string_value(json_object_get(cpu0, "ear.status")), p,
				      failed))
				ok = false;
		} else if (strcmp(k, "min_tcb") == 0) {
			const json_t *tcb = json_object_get(ev, "reported_tcb");
			const char *c;
			json_t *n, *have;

			json_object_foreach(v, c, n) {
				char q[300], exp[32], act[32];

				(void)snprintf(q, sizeof(q), "%s.%s", p, c);
				have = json_object_get(tcb, c);
				(void)snprintf(exp, sizeof(exp), ">= %lld",
					       (long long)json_integer_value(n));
				if (!json_is_integer(have)) {
					fail(failed, q, exp, "(absent)");
					ok = false;
				} else if (json_integer_value(have) < json_integer_value(n)) {
					(void)snprintf(act, sizeof(act), "%lld",
						       (long long)json_integer_value(have));
					fail(failed, q, exp, act);
					ok = false;
				}
			}
		} else {
			fail(failed, p, "a known condition", "unknown");
			ok = false;
		}
	}
	return ok;
}

bool
release_policy_eval(const json_t *policy, const json_t *claims, json_t **failed)
{
	const json_t *cpu0 = json_object_get(json_object_get(claims, "submods"), "cpu0");
	const char *st = json_string_value(json_object_get(cpu0, "ear.status"));
	json_t *f = json_array();
	bool ok = true;

	if (f == NULL) {
		*failed = NULL;
		return false;
	}
	if (st == NULL || strcmp(st, "contraindicated") == 0) {
		fail(f, "ear_status", "not contraindicated", st ? st : "(absent)");
		ok = false;
	}
	if (!json_is_object(policy)) {
		fail(f, "policy", "a release policy", "none set");
		ok = false;
	} else if (!eval_expr(policy, cpu0, "", f))
		ok = false;
	*failed = f;
	return ok;
}
