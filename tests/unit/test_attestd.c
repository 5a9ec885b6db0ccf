/*
 * attestd unit tests: JCS (RFC 8785) against the binding vector, the nonce
 * store, policy parsing, every appraisal rule's negative case, and the EAR
 * token (verified with cjose against the published JWKS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <nitride/snp.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>

#include "attest/appraise.h"
#include "attest/collateral.h"
#include "attest/config.h"
#include "attest/nonce.h"
#include "attest/policy.h"
#include "attest/token.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/jcs.h"
#include "testca.h"
#include "testsupport.h"

/* ------------------------------------------------------------------ helpers */

static char *
canon_of(const char *json)
{
	json_error_t je;
	json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
	char *out = NULL;
	size_t len = 0;

	assert_non_null(v);
	assert_int_equal(jcs_serialize(v, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	json_decref(v);
	return out;
}

/* ------------------------------------------------------------------ JCS */

static void
test_jcs_binding_vector(void **state)
{
	uint8_t *buf;
	size_t len;
	json_t *doc, *obj;
	char *canon = NULL, hexrd[129];
	size_t clen;
	uint8_t rd[64] = { 0 };
	unsigned n = 0;

	(void)state;
	ts_require_vectors();
	buf = ts_read_vector("protocol/binding.json", &len);
	assert_non_null(doc = json_loadb((const char *)buf, len, 0, NULL));
	/* Build {"nonce", "tee-pubkey"} as a verifier would, in a non-sorted order. */
	obj = json_pack("{s:O, s:O}", "tee-pubkey", json_object_get(doc, "tee_pubkey"), "nonce",
			json_object_get(doc, "nonce"));
	assert_non_null(obj);
	assert_int_equal(jcs_serialize(obj, &canon, &clen), 0);
	assert_string_equal(canon, json_string_value(json_object_get(doc, "jcs")));
	assert_int_equal(EVP_Digest(canon, clen, rd, &n, EVP_sha384(), NULL), 1);
	assert_int_equal(n, 48);
	hex_encode(rd, 64, hexrd);
	assert_string_equal(hexrd, json_string_value(json_object_get(doc, "report_data")));
	free(canon);
	json_decref(obj);
	json_decref(doc);
	free(buf);
}

static void
test_jcs_rules(void **state)
{
	char *s;
	json_t *v;
	char *out = NULL;
	size_t len;

	(void)state;
	/* Whitespace removed, keys sorted, nesting. */
	s = canon_of("{ \"b\" : [1, true, null, {\"z\":1,\"a\":\"x\"}], \"a\": false }");
	assert_string_equal(s, "{\"a\":false,\"b\":[1,true,null,{\"a\":\"x\",\"z\":1}]}");
	free(s);
	/* RFC 8785 §3.2.3: sorting by UTF-16 code units, not by UTF-8 bytes or code points:
	 * U+20AC (0x20AC) < U+1F600 (0xD83D 0xDE00) < U+FB33 (0xFB33). */
	s = canon_of("{\"\\ufb33\":3,\"\\ud83d\\ude00\":2,\"\\u20ac\":1,\"\\r\":0,\"1\":4}");
	assert_string_equal(s, "{\"\\r\":0,\"1\":4,\"\xe2\x82\xac\":1,\"\xf0\x9f\x98\x80\":2,"
			       "\"\xef\xac\xb3\":3}");
	free(s);
	/* Escapes: the two-character forms, \u00xx lowercase for other controls, "/" and
	 * non-ASCII literal. */
	s = canon_of("\"\\u0008\\t\\n\\f\\r\\\"\\\\\\u001f\\u007f/\\u00e9\"");
	assert_string_equal(s, "\"\\b\\t\\n\\f\\r\\\"\\\\\\u001f\x7f/\xc3\xa9\"");
	free(s);
	/* Integers as integers; -0 is 0. */
	s = canon_of("[0, -1, 9007199254740992, -0]");
	assert_string_equal(s, "[0,-1,9007199254740992,0]");
	free(s);
	/* Reals and out-of-range integers refused. */
	assert_non_null(v = json_loads("[1.5]", 0, NULL));
	assert_int_equal(jcs_serialize(v, &out, &len), -EDOM);
	json_decref(v);
	assert_non_null(v = json_loads("[9007199254740993]", 0, NULL));
	assert_int_equal(jcs_serialize(v, &out, &len), -EDOM);
	json_decref(v);
	assert_null(out);
	/* Depth cap. */
	v = json_array();
	for (int i = 0; i < JCS_MAX_DEPTH + 2; i++)
		v = json_pack("[o]", v);
	assert_int_equal(jcs_serialize(v, &out, &len), -ELOOP);
	json_decref(v);
	/* Empty containers. */
	s = canon_of("{\"a\":{},\"b\":[]}");
	assert_string_equal(s, "{\"a\":{},\"b\":[]}");
	free(s);
	assert_true(jcs_compare_keys("a", "ab") < 0);
	assert_true(jcs_compare_keys("b", "ab") > 0);
	assert_int_equal(jcs_compare_keys("x", "x"), 0);
	/* After a common ASCII prefix: ASCII against ASCII, ASCII against a
	 * multi-byte character, the end against either, and UTF-16 order again
	 * (U+1F600 sorts before U+FB33 although its code point is larger). */
	assert_true(jcs_compare_keys("key_a", "key_b") < 0);
	assert_true(jcs_compare_keys("key\x7f", "key\xc3\xa9") < 0);
	assert_true(jcs_compare_keys("key\xc3\xa9", "key\x7f") > 0);
	assert_true(jcs_compare_keys("key", "key\xc3\xa9") < 0);
	assert_true(jcs_compare_keys("key\xc3\xa9", "key") > 0);
	assert_int_equal(jcs_compare_keys("k\xc3\xa9y", "k\xc3\xa9y"), 0);
	assert_true(jcs_compare_keys("k\xf0\x9f\x98\x80", "k\xef\xac\xb3") < 0);
	/* Runs of literal characters end at a quote, a backslash or a control,
	 * and a bad sequence after a long ASCII run is still refused. */
	s = canon_of("[\"abc\\\"def\\\\ghi\\u0001jkl\u00e9mno\"]");
	assert_string_equal(s, "[\"abc\\\"def\\\\ghi\\u0001jkl\xc3\xa9mno\"]");
	free(s);
	assert_non_null(v = json_array());
	assert_int_equal(json_array_append_new(v, json_stringn_nocheck("abcdefgh\xc3(", 10)), 0);
	assert_int_equal(jcs_serialize(v, &out, &len), -EILSEQ);
	assert_null(out);
	json_decref(v);
}

/* ------------------------------------------------------------------ nonces */

static void
test_nonce_store(void **state)
{
	nonce_store *s = NULL;
	char n1[NONCE_TEXT_LEN + 1], n2[NONCE_TEXT_LEN + 1], n3[NONCE_TEXT_LEN + 1];
	char bad[NONCE_TEXT_LEN + 1];
	unsigned char raw[40];
	time_t exp = 0, t0 = 1000000;

	(void)state;
	assert_int_equal(nonce_store_new(2, 120, &s), NONCE_OK);
	assert_int_equal(nonce_store_issue(s, t0, n1, &exp), NONCE_OK);
	assert_int_equal(strlen(n1), NONCE_TEXT_LEN);
	assert_int_equal(b64url_decode(n1, strlen(n1), raw, sizeof(raw)), 32);
	assert_int_equal(exp, t0 + 120);
	assert_int_equal(nonce_store_issue(s, t0, n2, &exp), NONCE_OK);
	assert_string_not_equal(n1, n2);
	/* Full: two live nonces, cap 2. */
	assert_int_equal(nonce_store_issue(s, t0 + 1, n3, &exp), NONCE_FULL);
	/* Single use. */
	assert_int_equal(nonce_store_consume(s, n1, t0 + 5), NONCE_OK);
	assert_int_equal(nonce_store_consume(s, n1, t0 + 6), NONCE_REUSED);
	/* Unknown (well-formed, never issued) and malformed. */
	memcpy(bad, n2, sizeof(bad));
	bad[0] = bad[0] == 'A' ? 'B' : 'A';
	assert_int_equal(nonce_store_consume(s, bad, t0 + 6), NONCE_UNKNOWN);
	assert_int_equal(nonce_store_consume(s, "short", t0), NONCE_MALFORMED);
	bad[5] = '+';
	assert_int_equal(nonce_store_consume(s, bad, t0), NONCE_MALFORMED);
	assert_int_equal(nonce_store_consume(s, NULL, t0), NONCE_MALFORMED);
	/* Expiry: at exactly t0+120 the nonce is dead, and an expired one cannot come back. */
	assert_int_equal(nonce_store_consume(s, n2, t0 + 120), NONCE_EXPIRED);
	assert_int_equal(nonce_store_consume(s, n2, t0 + 121), NONCE_UNKNOWN);
	/* The consumed n1 still counts until it expires (so replays are named), then is swept. */
	assert_int_equal(nonce_store_count(s), 1);
	assert_int_equal(nonce_store_issue(s, t0 + 100, n3, &exp), NONCE_OK);
	assert_int_equal(nonce_store_issue(s, t0 + 101, n3, &exp), NONCE_FULL);
	assert_int_equal(nonce_store_issue(s, t0 + 125, n3, &exp), NONCE_OK); /* n1 swept */
	assert_int_equal(nonce_store_count(s), 2);
	nonce_store_free(s);
	nonce_store_free(NULL);
}

static void
test_nonce_store_many(void **state)
{
	nonce_store *s = NULL;
	enum { N = 5000 };
	char (*ns)[NONCE_TEXT_LEN + 1] = calloc(N, sizeof(*ns));
	time_t exp;
	size_t i;

	(void)state;
	assert_non_null(ns);
	assert_int_equal(nonce_store_new(N, 60, &s), NONCE_OK);
	for (i = 0; i < N; i++)
		assert_int_equal(nonce_store_issue(s, 10, ns[i], &exp), NONCE_OK);
	assert_int_equal(nonce_store_issue(s, 11, ns[0] /* scratch */, &exp), NONCE_FULL);
	/* ns[0] was overwritten by nothing: FULL does not write. Consume every other one. */
	for (i = 0; i < N; i += 2)
		assert_int_equal(nonce_store_consume(s, ns[i], 20), NONCE_OK);
	for (i = 1; i < N; i += 2)
		assert_int_equal(nonce_store_consume(s, ns[i], 20), NONCE_OK);
	for (i = 0; i < N; i += 7)
		assert_int_equal(nonce_store_consume(s, ns[i], 21), NONCE_REUSED);
	/* After expiry the whole table is reclaimed. */
	for (i = 0; i < N; i++)
		assert_int_equal(nonce_store_issue(s, 100, ns[i], &exp), NONCE_OK);
	for (i = 0; i < N; i++)
		assert_int_equal(nonce_store_consume(s, ns[i], 101), NONCE_OK);
	nonce_store_free(s);
	free(ns);
}

/* ------------------------------------------------------------------ policy */

#define MEAS_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define MEAS_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
expect_policy_error(const char *text, const char *needle)
{
	policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";

	assert_int_equal(policy_parse(text, strlen(text), "p.json", &p, err, sizeof(err)), -1);
	assert_null(p);
	if (strstr(err, needle) == NULL || strncmp(err, "p.json: ", 8) != 0)
		fail_msg("policy %s: error \"%s\" lacks \"%s\"", text, err, needle);
}

static void
test_policy_parse(void **state)
{
	policy *p = NULL;
	char err[POLICY_ERR_MAX] = "";
	const char *ok = "{\"measurements\":[\"" MEAS_A "\"],\"vmpls\":[0,2],"
			 "\"guest_policy\":{\"allow_debug\":false,\"min_abi_major\":1},"
			 "\"min_tcb\":{\"genoa\":{\"snp\":8,\"microcode\":115}},"
			 "\"tcb_apply\":[\"reported\",\"launch\"],\"signing_keys\":[\"vcek\",\"vlek\"],"
			 "\"products\":[\"genoa\"],\"report_versions\":[3,5],"
			 "\"min_firmware\":{\"major\":1,\"minor\":55},"
			 "\"platform_info\":{\"required\":\"0x1\",\"forbidden\":2},"
			 "\"warn_rules\":[\"tcb.committed.\"]}";
	policy *q = NULL;

	(void)state;
	assert_int_equal(policy_parse(ok, strlen(ok), "p.json", &p, err, sizeof(err)), 0);
	assert_int_equal(p->n_measurements, 1);
	assert_int_equal(p->vmpls, 0x5);
	assert_true(p->min_tcb[SNP_PRODUCT_GENOA].set);
	assert_int_equal(p->min_tcb[SNP_PRODUCT_GENOA].snp, 8);
	assert_int_equal(p->min_tcb[SNP_PRODUCT_GENOA].tee, -1);
	assert_int_equal(p->tcb_apply, POLICY_TCB_REPORTED | POLICY_TCB_LAUNCH);
	assert_int_equal(p->products, 1u << SNP_PRODUCT_GENOA);
	assert_int_equal(p->report_versions, (1u << 3) | (1u << 5));
	assert_int_equal(p->platform_info_required, 1);
	assert_int_equal(p->platform_info_forbidden, 2);
	assert_true(policy_rule_warns(p, "tcb.committed.snp"));
	assert_false(policy_rule_warns(p, "tcb.reported.snp"));
	assert_int_equal(strncmp(p->digest, "sha256:", 7), 0);
	assert_int_equal(strlen(p->digest), 7 + 64);
	/* The digest is of the canonical form: whitespace and member order do not matter. */
	{
		const char *a = "{\"vmpls\":[0],\"measurements\":[\"" MEAS_A "\"]}";
		const char *b = "{ \"measurements\" : [ \"" MEAS_A "\" ] ,\n \"vmpls\" : [0] }";
		policy *pa = NULL, *pb = NULL;

		assert_int_equal(policy_parse(a, strlen(a), "a", &pa, err, sizeof(err)), 0);
		assert_int_equal(policy_parse(b, strlen(b), "b", &pb, err, sizeof(err)), 0);
		assert_string_equal(pa->digest, pb->digest);
		assert_string_not_equal(pa->digest, p->digest);
		policy_free(pa);
		policy_free(pb);
	}
	/* Holder: a reader keeps its policy across a swap. */
	{
		policy_holder *h = NULL;
		const policy *r1, *r2;

		assert_int_equal(policy_parse(ok, strlen(ok), "q", &q, err, sizeof(err)), 0);
		assert_int_equal(policy_holder_new(p, &h), 0);
		r1 = policy_holder_get(h);
		assert_ptr_equal(r1, p);
		policy_holder_swap(h, q);
		r2 = policy_holder_get(h);
		assert_ptr_equal(r2, q);
		assert_int_equal(r1->n_measurements, 1); /* still alive (ASan checks) */
		policy_holder_put(h, r1);
		policy_holder_put(h, r2);
		policy_holder_free(h);
	}
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\n\"vmpl\":[0]}", "unknown key \"vmpl\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\n\"guest_policy\":{\"debug\":true}}",
			    "unknown key \"guest_policy.debug\"");
	expect_policy_error("{\"measurements\":[]}", "key \"measurements\"");
	expect_policy_error("{\"vmpls\":[0]}", "key \"measurements\"");
	expect_policy_error("{\"measurements\":[\"abc\"]}", "key \"measurements[0]\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"min_tcb\":{\"rome\":{}}}",
			    "key \"min_tcb.rome\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"min_tcb\":{\"genoa\":{\"fmc\":1}}}",
			    "key \"min_tcb.genoa.fmc\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"min_tcb\":{\"genoa\":{\"snp\":256}}}",
			    "key \"min_tcb.genoa.snp\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"vmpls\":[4]}", "key \"vmpls[0]\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"signing_keys\":[\"ark\"]}",
			    "key \"signing_keys[0]\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"products\":[\"\"]}",
			    "key \"products[0]\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"min_guest_svn\":1.5}",
			    "key \"min_guest_svn\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"platform_info\":{\"required\":\"0xz\"}}",
			    "key \"platform_info.required\"");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"platform_info\":{\"required\":1,\"forbidden\":1}}",
			    "both required and forbidden");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\n\"vmpls\":[0],,}", "line 2");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"vmpls\":[0],\"vmpls\":[1]}",
			    "duplicate");
	expect_policy_error("[]", "must be a JSON object");
	expect_policy_error("{\"measurements\":[\"" MEAS_A "\"],\"comment\":1.5}", "canonicalise");
}

