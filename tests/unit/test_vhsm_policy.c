/* Unit tests: vhsmd's authorisation policy (src/vhsm/policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "vhsm/policy.h"
#include "vhsm/proto.h"

static struct vhsm_policy *
parse_ok(const char *json)
{
	struct vhsm_policy *p = NULL;
	char err[256] = "";

	if (vhsm_policy_parse(json, strlen(json), &p, err, sizeof(err)) != 0)
		fail_msg("policy did not parse: %s", err);
	return p;
}

static void
parse_bad(const char *json, const char *expect)
{
	struct vhsm_policy *p = NULL;
	char err[256] = "";

	assert_int_equal(vhsm_policy_parse(json, strlen(json), &p, err, sizeof(err)), -1);
	assert_null(p);
	if (strstr(err, expect) == NULL)
		fail_msg("error '%s' does not mention '%s'", err, expect);
}

static struct vhsm_principal
who(uid_t uid, gid_t gid, const char *exe, const char *cgroup)
{
	struct vhsm_principal w;

	memset(&w, 0, sizeof(w));
	w.uid = uid;
	w.gid = gid;
	w.pid = 4242;
	if (exe) {
		snprintf(w.exe, sizeof(w.exe), "%s", exe);
		w.have_exe = true;
	}
	if (cgroup) {
		snprintf(w.cgroup, sizeof(w.cgroup), "%s", cgroup);
		w.have_cgroup = true;
	}
	return w;
}

static void
test_default_deny(void **state)
{
	struct vhsm_policy *p = parse_ok("{\"version\":1,\"rules\":[]}");
	struct vhsm_principal w = who(0, 0, "/usr/bin/x", NULL);

	(void)state;
	assert_false(vhsm_policy_allows(p, &w, VHSM_OP_SIGN, "k"));
	assert_false(vhsm_policy_allows(p, &w, VHSM_OP_RANDOM, NULL));
	assert_false(vhsm_policy_may_see(p, &w, "k"));
	assert_false(vhsm_policy_allows(NULL, &w, VHSM_OP_SIGN, "k"));
	vhsm_policy_free(p);
}

static void
test_uid_keys_ops(void **state)
{
	struct vhsm_policy *p = parse_ok(
		"{\"rules\":[{\"principal\":{\"uid\":1000},\"keys\":[\"app/*\",\"shared\"],"
		"\"operations\":[\"sign\",\"get_public\"]},"
		"{\"principal\":{\"uid\":1001,\"gid\":50},\"keys\":[\"*\"],\"operations\":[\"*\"]}]}");
	struct vhsm_principal a = who(1000, 1000, NULL, NULL), b = who(1001, 50, NULL, NULL),
			      b2 = who(1001, 51, NULL, NULL);

	(void)state;
	assert_true(vhsm_policy_allows(p, &a, VHSM_OP_SIGN, "app/k1"));
	assert_true(vhsm_policy_allows(p, &a, VHSM_OP_SIGN, "shared"));
	assert_false(vhsm_policy_allows(p, &a, VHSM_OP_SIGN, "shared2"));
	assert_false(vhsm_policy_allows(p, &a, VHSM_OP_SIGN, "other/k1"));
	assert_false(vhsm_policy_allows(p, &a, VHSM_OP_DELETE, "app/k1"));
	assert_false(vhsm_policy_allows(p, &a, VHSM_OP_RANDOM, NULL));
	assert_true(vhsm_policy_may_see(p, &a, "app/x"));
	assert_false(vhsm_policy_may_see(p, &a, "zzz"));
	assert_true(vhsm_policy_allows(p, &b, VHSM_OP_DELETE, "anything"));
	assert_true(vhsm_policy_allows(p, &b, VHSM_OP_RANDOM, NULL));
	/* gid must match too */
	assert_false(vhsm_policy_allows(p, &b2, VHSM_OP_DELETE, "anything"));
	assert_false(vhsm_policy_needs_exe_hash(p));
	vhsm_policy_free(p);
}

