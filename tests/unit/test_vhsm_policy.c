/* Unit tests: vhsmd's authorisation policy (src/vhsm/policy.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
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

/* A TLS caller as vhsmd's listener makes it: no uid/pid/exe/cgroup. */
static struct vhsm_principal
tls_who(const char *subject, uint8_t fp_byte)
{
	struct vhsm_principal w;

	memset(&w, 0, sizeof(w));
	w.tls = true;
	snprintf(w.tls_subject, sizeof(w.tls_subject), "%s", subject);
	memset(w.tls_sha256, fp_byte, sizeof(w.tls_sha256));
	return w;
}

#define FP_AB "abababababababababababababababababababababababababababababababab"
#define FP_AB_COLONS "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:" \
		     "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB"

static void
test_tls_subject_and_fingerprint(void **state)
{
	struct vhsm_policy *p = parse_ok(
		"{\"rules\":["
		"{\"principal\":{\"tls_subject\":\"CN=app,O=Example\\\\, Inc.\"},\"keys\":[\"app/*\"],"
		"\"operations\":[\"sign\"]},"
		"{\"principal\":{\"tls_sha256\":\"" FP_AB "\"},\"keys\":[\"fp/*\"],\"operations\":[\"sign\"]},"
		"{\"principal\":{\"tls_sha256\":\"" FP_AB_COLONS "\",\"tls_subject\":\"CN=both\"},"
		"\"keys\":[\"both\"],\"operations\":[\"hmac\"]}]}");
	struct vhsm_principal app = tls_who("CN=app,O=Example\\, Inc.", 0x01),
			      app_prefix = tls_who("CN=app,O=Example\\, Inc.,C=US", 0x01),
			      app_case = tls_who("cn=app,o=example\\, inc.", 0x01),
			      fp = tls_who("CN=whatever", 0xab), both = tls_who("CN=both", 0xab),
			      both_other_fp = tls_who("CN=both", 0xac);

	(void)state;
	assert_true(vhsm_policy_allows(p, &app, VHSM_OP_SIGN, "app/k"));
	assert_false(vhsm_policy_allows(p, &app, VHSM_OP_SIGN, "fp/k"));
	assert_false(vhsm_policy_allows(p, &app, VHSM_OP_HMAC, "app/k"));
	/* the subject is compared exactly: no prefix, no case folding, no patterns */
	assert_false(vhsm_policy_allows(p, &app_prefix, VHSM_OP_SIGN, "app/k"));
	assert_false(vhsm_policy_allows(p, &app_case, VHSM_OP_SIGN, "app/k"));
	assert_true(vhsm_policy_allows(p, &fp, VHSM_OP_SIGN, "fp/k"));
	assert_false(vhsm_policy_allows(p, &fp, VHSM_OP_SIGN, "app/k"));
	/* both fields: both must match (the colon form parsed to the same bytes) */
	assert_true(vhsm_policy_allows(p, &both, VHSM_OP_HMAC, "both"));
	assert_false(vhsm_policy_allows(p, &both_other_fp, VHSM_OP_HMAC, "both"));
	assert_false(vhsm_policy_allows(p, &fp, VHSM_OP_HMAC, "both"));
	assert_true(vhsm_policy_may_see(p, &app, "app/k"));
	assert_false(vhsm_policy_may_see(p, &app, "fp/k"));
	vhsm_policy_free(p);
}