/* ------------------------------------------------------------------ appraisal */

static void
put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Report fields the tests vary. */
struct rfields {
	snp_product product;
	uint32_t version, vmpl, guest_svn, signing_key;
	uint64_t policy, platform_info, reported_tcb, committed_tcb, launch_tcb;
	uint8_t measurement_byte, host_data_byte;
	uint8_t fw_major, fw_minor, fw_build;
	const uint8_t *chip;
	const uint8_t *report_data;
};

static uint64_t
default_tcb(snp_product p)
{
	snp_tcb t = { .bootloader = 3, .tee = 0, .snp = 8, .microcode = 115,
		      .fmc = p == SNP_PRODUCT_TURIN ? 1 : 0 };

	return snp_tcb_encode(&t, p);
}

static void
rfields_default(struct rfields *f, snp_product p)
{
	memset(f, 0, sizeof(*f));
	f->product = p;
	f->version = 3;
	f->policy = 0x30000;
	f->reported_tcb = f->committed_tcb = f->launch_tcb = default_tcb(p);
	f->measurement_byte = 0xaa;
	f->host_data_byte = 0;
	f->fw_major = 1;
	f->fw_minor = 55;
	f->fw_build = 7;
	f->chip = testca_default_hwid();
}

static void
make_report(uint8_t out[SNP_REPORT_SIZE], const struct rfields *f, EVP_PKEY *key)
{
	static const uint8_t cpuid[][2] = { { 0, 0 }, { 0x19, 0x01 }, { 0x19, 0x11 }, { 0x1A, 0x02 } };
	unsigned char der[128];
	const unsigned char *p = der;
	size_t der_len = sizeof(der);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const BIGNUM *r, *sv;
	ECDSA_SIG *sig;
	uint8_t be[48];

	memset(out, 0, SNP_REPORT_SIZE);
	put_le(out + 0x000, f->version, 4);
	put_le(out + 0x004, f->guest_svn, 4);
	put_le(out + 0x008, f->policy, 8);
	put_le(out + 0x030, f->vmpl, 4);
	put_le(out + 0x034, 1, 4);
	put_le(out + 0x038, f->reported_tcb, 8);
	put_le(out + 0x040, f->platform_info, 8);
	put_le(out + 0x048, f->signing_key << 2, 4);
	if (f->report_data)
		memcpy(out + 0x050, f->report_data, SNP_REPORT_DATA_LEN);
	memset(out + 0x090, f->measurement_byte, SNP_MEASUREMENT_LEN);
	memset(out + 0x0C0, f->host_data_byte, SNP_HOST_DATA_LEN);
	put_le(out + 0x180, f->reported_tcb, 8);
	out[0x188] = cpuid[f->product][0];
	out[0x189] = cpuid[f->product][1];
	if (f->signing_key == SNP_SIGNING_KEY_VCEK)
		memcpy(out + 0x1A0, f->chip, SNP_CHIP_ID_LEN);
	put_le(out + 0x1E0, f->committed_tcb, 8);
	out[0x1E8] = f->fw_build;
	out[0x1E9] = f->fw_minor;
	out[0x1EA] = f->fw_major;
	out[0x1EC] = f->fw_build;
	out[0x1ED] = f->fw_minor;
	out[0x1EE] = f->fw_major;
	put_le(out + 0x1F0, f->launch_tcb, 8);
	assert_non_null(md);
	assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA384", NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(md, der, &der_len, out, SNP_REPORT_SIGNED_SIZE), 1);
	EVP_MD_CTX_free(md);
	assert_non_null(sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len));
	ECDSA_SIG_get0(sig, &r, &sv);
	assert_int_equal(BN_bn2binpad(r, be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2A0 + i] = be[47 - i];
	assert_int_equal(BN_bn2binpad(sv, be, 48), 48);
	for (size_t i = 0; i < 48; i++)
		out[0x2E8 + i] = be[47 - i];
	ECDSA_SIG_free(sig);
}