static void
test_exe_and_cgroup(void **state)
{
	struct vhsm_policy *p = parse_ok(
		"{\"rules\":[{\"principal\":{\"exe\":\"/usr/bin/app*\",\"cgroup\":\"/system.slice/app.service\"},"
		"\"keys\":[\"k\"],\"operations\":[\"sign\"]},"
		"{\"principal\":{\"exe_sha256\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"},"
		"\"keys\":[\"h\"],\"operations\":[\"hmac\"]}]}");
	struct vhsm_principal ok = who(5, 5, "/usr/bin/appd", "/system.slice/app.service");
	struct vhsm_principal badexe = who(5, 5, "/usr/bin/other", "/system.slice/app.service");
	struct vhsm_principal badcg = who(5, 5, "/usr/bin/appd", "/user.slice/x.scope");
	struct vhsm_principal noexe = who(5, 5, NULL, "/system.slice/app.service");
	struct vhsm_principal h = who(9, 9, "/x", NULL);

	(void)state;
	assert_true(vhsm_policy_allows(p, &ok, VHSM_OP_SIGN, "k"));
	assert_false(vhsm_policy_allows(p, &badexe, VHSM_OP_SIGN, "k"));
	assert_false(vhsm_policy_allows(p, &badcg, VHSM_OP_SIGN, "k"));
	assert_false(vhsm_policy_allows(p, &noexe, VHSM_OP_SIGN, "k"));
	assert_true(vhsm_policy_needs_exe_hash(p));
	assert_false(vhsm_policy_allows(p, &h, VHSM_OP_HMAC, "h")); /* no hash known */
	h.have_exe_sha256 = true;
	memcpy(h.exe_sha256, "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff"
			     "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 32);
	assert_true(vhsm_policy_allows(p, &h, VHSM_OP_HMAC, "h"));
	h.exe_sha256[31] ^= 1;
	assert_false(vhsm_policy_allows(p, &h, VHSM_OP_HMAC, "h"));
	vhsm_policy_free(p);
}

static void
test_user_by_name(void **state)
{
	struct vhsm_policy *p = parse_ok(
		"{\"rules\":[{\"principal\":{\"user\":\"root\",\"group\":\"root\"},\"keys\":[\"k\"],"
		"\"operations\":[\"sign\"]}]}");
	struct vhsm_principal r = who(0, 0, NULL, NULL), n = who(65534, 65534, NULL, NULL);

	(void)state;
	assert_true(vhsm_policy_allows(p, &r, VHSM_OP_SIGN, "k"));
	assert_false(vhsm_policy_allows(p, &n, VHSM_OP_SIGN, "k"));
	vhsm_policy_free(p);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	parse_bad("{\"rules\":[", "line 1");
	parse_bad("[]", "top level");
	parse_bad("{\"rulez\":[]}", "unknown top-level field 'rulez'");
	parse_bad("{\"version\":2,\"rules\":[]}", "'version' must be 1");
	parse_bad("{\"rules\":[{\"principal\":{},\"keys\":[\"k\"],\"operations\":[\"sing\"]}]}",
		  "rules[0].operations[0]: unknown operation");
	parse_bad("{\"rules\":[{\"principal\":{\"uid\":-1},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.uid");
	parse_bad("{\"rules\":[{\"principal\":{\"user\":\"no-such-user-xyz\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.user");
	parse_bad("{\"rules\":[{\"principal\":{\"exe\":\"relative\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.exe");
	parse_bad("{\"rules\":[{\"principal\":{\"exe_sha256\":\"abc\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "exe_sha256");
	parse_bad("{\"rules\":[{\"principal\":{},\"keys\":[],\"operations\":[\"sign\"]}]}", "'keys'");
	parse_bad("{\"rules\":[{\"principal\":{},\"keys\":[\"k\"],\"operations\":[]}]}", "'operations'");
	parse_bad("{\"rules\":[{\"principal\":{},\"keys\":[\"k\"],\"operations\":[\"sign\"],\"x\":1}]}",
		  "unknown field 'x'");
	parse_bad("{\"rules\":[{\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}", "'principal'");
	parse_bad("{\"rules\":[],\"rules\":[]}", "line");
}

static void
test_op_names(void **state)
{
	uint32_t op;

	(void)state;
	for (op = 1; op <= VHSM_OP_MAX; op++)
		assert_int_equal(vhsm_op_from_name(vhsm_op_name(op)), op);
	assert_null(vhsm_op_name(0));
	assert_null(vhsm_op_name(VHSM_OP_MAX + 1));
	assert_int_equal(vhsm_op_from_name("nope"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_deny),
		cmocka_unit_test(test_uid_keys_ops),
		cmocka_unit_test(test_exe_and_cgroup),
		cmocka_unit_test(test_user_by_name),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_op_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