static void
test_tls_and_local_rules_do_not_cross(void **state)
{
	struct vhsm_policy *p = parse_ok(
		"{\"rules\":["
		"{\"principal\":{},\"keys\":[\"*\"],\"operations\":[\"*\"]},"
		"{\"principal\":{\"uid\":0},\"keys\":[\"*\"],\"operations\":[\"*\"]},"
		"{\"principal\":{\"gid\":0,\"cgroup\":\"/*\"},\"keys\":[\"*\"],\"operations\":[\"*\"]},"
		"{\"principal\":{\"tls_subject\":\"CN=net\"},\"keys\":[\"net/*\"],\"operations\":[\"sign\"]}]}");
	/* A TLS caller's uid/gid are zero in the struct: still not root. */
	struct vhsm_principal net = tls_who("CN=net", 0x00), other = tls_who("CN=other", 0x00);
	struct vhsm_principal root = who(0, 0, "/usr/bin/x", "/system.slice/x.service");
	struct vhsm_principal root_with_subject = root;

	(void)state;
	assert_true(vhsm_policy_allows(p, &net, VHSM_OP_SIGN, "net/k"));
	assert_false(vhsm_policy_allows(p, &net, VHSM_OP_SIGN, "local/k"));
	assert_false(vhsm_policy_allows(p, &net, VHSM_OP_RANDOM, NULL));
	assert_false(vhsm_policy_allows(p, &other, VHSM_OP_SIGN, "net/k"));
	assert_false(vhsm_policy_may_see(p, &other, "local/k"));
	/* A local caller gets the local rules, and a TLS rule never matches it,
	 * even if its struct happened to carry the same subject text. */
	snprintf(root_with_subject.tls_subject, sizeof(root_with_subject.tls_subject), "CN=net");
	assert_true(vhsm_policy_allows(p, &root, VHSM_OP_SIGN, "local/k"));
	vhsm_policy_free(p);
	p = parse_ok("{\"rules\":[{\"principal\":{\"tls_subject\":\"CN=net\"},\"keys\":[\"*\"],"
		     "\"operations\":[\"*\"]}]}");
	assert_false(vhsm_policy_allows(p, &root_with_subject, VHSM_OP_SIGN, "net/k"));
	assert_false(vhsm_policy_allows(p, &root, VHSM_OP_SIGN, "net/k"));
	assert_true(vhsm_policy_allows(p, &net, VHSM_OP_SIGN, "net/k"));
	assert_false(vhsm_policy_needs_exe_hash(p));
	vhsm_policy_free(p);
}

static void
test_tls_parse_errors(void **state)
{
	char big[VHSM_TLS_SUBJECT_MAX + 100];

	(void)state;
	parse_bad("{\"rules\":[{\"principal\":{\"tls_sha256\":\"abcd\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.tls_sha256: expected 64 hex digits");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_sha256\":\"" FP_AB "00\"},\"keys\":[\"k\"],"
		  "\"operations\":[\"sign\"]}]}", "tls_sha256");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_sha256\":\"zz" FP_AB "\"},\"keys\":[\"k\"],"
		  "\"operations\":[\"sign\"]}]}", "tls_sha256");
	/* colons in the wrong places */
	parse_bad("{\"rules\":[{\"principal\":{\"tls_sha256\":\"ABA:B:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:"
		  "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "tls_sha256");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_sha256\":1},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.tls_sha256");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_subject\":\"\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.tls_subject");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_subject\":[\"CN=a\"]},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "rules[0].principal.tls_subject");
	/* an embedded NUL (jansson refuses it; the length check would too) */
	parse_bad("{\"rules\":[{\"principal\":{\"tls_subject\":\"CN=a\\u0000b\"},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "not allowed");
	parse_bad("{\"rules\":[{\"principal\":{\"tls_subject\":\"CN=a\",\"uid\":0},\"keys\":[\"k\"],\"operations\":[\"sign\"]}]}",
		  "cannot be combined");
	parse_bad("{\"rules\":[{\"principal\":{\"exe\":\"/bin/x\",\"tls_sha256\":\"" FP_AB "\"},\"keys\":[\"k\"],"
		  "\"operations\":[\"sign\"]}]}", "cannot be combined");
	parse_bad("{\"rules\":[{\"principal\":{\"cgroup\":\"/x\",\"tls_subject\":\"CN=a\"},\"keys\":[\"k\"],"
		  "\"operations\":[\"sign\"]}]}", "cannot be combined");
	/* a subject longer than any the listener accepts */
	{
		char *json = malloc(sizeof(big) + 200);

		assert_non_null(json);
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = 0;
		memcpy(big, "CN=", 3);
		snprintf(json, sizeof(big) + 200,
			 "{\"rules\":[{\"principal\":{\"tls_subject\":\"%s\"},\"keys\":[\"k\"],"
			 "\"operations\":[\"sign\"]}]}", big);
		parse_bad(json, "rules[0].principal.tls_subject");
		free(json);
	}
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
		cmocka_unit_test(test_tls_subject_and_fingerprint),
		cmocka_unit_test(test_tls_and_local_rules_do_not_cross),
		cmocka_unit_test(test_tls_parse_errors),
		cmocka_unit_test(test_op_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