struct fixture {
	testca *ca, *other;        /* Genoa (trusted), Milan (trusted too) */
	EVP_PKEY *vcek_key, *vlek_key, *milan_key;
	uint8_t *vcek_der, *vlek_der, *milan_der;
	size_t vcek_len, vlek_len, milan_len;
	char *roots;
	collateral *coll;
};

static void
write_pem(const char *dir, const char *name, X509 *x)
{
	char path[1024];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
}

static int
fixture_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	time_t now = time(NULL);
	testca_leaf o;
	collateral_opts co = { 0 };
	char err[512];

	assert_non_null(fx);
	assert_int_equal(testca_new("Genoa", now - 86400, now + 86400 * 365, &fx->ca), 0);
	assert_int_equal(testca_new("Milan", now - 86400, now + 86400 * 365, &fx->other), 0);
	testca_leaf_defaults(&o, fx->ca, SNP_ROLE_VCEK);
	assert_int_equal(testca_issue_leaf(&o, &fx->vcek_der, &fx->vcek_len, &fx->vcek_key), 0);
	testca_leaf_defaults(&o, fx->ca, SNP_ROLE_VLEK);
	assert_int_equal(testca_issue_leaf(&o, &fx->vlek_der, &fx->vlek_len, &fx->vlek_key), 0);
	testca_leaf_defaults(&o, fx->other, SNP_ROLE_VCEK);
	assert_int_equal(testca_issue_leaf(&o, &fx->milan_der, &fx->milan_len, &fx->milan_key), 0);
	fx->roots = ts_scratch_dir("attestd-roots");
	write_pem(fx->roots, "ark_genoa.pem", fx->ca->ark);
	write_pem(fx->roots, "ask_genoa.pem", fx->ca->ask);
	write_pem(fx->roots, "asvk_genoa.pem", fx->ca->asvk);
	write_pem(fx->roots, "ark_milan.pem", fx->other->ark);
	write_pem(fx->roots, "ask_milan.pem", fx->other->ask);
	co.offline = true;
	co.extra_roots_dir = fx->roots;
	co.no_builtin_pins = true;
	if (collateral_new(&co, &fx->coll, err, sizeof(err)) != 0)
		fail_msg("collateral_new: %s", err);
	*state = fx;
	return 0;
}

static int
fixture_teardown(void **state)
{
	struct fixture *fx = *state;

	collateral_free(fx->coll);
	testca_free(fx->ca);
	testca_free(fx->other);
	EVP_PKEY_free(fx->vcek_key);
	EVP_PKEY_free(fx->vlek_key);
	EVP_PKEY_free(fx->milan_key);
	free(fx->vcek_der);
	free(fx->vlek_der);
	free(fx->milan_der);
	free(fx->roots);
	free(fx);
	return 0;
}

static uint8_t *
table_with(snp_cert_kind kind, const uint8_t *der, size_t len, size_t *out_len)
{
	snp_certtable *t = NULL;
	uint8_t *buf;

	assert_int_equal(snp_certtable_new(&t), SNP_OK);
	assert_int_equal(snp_certtable_add(t, kind, der, len), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, out_len), SNP_OK);
	assert_non_null(buf = malloc(*out_len));
	assert_int_equal(snp_certtable_serialize(t, buf, out_len), SNP_OK);
	snp_certtable_free(t);
	return buf;
}

static policy *
mkpolicy(const char *extra)
{
	char text[2048], err[POLICY_ERR_MAX];
	policy *p = NULL;

	(void)snprintf(text, sizeof(text), "{\"measurements\":[\"%s\",\"%s\"]%s%s}", MEAS_B, MEAS_A,
		       extra[0] ? "," : "", extra);
	if (policy_parse(text, strlen(text), "test", &p, err, sizeof(err)) != 0)
		fail_msg("policy: %s", err);
	return p;
}

/* Appraise `f` (signed by the Genoa VCEK, or `key`/`der` when given) under `extra`;
 * returns the appraisal. */
static appraisal *
run(struct fixture *fx, const struct rfields *f, const char *extra, EVP_PKEY *key,
    const uint8_t *der, size_t der_len, snp_cert_kind kind, const uint8_t *expect_rd,
    void (*mutate)(uint8_t *))
{
	uint8_t rep[SNP_REPORT_SIZE], *tab;
	size_t tlen;
	policy *p = mkpolicy(extra);
	appraise_input in = { 0 };
	appraisal *a = NULL;

	make_report(rep, f, key ? key : fx->vcek_key);
	if (mutate)
		mutate(rep);
	tab = table_with(kind, der ? der : fx->vcek_der, der ? der_len : fx->vcek_len, &tlen);
	in.report = rep;
	in.report_len = sizeof(rep);
	in.certs = tab;
	in.certs_len = tlen;
	in.expected_report_data = expect_rd;
	assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
	assert_non_null(a);
	free(tab);
	policy_free(p);
	return a;
}

static bool
failed(const appraisal *a, const char *name)
{
	for (size_t i = 0; i < a->n_checks; i++)
		if (!a->checks[i].ok && strcmp(a->checks[i].name, name) == 0)
			return true;
	return false;
}

static const appraisal_check *
find(const appraisal *a, const char *name)
{
	for (size_t i = 0; i < a->n_checks; i++)
		if (strcmp(a->checks[i].name, name) == 0)
			return &a->checks[i];
	return NULL;
}

/* Expect exactly one failing rule `name`, contraindicated. */
static void
expect_only(struct fixture *fx, const struct rfields *f, const char *extra, const char *name)
{
	appraisal *a = run(fx, f, extra, NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);

	if (a->n_failed != 1 || !failed(a, name) || a->status != EAR_CONTRAINDICATED) {
		char *j = json_dumps(appraisal_to_json(a, false), JSON_COMPACT);

		fail_msg("expected only %s to fail, got %s", name, j);
	}
	assert_string_equal(appraisal_first_failure(a)->name, name);
	appraisal_free(a);
}

static void
test_appraise_affirming(void **state)
{
	struct fixture *fx = *state;
	struct rfields f;
	appraisal *a;
	json_t *claims;

	rfields_default(&f, SNP_PRODUCT_GENOA);
	a = run(fx, &f, "\"min_tcb\":{\"genoa\":{\"bootloader\":3,\"tee\":0,\"snp\":8,\"microcode\":115}},"
			"\"tcb_apply\":[\"reported\",\"committed\",\"launch\",\"current\"],"
			"\"min_firmware\":{\"major\":1,\"minor\":55,\"build\":7}",
		NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
	if (a->status != EAR_AFFIRMING) {
		char *j = json_dumps(appraisal_to_json(a, false), JSON_COMPACT);

		fail_msg("honest report: %s", j);
	}
	assert_int_equal(a->n_failed, 0);
	assert_non_null(find(a, "evidence.verify"));
	assert_non_null(find(a, "tcb.launch.microcode"));
	assert_non_null(find(a, "tcb.current.snp"));
	assert_null(appraisal_first_failure(a));
	assert_non_null(claims = appraisal_report_claims(a));
	assert_string_equal(json_string_value(json_object_get(claims, "product")), "genoa");
	assert_string_equal(json_string_value(json_object_get(claims, "measurement")), MEAS_A);
	assert_int_equal(json_integer_value(json_object_get(
				 json_object_get(claims, "reported_tcb"), "snp")),
			 8);
	assert_string_equal(json_string_value(json_object_get(claims, "signing_key")), "vcek");
	json_decref(claims);
	appraisal_free(a);
}

static void
test_appraise_each_rule(void **state)
{
	struct fixture *fx = *state;
	struct rfields f;
	const char *mins = "\"min_tcb\":{\"genoa\":{\"bootloader\":3,\"tee\":0,\"snp\":8,\"microcode\":115}}";
	snp_tcb t;

	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.measurement_byte = 0xcc;
	expect_only(fx, &f, "", "measurement");

	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.policy |= SNP_POLICY_DEBUG;
	expect_only(fx, &f, "", "policy.debug");
	/* ... allowed when the policy says so */
	{
		appraisal *a = run(fx, &f, "\"guest_policy\":{\"allow_debug\":true}", NULL, NULL, 0,
				   SNP_CERT_KIND_VCEK, NULL, NULL);
		assert_int_equal(a->status, EAR_AFFIRMING);
		appraisal_free(a);
	}
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.policy |= SNP_POLICY_MIGRATE_MA;
	expect_only(fx, &f, "", "policy.migration_agent");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.policy |= SNP_POLICY_SMT;
	expect_only(fx, &f, "\"guest_policy\":{\"allow_smt\":false}", "policy.smt");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	expect_only(fx, &f, "\"guest_policy\":{\"require_single_socket\":true}", "policy.single_socket");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.policy |= 0x0102; /* ABI 1.2 */
	expect_only(fx, &f, "\"guest_policy\":{\"min_abi_major\":1,\"min_abi_minor\":3}", "policy.abi");

	/* Reported TCB below the minimum, each component (the VCEK vouches for bl 3 tee 0 snp 8 ucode 115). */
	rfields_default(&f, SNP_PRODUCT_GENOA);
	expect_only(fx, &f, "\"min_tcb\":{\"genoa\":{\"bootloader\":4}},\"tcb_apply\":[\"reported\"]", "tcb.reported.bootloader");
	expect_only(fx, &f, "\"min_tcb\":{\"genoa\":{\"tee\":1}},\"tcb_apply\":[\"reported\"]", "tcb.reported.tee");
	expect_only(fx, &f, "\"min_tcb\":{\"genoa\":{\"snp\":9}},\"tcb_apply\":[\"reported\"]", "tcb.reported.snp");
	expect_only(fx, &f, "\"min_tcb\":{\"genoa\":{\"microcode\":116}},\"tcb_apply\":[\"reported\"]", "tcb.reported.microcode");
	/* Committed and launch TCB below the minimum (REPORTED stays the VCEK's). */
	snp_tcb_decode(default_tcb(SNP_PRODUCT_GENOA), SNP_PRODUCT_GENOA, &t);
	t.snp = 7;
	f.committed_tcb = snp_tcb_encode(&t, SNP_PRODUCT_GENOA);
	expect_only(fx, &f, mins, "tcb.committed.snp");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	t.snp = 8;
	t.microcode = 100;
	f.launch_tcb = snp_tcb_encode(&t, SNP_PRODUCT_GENOA);
	{
		char ex[512];

		(void)snprintf(ex, sizeof(ex), "%s,\"tcb_apply\":[\"launch\"]", mins);
		expect_only(fx, &f, ex, "tcb.launch.microcode");
		/* Not applied by default (reported, committed). */
		appraisal *a = run(fx, &f, mins, NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
		assert_int_equal(a->status, EAR_AFFIRMING);
		appraisal_free(a);
		/* A warn rule turns the verdict into "warning". */
		(void)snprintf(ex, sizeof(ex), "%s,\"tcb_apply\":[\"launch\"],\"warn_rules\":[\"tcb.launch.\"]",
			       mins);
		a = run(fx, &f, ex, NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
		assert_int_equal(a->status, EAR_WARNING);
		assert_true(failed(a, "tcb.launch.microcode"));
		appraisal_free(a);
	}

	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.vmpl = 1;
	expect_only(fx, &f, "", "vmpl");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.guest_svn = 2;
	expect_only(fx, &f, "\"min_guest_svn\":3", "guest_svn");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.host_data_byte = 0x11;
	expect_only(fx, &f, "\"host_data\":[\"" "0000000000000000000000000000000000000000000000000000000000000000" "\"]",
		    "host_data");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	expect_only(fx, &f, "\"family_id\":\"01000000000000000000000000000000\"", "family_id");
	expect_only(fx, &f, "\"image_id\":\"01000000000000000000000000000000\"", "image_id");
	expect_only(fx, &f, "\"id_key_digests\":[\"" MEAS_B "\"]", "id_key_digest");
	expect_only(fx, &f, "\"author_key_digests\":[\"" MEAS_B "\"]", "author_key_digest");
	{
		appraisal *a = run(fx, &f, "\"min_firmware\":{\"major\":1,\"minor\":55,\"build\":8}",
				   NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);

		assert_int_equal(a->n_failed, 2);
		assert_true(failed(a, "firmware.current") && failed(a, "firmware.committed"));
		assert_string_equal(find(a, "firmware.current")->actual, "1.55.7");
		assert_string_equal(find(a, "firmware.current")->expected, ">= 1.55.8");
		appraisal_free(a);
	}
	f.platform_info = 0x4;
	expect_only(fx, &f, "\"platform_info\":{\"forbidden\":\"0x4\"}", "platform_info");
	expect_only(fx, &f, "\"platform_info\":{\"required\":\"0x5\"}", "platform_info");
	rfields_default(&f, SNP_PRODUCT_GENOA);
	expect_only(fx, &f, "\"products\":[\"milan\"]", "product");
	expect_only(fx, &f, "\"report_versions\":[2,5]", "report_version");
	/* VLEK not allowed by default (and allowed when listed). */
	f.signing_key = SNP_SIGNING_KEY_VLEK;
	{
		appraisal *a = run(fx, &f, "", fx->vlek_key, fx->vlek_der, fx->vlek_len,
				   SNP_CERT_KIND_VLEK, NULL, NULL);
		assert_int_equal(a->n_failed, 1);
		assert_true(failed(a, "signing_key"));
		assert_int_equal(a->status, EAR_CONTRAINDICATED);
		appraisal_free(a);
		a = run(fx, &f, "\"signing_keys\":[\"vlek\"]", fx->vlek_key, fx->vlek_der, fx->vlek_len,
			SNP_CERT_KIND_VLEK, NULL, NULL);
		assert_int_equal(a->status, EAR_AFFIRMING);
		appraisal_free(a);
	}
}

static void
flip_measurement(uint8_t *rep)
{
	rep[0x90] ^= 1;
}

static void
test_appraise_evidence(void **state)
{
	struct fixture *fx = *state;
	struct rfields f;
	appraisal *a;
	uint8_t rd[64], other[64];
	const appraisal_check *c;
	appraise_input in = { 0 };
	policy *p;
	uint8_t junk[100] = { 0 };

	/* Tampered report: signature. */
	rfields_default(&f, SNP_PRODUCT_GENOA);
	a = run(fx, &f, "", NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, flip_measurement);
	assert_true(failed(a, "evidence.signature"));
	assert_int_equal(a->status, EAR_CONTRAINDICATED);
	appraisal_free(a);
	/* Signed by a key the VCEK does not hold. */
	a = run(fx, &f, "", fx->vlek_key, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
	assert_true(failed(a, "evidence.signature"));
	appraisal_free(a);
	/* A Milan VCEK (trusted Milan chain) for a Genoa report: product mismatch or chain. */
	a = run(fx, &f, "", fx->milan_key, fx->milan_der, fx->milan_len, SNP_CERT_KIND_VCEK, NULL,
		NULL);
	assert_true(failed(a, "evidence.product") || failed(a, "evidence.chain"));
	assert_int_equal(a->status, EAR_CONTRAINDICATED);
	appraisal_free(a);
	/* Chip id not the VCEK's. */
	{
		uint8_t chip[64];

		memcpy(chip, testca_default_hwid(), 64);
		chip[3] ^= 0x40;
		f.chip = chip;
		a = run(fx, &f, "", NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
		assert_true(failed(a, "evidence.chip_id"));
		appraisal_free(a);
		f.chip = testca_default_hwid();
	}
	/* REPORT_DATA binding: exact match required, both values named. */
	memset(rd, 0x5a, 48);
	memset(rd + 48, 0, 16);
	f.report_data = rd;
	a = run(fx, &f, "", NULL, NULL, 0, SNP_CERT_KIND_VCEK, rd, NULL);
	assert_int_equal(a->status, EAR_AFFIRMING);
	assert_non_null(c = find(a, "binding.report_data"));
	assert_true(c->ok);
	appraisal_free(a);
	memcpy(other, rd, 64);
	other[63] = 1; /* the 16 trailing bytes must be zero */
	a = run(fx, &f, "\"warn_rules\":[\"binding.report_data\"]", NULL, NULL, 0, SNP_CERT_KIND_VCEK,
		other, NULL);
	assert_true(failed(a, "binding.report_data"));
	assert_int_equal(a->status, EAR_CONTRAINDICATED); /* never downgraded to a warning */
	c = appraisal_first_failure(a);
	assert_string_equal(c->name, "binding.report_data");
	assert_non_null(strstr(c->expected, "01"));
	assert_non_null(strstr(c->actual, "5a5a"));
	appraisal_free(a);
	/* Several failures are all reported. */
	rfields_default(&f, SNP_PRODUCT_GENOA);
	f.measurement_byte = 0x01;
	f.vmpl = 2;
	f.policy |= SNP_POLICY_DEBUG;
	a = run(fx, &f, "", NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
	assert_int_equal(a->n_failed, 3);
	assert_true(failed(a, "measurement") && failed(a, "vmpl") && failed(a, "policy.debug"));
	appraisal_free(a);
	/* Malformed evidence is a verdict, not an error. */
	p = mkpolicy("");
	in.report = junk;
	in.report_len = sizeof(junk);
	assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
	assert_true(failed(a, "evidence.format"));
	assert_null(a->report);
	assert_null(appraisal_report_claims(a));
	appraisal_free(a);
	/* No certificate table for a chip whose VCEK was never verified, offline, no
	 * cache: collateral unavailable (503), not a verdict. */
	{
		uint8_t rep[SNP_REPORT_SIZE], unseen[SNP_CHIP_ID_LEN];

		memcpy(unseen, testca_default_hwid(), sizeof(unseen));
		unseen[1] ^= 0x80;
		f.chip = unseen;
		make_report(rep, &f, fx->vcek_key);
		in.report = rep;
		in.report_len = sizeof(rep);
		assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
		assert_true(a->unavailable);
		assert_non_null(strstr(a->unavailable_detail, "kds_offline"));
		appraisal_free(a);
		/* A malformed certificate table is the evidence's fault. */
		in.certs = junk;
		in.certs_len = sizeof(junk);
		junk[0] = 1;
		assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
		assert_true(failed(a, "evidence.certs"));
		appraisal_free(a);
	}
	policy_free(p);
}


/* Appraised for real: collateral found, signature and chain verified, no rule failed. */
static void
assert_verified(const appraisal *a)
{
	const appraisal_check *v = find(a, "evidence.verify");

	assert_false(a->unavailable);
	assert_non_null(v);
	assert_true(v->ok);
	assert_int_equal(a->status, EAR_AFFIRMING);
}

/*
 * A report without a certificate table takes its VCEK from the disk cache
 * once; later reports of the same chip and TCB use the parsed VCEK without
 * the file.  Another TCB or another chip is not served from memory.
 */
static void
test_vcek_by_chip(void **state)
{
	struct fixture *fx = *state;
	collateral_opts co = { 0 };
	collateral *coll = NULL;
	char err[512], hw[2 * SNP_CHIP_ID_LEN + 1], path[1400], *cache = ts_scratch_dir("attestd-cache");
	uint8_t rep[SNP_REPORT_SIZE], other_chip[SNP_CHIP_ID_LEN], *tab;
	size_t tlen;
	unsigned long fetches, failures, hits;
	appraise_input in = { 0 };
	struct rfields f;
	appraisal *a = NULL;
	policy *p = mkpolicy("");
	FILE *fp;

	rfields_default(&f, SNP_PRODUCT_GENOA);
	hex_encode(testca_default_hwid(), SNP_CHIP_ID_LEN, hw);
	(void)snprintf(path, sizeof(path), "mkdir -p '%s/vcek/genoa/%s'", cache, hw);
	assert_int_equal(system(path), 0);
	(void)snprintf(path, sizeof(path), "%s/vcek/genoa/%s/%016llx.der", cache, hw,
		       (unsigned long long)f.reported_tcb);
	assert_non_null(fp = fopen(path, "wb"));
	assert_int_equal(fwrite(fx->vcek_der, 1, fx->vcek_len, fp), fx->vcek_len);
	assert_int_equal(fclose(fp), 0);
	co.offline = true;
	co.extra_roots_dir = fx->roots;
	co.no_builtin_pins = true;
	co.cache_dir = cache;
	if (collateral_new(&co, &coll, err, sizeof(err)) != 0)
		fail_msg("collateral_new: %s", err);
	make_report(rep, &f, fx->vcek_key);
	in.report = rep;
	in.report_len = sizeof(rep);
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_verified(a);
	appraisal_free(a);
	collateral_stats(coll, &fetches, &failures, &hits);
	assert_int_equal(fetches, 0);
	assert_int_equal(hits, 1);
	/* The file is gone: the same chip and TCB are still known. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_verified(a);
	appraisal_free(a);
	collateral_stats(coll, &fetches, &failures, &hits);
	assert_int_equal(hits, 2);
	/* Another reported TCB: no VCEK in memory, none on disk, offline. */
	f.reported_tcb -= 1;
	make_report(rep, &f, fx->vcek_key);
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_true(a->unavailable);
	appraisal_free(a);
	/* Another chip with the first TCB: not served either. */
	rfields_default(&f, SNP_PRODUCT_GENOA);
	memcpy(other_chip, testca_default_hwid(), sizeof(other_chip));
	other_chip[0] ^= 1;
	f.chip = other_chip;
	make_report(rep, &f, fx->vcek_key);
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_true(a->unavailable);
	appraisal_free(a);
	collateral_free(coll);
	coll = NULL;

	/* From a certificate table: remembered (in memory and in the disk cache)
	 * once it verified a report, not before. */
	(void)snprintf(path, sizeof(path), "rm -rf '%s'/vcek", cache);
	assert_int_equal(system(path), 0);
	if (collateral_new(&co, &coll, err, sizeof(err)) != 0)
		fail_msg("collateral_new: %s", err);
	(void)snprintf(path, sizeof(path), "%s/vcek/genoa/%s/%016llx.der", cache, hw,
		       (unsigned long long)default_tcb(SNP_PRODUCT_GENOA));
	rfields_default(&f, SNP_PRODUCT_GENOA);
	tab = table_with(SNP_CERT_KIND_VCEK, fx->vcek_der, fx->vcek_len, &tlen);
	make_report(rep, &f, fx->vlek_key); /* not the VCEK's key */
	in.certs = tab;
	in.certs_len = tlen;
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_true(failed(a, "evidence.signature"));
	appraisal_free(a);
	make_report(rep, &f, fx->vcek_key);
	in.certs = NULL;
	in.certs_len = 0;
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_true(a->unavailable); /* the table that failed taught nothing */
	assert_int_not_equal(access(path, F_OK), 0);
	appraisal_free(a);
	in.certs = tab;
	in.certs_len = tlen;
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_verified(a);
	appraisal_free(a);
	in.certs = NULL;
	in.certs_len = 0;
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_verified(a); /* now known by chip and TCB */
	appraisal_free(a);
	collateral_free(coll);
	coll = NULL;
	/* ... and on disk, with the VCEK's exact bytes: a new collateral (attestd
	 * restarted) needs no table either. */
	{
		uint8_t *got = NULL;
		size_t glen = 0;

		assert_int_equal(file_read_all(path, 1 << 20, &got, &glen), 0);
		assert_int_equal(glen, fx->vcek_len);
		assert_memory_equal(got, fx->vcek_der, glen);
		free(got);
	}
	if (collateral_new(&co, &coll, err, sizeof(err)) != 0)
		fail_msg("collateral_new: %s", err);
	assert_int_equal(appraise(coll, p, &in, &a), 0);
	assert_verified(a);
	appraisal_free(a);
	free(tab);
	policy_free(p);
	collateral_free(coll);
	(void)snprintf(path, sizeof(path), "rm -rf '%s'", cache);
	assert_int_equal(system(path), 0);
	free(cache);
}

/* Revocation: a CRL in the certificate table listing the VCEK (or the ASK). */
static void
test_appraise_revoked(void **state)
{
	struct fixture *fx = *state;
	time_t now = time(NULL);
	testca_leaf o;
	uint8_t *vcek = NULL, *crl = NULL, *tab = NULL, rep[SNP_REPORT_SIZE];
	size_t vlen = 0, clen = 0, tlen = 0;
	EVP_PKEY *key = NULL;
	snp_certtable *t = NULL;
	struct rfields f;
	policy *p = mkpolicy("\"require_crl\":true");
	appraise_input in = { 0 };
	appraisal *a = NULL;
	long serial = 77;

	testca_leaf_defaults(&o, fx->ca, SNP_ROLE_VCEK);
	o.serial = serial;
	assert_int_equal(testca_issue_leaf(&o, &vcek, &vlen, &key), 0);
	rfields_default(&f, SNP_PRODUCT_GENOA);
	make_report(rep, &f, key);
	in.report = rep;
	in.report_len = sizeof(rep);

	/* require_crl, no CRL anywhere, KDS disabled: collateral unavailable (503). */
	tab = table_with(SNP_CERT_KIND_VCEK, vcek, vlen, &tlen);
	in.certs = tab;
	in.certs_len = tlen;
	assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
	assert_true(a->unavailable);
	appraisal_free(a);
	free(tab);

	/* An ARK-signed CRL listing the VCEK's serial, delivered in the table. */
	assert_int_equal(testca_make_crl(fx->ca->ark, fx->ca->ark_key, TESTCA_SIG_PSS_SHA384, &serial,
					 1, now - 60, now + 86400, &crl, &clen),
			 0);
	assert_int_equal(snp_certtable_new(&t), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, vcek, vlen), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_CRL, crl, clen), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, &tlen), SNP_OK);
	assert_non_null(tab = malloc(tlen));
	assert_int_equal(snp_certtable_serialize(t, tab, &tlen), SNP_OK);
	in.certs = tab;
	in.certs_len = tlen;
	assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
	assert_false(a->unavailable);
	assert_true(failed(a, "evidence.revoked"));
	assert_int_equal(a->status, EAR_CONTRAINDICATED);
	appraisal_free(a);
	/* The honest VCEK (serial 0) is not revoked by that CRL. */
	policy_free(p);
	p = mkpolicy("");
	{
		appraisal *b = run(fx, &f, "\"require_crl\":true", NULL, NULL, 0, SNP_CERT_KIND_VCEK,
				   NULL, NULL);

		assert_int_equal(b->status, EAR_AFFIRMING);
		assert_false(b->unavailable);
		appraisal_free(b);
	}
	/* A CRL that is not signed by the ARK is the evidence's fault. */
	free(crl);
	crl = NULL;
	assert_int_equal(testca_make_crl(fx->ca->ask, fx->ca->ask_key, TESTCA_SIG_PSS_SHA384, &serial,
					 1, now - 60, now + 86400, &crl, &clen),
			 0);
	snp_certtable_free(t);
	t = NULL;
	free(tab);
	assert_int_equal(snp_certtable_new(&t), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_VCEK, vcek, vlen), SNP_OK);
	assert_int_equal(snp_certtable_add(t, SNP_CERT_KIND_CRL, crl, clen), SNP_OK);
	assert_int_equal(snp_certtable_serialize(t, NULL, &tlen), SNP_OK);
	assert_non_null(tab = malloc(tlen));
	assert_int_equal(snp_certtable_serialize(t, tab, &tlen), SNP_OK);
	in.certs = tab;
	in.certs_len = tlen;
	assert_int_equal(appraise(fx->coll, p, &in, &a), 0);
	assert_true(failed(a, "evidence.chain"));
	assert_non_null(strstr(find(a, "evidence.chain")->actual, "CRL"));
	appraisal_free(a);
	snp_certtable_free(t);
	policy_free(p);
	free(tab);
	free(crl);
	free(vcek);
	EVP_PKEY_free(key);
}

/* ------------------------------------------------------------------ token */

static void
test_token(void **state)
{
	struct fixture *fx = *state;
	char *dir = ts_scratch_dir("attestd-state"), path[1024], *jwt = NULL, jti[TOKEN_JTI_LEN + 1];
	char err[512], kid1[64];
	token_signer *s = NULL;
	json_t *jwks, *k0, *tee, *claims, *cpu0;
	struct rfields f;
	appraisal *a;
	token_params tp = { 0 };
	cjose_err ce;
	cjose_jws_t *jws;
	cjose_jwk_t *pub;
	char *ktext;
	uint8_t *plain = NULL;
	size_t plen = 0;
	struct stat st;
	uint8_t *buf;
	size_t blen;
	json_t *bind;

	assert_int_equal(token_signer_open(dir, 600, &s, err, sizeof(err)), 0);
	(void)snprintf(path, sizeof(path), "%s/signing-key.jwk", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	(void)snprintf(kid1, sizeof(kid1), "%s", token_signer_kid(s));
	assert_int_equal(strlen(kid1), 43);
	/* Reopening keeps the key. */
	token_signer_free(s);
	assert_int_equal(token_signer_open(dir, 600, &s, err, sizeof(err)), 0);
	assert_string_equal(token_signer_kid(s), kid1);
	jwks = token_signer_jwks(s);
	assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 1);
	k0 = json_array_get(json_object_get(jwks, "keys"), 0);
	assert_null(json_object_get(k0, "d"));
	assert_string_equal(json_string_value(json_object_get(k0, "kid")), kid1);
	assert_string_equal(json_string_value(json_object_get(k0, "alg")), "ES256");

	ts_require_vectors();
	buf = ts_read_vector("protocol/binding.json", &blen);
	assert_non_null(bind = json_loadb((const char *)buf, blen, 0, NULL));
	free(buf);
	tee = json_object_get(bind, "tee_pubkey");
	assert_int_equal(token_check_tee_pubkey(tee, err, sizeof(err)), 0);
	assert_int_equal(token_check_tee_pubkey(json_object_get(bind, "tee_private_jwk"), err,
						sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "private"));
	{
		json_t *bad = json_deep_copy(tee);

		json_object_set_new(bad, "x", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
		assert_int_equal(token_check_tee_pubkey(bad, err, sizeof(err)), -1); /* off the curve */
		json_object_set_new(bad, "crv", json_string("P-384"));
		assert_int_equal(token_check_tee_pubkey(bad, err, sizeof(err)), -1);
		json_decref(bad);
	}
	{
		/* A coordinate at or above the field prime is refused even when it
		 * reduces to a point on the curve: find a point with a small x, so
		 * that x + p still fits in 32 bytes; (x, y) passes, (x + p, y) not. */
		EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
		EC_POINT *pt = EC_POINT_new(g);
		BIGNUM *x = BN_new(), *y = BN_new(), *xp = BN_new();
		unsigned char bx[32], by[32];
		char tx[44], ty[44];
		json_t *alias;
		unsigned long w;

		assert_non_null(g);
		assert_non_null(xp);
		for (w = 1; w < 64; w++) {
			assert_int_equal(BN_set_word(x, w), 1);
			if (EC_POINT_set_compressed_coordinates(g, pt, x, 0, NULL) == 1)
				break;
		}
		assert_true(w < 64);
		assert_int_equal(EC_POINT_get_affine_coordinates(g, pt, x, y, NULL), 1);
		assert_int_equal(BN_bn2binpad(y, by, 32), 32);
		b64url_encode(by, 32, ty);
		assert_int_equal(BN_bn2binpad(x, bx, 32), 32);
		b64url_encode(bx, 32, tx);
		alias = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-256", "x", tx, "y", ty);
		assert_int_equal(token_check_tee_pubkey(alias, err, sizeof(err)), 0);
		assert_int_equal(BN_add(xp, x, EC_GROUP_get0_field(g)), 1);
		assert_int_equal(BN_bn2binpad(xp, bx, 32), 32);
		b64url_encode(bx, 32, tx);
		json_object_set_new(alias, "x", json_string(tx));
		assert_int_equal(token_check_tee_pubkey(alias, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "not a point on P-256"));
		json_decref(alias);
		BN_free(x);
		BN_free(y);
		BN_free(xp);
		EC_POINT_free(pt);
		EC_GROUP_free(g);
	}
	rfields_default(&f, SNP_PRODUCT_GENOA);
	a = run(fx, &f, "", NULL, NULL, 0, SNP_CERT_KIND_VCEK, NULL, NULL);
	assert_int_equal(a->status, EAR_AFFIRMING);
	tp.issuer = "https://attestd.test";
	tp.now = 1795000000;
	tp.lifetime = 300;
	tp.nonce = json_string_value(json_object_get(bind, "nonce"));
	tp.tee_pubkey = tee;
	tp.appraisal = a;
	assert_int_equal(token_issue(s, &tp, &jwt, jti), 0);
	assert_int_equal(strlen(jti), TOKEN_JTI_LEN);

	/* Verify with cjose against the published JWKS key. */
	assert_non_null(ktext = json_dumps(k0, JSON_COMPACT));
	assert_non_null(pub = cjose_jwk_import(ktext, strlen(ktext), &ce));
	assert_non_null(jws = cjose_jws_import(jwt, strlen(jwt), &ce));
	assert_true(cjose_jws_verify(jws, pub, &ce));
	assert_true(cjose_jws_get_plaintext(jws, &plain, &plen, &ce));
	assert_non_null(claims = json_loadb((const char *)plain, plen, 0, NULL));
	assert_string_equal(json_string_value(json_object_get(claims, "iss")), "https://attestd.test");
	assert_int_equal(json_integer_value(json_object_get(claims, "iat")), 1795000000);
	assert_int_equal(json_integer_value(json_object_get(claims, "exp")), 1795000300);
	assert_string_equal(json_string_value(json_object_get(claims, "jti")), jti);
	assert_string_equal(json_string_value(json_object_get(claims, "eat_profile")), TOKEN_EAT_PROFILE);
	assert_string_equal(json_string_value(json_object_get(claims, "eat_nonce")), tp.nonce);
	assert_non_null(json_object_get(json_object_get(claims, "ear.verifier-id"), "developer"));
	assert_true(json_equal(json_object_get(json_object_get(claims, "cnf"), "jwk"), tee));
	cpu0 = json_object_get(json_object_get(claims, "submods"), "cpu0");
	assert_string_equal(json_string_value(json_object_get(cpu0, "ear.status")), "affirming");
	assert_string_equal(json_string_value(json_object_get(cpu0, "ear.appraisal-policy-id")),
			    a->policy_digest);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(cpu0, "ear.veraison.annotated-evidence"), "measurement")),
			    MEAS_A);
	/* The header names the key and the algorithm. */
	{
		cjose_header_t *h = cjose_jws_get_protected(jws);

		assert_string_equal(cjose_header_get(h, CJOSE_HDR_ALG, &ce), "ES256");
		assert_string_equal(cjose_header_get(h, CJOSE_HDR_KID, &ce), kid1);
	}
	cjose_jws_release(jws);
	/* A flipped payload byte no longer verifies. */
	{
		char *dot = strchr(jwt, '.');

		dot[5] = dot[5] == 'A' ? 'B' : 'A';
		jws = cjose_jws_import(jwt, strlen(jwt), &ce);
		assert_true(jws == NULL || !cjose_jws_verify(jws, pub, &ce));
		cjose_jws_release(jws);
	}
	cjose_jwk_release(pub);
	free(ktext);
	json_decref(claims);
	json_decref(jwks);
	json_decref(bind);
	appraisal_free(a);
	free(jwt);
	token_signer_free(s);
	token_signer_free(NULL);
	/* Rotation: the old key stays in the JWKS (public half only) beside the new one,
	 * until it is older than the retention. */
	assert_int_equal(token_signer_retire(dir, err, sizeof(err)), 0);
	assert_int_equal(token_signer_open(dir, 600, &s, err, sizeof(err)), 0);
	assert_string_not_equal(token_signer_kid(s), kid1);
	jwks = token_signer_jwks(s);
	assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 2);
	k0 = json_array_get(json_object_get(jwks, "keys"), 1);
	assert_string_equal(json_string_value(json_object_get(k0, "kid")), kid1);
	assert_null(json_object_get(k0, "d"));
	json_decref(jwks);
	token_signer_free(s);
	{
		char rpath[1200];
		struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };

		(void)snprintf(rpath, sizeof(rpath), "%s/retired-keys/%s.jwk", dir, kid1);
		assert_int_equal(utimensat(AT_FDCWD, rpath, old, 0), 0);
		assert_int_equal(token_signer_open(dir, 600, &s, err, sizeof(err)), 0);
		jwks = token_signer_jwks(s);
		assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 1);
		assert_int_not_equal(access(rpath, F_OK), 0); /* pruned */
		json_decref(jwks);
		token_signer_free(s);
	}
	free(dir);
}

/* ------------------------------------------------------------------ config */

static void
expect_config_error(const char *text, const char *needle)
{
	char *dir = ts_scratch_dir("attestd-cfg"), path[1024], err[ATTESTD_CONFIG_ERR_MAX];
	attestd_config c;
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/a.ini", dir);
	assert_non_null(f = fopen(path, "w"));
	(void)fputs(text, f);
	(void)fclose(f);
	if (needle == NULL) {
		if (attestd_config_load(path, &c, err, sizeof(err)) != 0)
			fail_msg("config %s: %s", text, err);
	} else {
		assert_int_equal(attestd_config_load(path, &c, err, sizeof(err)), -1);
		if (strstr(err, needle) == NULL || strstr(err, "a.ini") == NULL)
			fail_msg("config error \"%s\" lacks \"%s\"", err, needle);
	}
	(void)unlink(path);
	(void)rmdir(dir);
	free(dir);
}

static void
test_config(void **state)
{
	(void)state;
	expect_config_error("state_dir = /x\npolicy = /p\nplain_http = yes\nlisten = 127.0.0.1:0\n", NULL);
	expect_config_error("[attestd]\nstate_dir = /x\npolicy = /p\ntls_cert = c\ntls_key = k\n", NULL);
	expect_config_error("state_dir = /x\npolicy = /p\nplain_http = yes\nlisten = 0.0.0.0:80\n",
			    "plain_http");
	expect_config_error("state_dir = /x\npolicy = /p\n", "tls_cert");
	expect_config_error("state_dir = /x\npolicy = /p\nplain_http = yes\nlisten = 127.0.0.1:0\n"
			    "token_lifetim = 5\n",
			    ":5: key \"token_lifetim\": unknown key");
	expect_config_error("state_dir = /x\n\nnonce_ttl = -1\n", ":3: key \"nonce_ttl\"");
	expect_config_error("state_dir = /x\nlisten = nowhere\n", ":2: key \"listen\"");
	expect_config_error("plain_http = maybe\n", ":1: key \"plain_http\"");
	expect_config_error("policy = /p\nplain_http = yes\n", "key \"state_dir\": required");
	expect_config_error("[other]\nx = 1\n", "section [other]");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jcs_binding_vector),
		cmocka_unit_test(test_jcs_rules),
		cmocka_unit_test(test_nonce_store),
		cmocka_unit_test(test_nonce_store_many),
		cmocka_unit_test(test_policy_parse),
		cmocka_unit_test(test_config),
		cmocka_unit_test_setup_teardown(test_appraise_affirming, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_appraise_each_rule, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_appraise_evidence, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_appraise_revoked, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_vcek_by_chip, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_token, fixture_setup, fixture_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
