/*
 * Unit tests: vhsmd's request table (src/vhsm/ops.c) end to end in memory:
 * frames in, frames out, with a real policy.  Signatures are checked with
 * OpenSSL against the public key the vHSM hands out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>

#include "vhsm/vhsmd.h"

/* vhsmd_log lives in vhsmd.c; the tests collect audit lines instead. */
static int audit_denials;

void
vhsmd_log(const char *level, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(level, "audit") == 0 && strncmp(fmt, "deny", 4) == 0)
		audit_denials++;
	va_start(ap, fmt);
	va_end(ap);
}

static struct vhsmd d;
static struct vhsm_principal app, other;

/* The answer to the last request. */
static struct vhsm_wbuf resp;
static struct vhsm_frame rf;

struct tlv {
	uint16_t tag;
	const void *p;
	size_t len;
};

#define U32(tag, v) { (tag), &(uint32_t){ (v) }, 4 } /* little-endian host only */
#define STR(tag, s) { (tag), (s), strlen(s) }
#define BYTES(tag, p, n) { (tag), (p), (n) }

/* Send one request; return the status (0 or negative VHSM_E_*). */
static int
req(const struct vhsm_principal *w, uint8_t op, const struct tlv *t, size_t n)
{
	struct vhsm_wbuf q;
	struct vhsm_frame f;
	size_t used, i;
	uint32_t st;

	vhsm_wbuf_init(&q, VHSM_HDR_LEN + VHSM_BODY_MAX);
	vhsm_wbuf_frame(&q, op, 77);
	for (i = 0; i < n; i++)
		vhsm_wbuf_tlv(&q, t[i].tag, t[i].p, t[i].len);
	assert_int_equal(vhsm_wbuf_finish(&q), 0);
	assert_int_equal(vhsm_frame_decode(q.p, q.len, false, &f, &used), 0);
	vhsm_wbuf_free(&resp);
	vhsm_wbuf_init(&resp, 8u << 20);
	assert_int_equal(vhsmd_handle(&d, w, &f, &resp), 0);
	vhsm_wbuf_free(&q);
	assert_int_equal(vhsm_frame_decode(resp.p, resp.len, true, &rf, &used), 0);
	assert_int_equal(used, resp.len);
	assert_int_equal(rf.type, VHSM_RESPONSE | op);
	assert_int_equal(rf.id, 77);
	assert_int_equal(vhsm_tlv_u32(rf.body, rf.body_len, VHSM_T_STATUS, &st), 0);
	return -(int)st;
}

static const uint8_t *
get(uint16_t tag, size_t *len)
{
	const uint8_t *p = NULL;

	assert_int_equal(vhsm_tlv_find(rf.body, rf.body_len, tag, &p, len), 0);
	return p;
}

static uint32_t
get_u32(uint16_t tag)
{
	uint32_t v = 0;

	assert_int_equal(vhsm_tlv_u32(rf.body, rf.body_len, tag, &v), 0);
	return v;
}

static const char *
message(void)
{
	static char m[256];
	size_t l;
	const uint8_t *p = get(VHSM_T_MESSAGE, &l);

	snprintf(m, sizeof(m), "%.*s", (int)l, (const char *)p);
	return m;
}

static int
setup(void **state)
{
	static const char pol[] =
		"{\"rules\":[{\"principal\":{\"uid\":1000},\"keys\":[\"app/*\"],\"operations\":[\"*\"]},"
		"{\"principal\":{\"uid\":2000},\"keys\":[\"pub/*\"],\"operations\":[\"verify\",\"get_public\"]}]}";
	char err[256];

	(void)state;
	memset(&d, 0, sizeof(d));
	assert_int_equal(vhsm_policy_parse(pol, strlen(pol), &d.policy, err, sizeof(err)), 0);
	memset(&app, 0, sizeof(app));
	app.uid = 1000;
	app.gid = 1000;
	app.pid = 1;
	other = app;
	other.uid = 2000;
	audit_denials = 0;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	vhsmd_keys_clear(&d);
	vhsm_policy_free(d.policy);
	vhsm_wbuf_free(&resp);
	return 0;
}

static void
test_generate_sign_verify(void **state)
{
	static const char m[] = "message";
	struct tlv gen[] = { STR(VHSM_T_NAME, "app/sig"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P256) };
	struct tlv sig[] = { STR(VHSM_T_NAME, "app/sig"), BYTES(VHSM_T_DATA, m, 7) };
	struct tlv name[] = { STR(VHSM_T_NAME, "app/sig") };
	uint8_t s[256];
	size_t sl, pl;
	const uint8_t *pub;
	EVP_PKEY *pk;
	EVP_MD_CTX *ctx;

	(void)state;
	assert_int_equal(req(&app, VHSM_OP_GENERATE, gen, 2), 0);
	assert_int_equal(get_u32(VHSM_T_VERSION), 1);
	assert_int_equal(req(&app, VHSM_OP_GENERATE, gen, 2), VHSM_E_EXISTS);
	assert_int_equal(req(&app, VHSM_OP_SIGN, sig, 2), 0);
	{
		const uint8_t *tp_ = get(VHSM_T_SIGNATURE, &sl);

		memcpy(s, tp_, sl);
	}
	assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, name, 1), 0);
	assert_int_equal(get_u32(VHSM_T_KEY_TYPE), VHSM_KEY_EC_P256);
	assert_int_equal(get_u32(VHSM_T_ORIGIN), VHSM_ORIGIN_GENERATED);
	pub = get(VHSM_T_PUBKEY, &pl);
	pk = d2i_PUBKEY(NULL, &pub, (long)pl);
	assert_non_null(pk);
	ctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
	assert_int_equal(EVP_DigestVerify(ctx, s, sl, (const uint8_t *)m, 7), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pk);
	{
		struct tlv v[] = { STR(VHSM_T_NAME, "app/sig"), BYTES(VHSM_T_DATA, m, 7),
				   BYTES(VHSM_T_SIGNATURE, s, sl) };

		assert_int_equal(req(&app, VHSM_OP_VERIFY, v, 3), 0);
		assert_int_equal(get_u32(VHSM_T_VALID), 1);
		s[sl - 1] ^= 1;
		assert_int_equal(req(&app, VHSM_OP_VERIFY, v, 3), 0);
		assert_int_equal(get_u32(VHSM_T_VALID), 0);
	}
	/* Missing data is an argument error, not a crash. */
	assert_int_equal(req(&app, VHSM_OP_SIGN, name, 1), VHSM_E_ARGUMENT);
}

static void
test_denied_does_not_reveal_existence(void **state)
{
	struct tlv gen[] = { STR(VHSM_T_NAME, "app/secret"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256) };
	struct tlv exists[] = { STR(VHSM_T_NAME, "app/secret"), BYTES(VHSM_T_DATA, "x", 1) };
	struct tlv missing[] = { STR(VHSM_T_NAME, "app/nothing"), BYTES(VHSM_T_DATA, "x", 1) };
	char m1[256];

	(void)state;
	assert_int_equal(req(&app, VHSM_OP_GENERATE, gen, 2), 0);
	assert_int_equal(req(&other, VHSM_OP_ENCRYPT, exists, 2), VHSM_E_DENIED);
	snprintf(m1, sizeof(m1), "%s", message());
	assert_int_equal(req(&other, VHSM_OP_ENCRYPT, missing, 2), VHSM_E_DENIED);
	/* Same words apart from the name the caller chose. */
	assert_non_null(strstr(m1, "not permitted"));
	assert_non_null(strstr(message(), "not permitted"));
	assert_int_equal(audit_denials, 2);
	/* The owner is told the truth. */
	assert_int_equal(req(&app, VHSM_OP_ENCRYPT, missing, 2), VHSM_E_NOT_FOUND);
	/* list shows the other principal nothing. */
	assert_int_equal(req(&other, VHSM_OP_LIST, NULL, 0), 0);
	assert_int_equal(vhsm_tlv_find(rf.body, rf.body_len, VHSM_T_KEYINFO, &(const uint8_t *){ 0 },
				       &(size_t){ 0 }), -1);
	assert_int_equal(req(&app, VHSM_OP_LIST, NULL, 0), 0);
	{
		size_t l;
		const uint8_t *ki = get(VHSM_T_KEYINFO, &l), *n;
		size_t nl;

		assert_int_equal(vhsm_tlv_find(ki, l, VHSM_T_NAME, &n, &nl), 0);
		assert_int_equal(nl, 10);
		assert_memory_equal(n, "app/secret", 10);
	}
	/* random is an operation too: other has no rule for it. */
	{
		struct tlv r[] = { U32(VHSM_T_COUNT, 16) };

		assert_int_equal(req(&other, VHSM_OP_RANDOM, r, 1), VHSM_E_DENIED);
		assert_int_equal(req(&app, VHSM_OP_RANDOM, r, 1), 0);
		get(VHSM_T_DATA, &(size_t){ 0 });
	}
}

static void
test_rotate_retire_and_old_ciphertext(void **state)
{
	struct tlv gen[] = { STR(VHSM_T_NAME, "app/aes"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256) };
	struct tlv enc[] = { STR(VHSM_T_NAME, "app/aes"), BYTES(VHSM_T_DATA, "secret", 6),
			     BYTES(VHSM_T_AAD, "ctx", 3) };
	struct tlv name[] = { STR(VHSM_T_NAME, "app/aes") };
	uint8_t ct1[128];
	size_t l1, pl;
	const uint8_t *pt;

	(void)state;
	assert_int_equal(req(&app, VHSM_OP_GENERATE, gen, 2), 0);
	assert_int_equal(req(&app, VHSM_OP_ENCRYPT, enc, 3), 0);
	{
		const uint8_t *tp_ = get(VHSM_T_DATA, &l1);

		memcpy(ct1, tp_, l1);
	}
	assert_int_equal(req(&app, VHSM_OP_ROTATE, name, 1), 0);
	assert_int_equal(get_u32(VHSM_T_VERSION), 2);
	{
		struct tlv dec[] = { STR(VHSM_T_NAME, "app/aes"), BYTES(VHSM_T_DATA, ct1, l1),
				     BYTES(VHSM_T_AAD, "ctx", 3) };
		struct tlv ret[] = { STR(VHSM_T_NAME, "app/aes"), U32(VHSM_T_VERSION, 1) };

		/* New encryptions use version 2; the version-1 ciphertext still decrypts. */
		assert_int_equal(req(&app, VHSM_OP_ENCRYPT, enc, 3), 0);
		assert_int_equal(get_u32(VHSM_T_VERSION), 2);
		assert_int_equal(req(&app, VHSM_OP_DECRYPT, dec, 3), 0);
		pt = get(VHSM_T_DATA, &pl);
		assert_int_equal(pl, 6);
		assert_memory_equal(pt, "secret", 6);
		assert_int_equal(get_u32(VHSM_T_VERSION), 1);
		/* Retire version 1: now refused. */
		assert_int_equal(req(&app, VHSM_OP_RETIRE, ret, 2), 0);
		assert_int_equal(get_u32(VHSM_T_VERSIONS), 1);
		assert_int_equal(req(&app, VHSM_OP_DECRYPT, dec, 3), VHSM_E_RETIRED);
		/* Wrong AAD fails authentication. */
		assert_int_equal(req(&app, VHSM_OP_ENCRYPT, enc, 3), 0);
		{
			const uint8_t *tp_ = get(VHSM_T_DATA, &l1);

			memcpy(ct1, tp_, l1);
		}
		dec[2].len = 2;
		assert_int_equal(req(&app, VHSM_OP_DECRYPT, dec, 3), VHSM_E_DECRYPT);
	}
}

static void
test_attributes_enforced(void **state)
{
	(void)state;
	{
		/* Only opaque secrets may be exportable. */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/x"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P256),
				   U32(VHSM_T_FLAGS, VHSM_FLAG_EXPORTABLE) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 3), VHSM_E_ARGUMENT);
	}
	{
		/* Persistent needs a store (none configured here). */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/x"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P256),
				   U32(VHSM_T_FLAGS, VHSM_FLAG_PERSISTENT) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 3), VHSM_E_ARGUMENT);
	}
	{
		/* Usages beyond the type's are refused; a verify-only key cannot sign. */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/v"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_ED25519),
				   U32(VHSM_T_USAGES, VHSM_USAGE_ENCRYPT) };
		struct tlv s[] = { STR(VHSM_T_NAME, "app/v"), BYTES(VHSM_T_DATA, "m", 1) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 3), VHSM_E_ARGUMENT);
		g[2] = (struct tlv)U32(VHSM_T_USAGES, VHSM_USAGE_VERIFY);
		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 3), 0);
		assert_int_equal(req(&app, VHSM_OP_SIGN, s, 2), VHSM_E_USAGE);
	}
	{
		/* A key that requires attestation is not usable without it (Case B). */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/att"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P384),
				   U32(VHSM_T_MAX_AGE, 300) };
		struct tlv s[] = { STR(VHSM_T_NAME, "app/att"), BYTES(VHSM_T_DATA, "m", 1) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 3), 0);
		assert_int_equal(req(&app, VHSM_OP_SIGN, s, 2), VHSM_E_NOT_ATTESTED);
	}
	{
		/* Opaque secrets: readable only when exportable; key material never. */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/pass"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_OPAQUE),
				   U32(VHSM_T_FLAGS, VHSM_FLAG_EXPORTABLE), BYTES(VHSM_T_DATA, "luks-pass", 9) };
		struct tlv g2[] = { STR(VHSM_T_NAME, "app/tok"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_OPAQUE),
				    BYTES(VHSM_T_DATA, "api-token", 9) };
		struct tlv r1[] = { STR(VHSM_T_NAME, "app/pass") };
		struct tlv r2[] = { STR(VHSM_T_NAME, "app/tok") };
		struct tlv r3[] = { STR(VHSM_T_NAME, "app/v") };
		size_t l;
		const uint8_t *p;

		assert_int_equal(req(&app, VHSM_OP_IMPORT, g, 4), 0);
		assert_int_equal(req(&app, VHSM_OP_IMPORT, g2, 3), 0);
		assert_int_equal(req(&app, VHSM_OP_READ_SECRET, r1, 1), 0);
		p = get(VHSM_T_DATA, &l);
		assert_int_equal(l, 9);
		assert_memory_equal(p, "luks-pass", 9);
		assert_int_equal(req(&app, VHSM_OP_READ_SECRET, r2, 1), VHSM_E_NOT_EXPORTABLE);
		assert_int_equal(req(&app, VHSM_OP_READ_SECRET, r3, 1), VHSM_E_NOT_EXPORTABLE);
		assert_int_equal(vhsm_tlv_find(rf.body, rf.body_len, VHSM_T_DATA, &p, &l), -1);
	}
	{
		/* Bad names. */
		struct tlv g[] = { STR(VHSM_T_NAME, "app/a b"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 2), VHSM_E_ARGUMENT);
	}
}

static void
test_wrap_unwrap_derive_delete(void **state)
{
	struct tlv g[] = { STR(VHSM_T_NAME, "app/kek"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256) };
	static const uint8_t hk[32] = { 9, 8, 7, 6, 5, 4, 3, 2, 1 };
	uint8_t wrapped[64];
	size_t wl;

	(void)state;
	assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 2), 0);
	{
		struct tlv w[] = { STR(VHSM_T_NAME, "app/kek"), BYTES(VHSM_T_DATA, hk, 32) };

		assert_int_equal(req(&app, VHSM_OP_WRAP, w, 2), 0);
		{
			const uint8_t *tp_ = get(VHSM_T_DATA, &wl);

			memcpy(wrapped, tp_, wl);
		}
		assert_int_equal(wl, 40);
	}
	{
		struct tlv u[] = { STR(VHSM_T_NAME, "app/kek"), STR(VHSM_T_NEW_NAME, "app/mac"),
				   U32(VHSM_T_KEY_TYPE, VHSM_KEY_HMAC_SHA256), BYTES(VHSM_T_DATA, wrapped, wl) };
		struct tlv h[] = { STR(VHSM_T_NAME, "app/mac"), BYTES(VHSM_T_DATA, "Hi", 2) };
		uint8_t exp[32];
		unsigned el = 0;
		size_t ml;
		const uint8_t *mac;

		assert_int_equal(req(&app, VHSM_OP_UNWRAP, u, 4), 0);
		assert_int_equal(req(&app, VHSM_OP_HMAC, h, 2), 0);
		mac = get(VHSM_T_DATA, &ml);
		assert_non_null(HMAC(EVP_sha256(), hk, 32, (const uint8_t *)"Hi", 2, exp, &el));
		assert_int_equal(ml, el);
		assert_memory_equal(mac, exp, el);
		/* The unwrapped key is "provisioned". */
		assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, h, 1), 0);
		assert_int_equal(get_u32(VHSM_T_ORIGIN), VHSM_ORIGIN_PROVISIONED);
		/* Unwrapping into a name the caller may not create is denied. */
		u[1] = (struct tlv)STR(VHSM_T_NEW_NAME, "pub/x");
		assert_int_equal(req(&app, VHSM_OP_UNWRAP, u, 4), VHSM_E_DENIED);
		/* Tampered wrap. */
		wrapped[3] ^= 1;
		u[1] = (struct tlv)STR(VHSM_T_NEW_NAME, "app/mac2");
		assert_int_equal(req(&app, VHSM_OP_UNWRAP, u, 4), VHSM_E_DECRYPT);
	}
	{
		struct tlv ec[] = { STR(VHSM_T_NAME, "app/ec"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P256) };
		EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		unsigned char *pder = NULL;
		int pdl = i2d_PUBKEY(peer, &pder);
		struct tlv dv[] = { STR(VHSM_T_NAME, "app/ec"), STR(VHSM_T_NEW_NAME, "app/shared"),
				    U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256), BYTES(VHSM_T_PUBKEY, pder, (size_t)pdl) };
		struct tlv n[] = { STR(VHSM_T_NAME, "app/shared") };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, ec, 2), 0);
		assert_int_equal(req(&app, VHSM_OP_DERIVE, dv, 4), 0);
		assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, n, 1), 0);
		assert_int_equal(get_u32(VHSM_T_ORIGIN), VHSM_ORIGIN_DERIVED);
		assert_int_equal(get_u32(VHSM_T_KEY_TYPE), VHSM_KEY_AES256);
		assert_int_equal(req(&app, VHSM_OP_DELETE, n, 1), 0);
		assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, n, 1), VHSM_E_NOT_FOUND);
		assert_int_equal(req(&app, VHSM_OP_DELETE, n, 1), VHSM_E_NOT_FOUND);
		OPENSSL_free(pder);
		EVP_PKEY_free(peer);
	}
}

static void
test_every_type_generates(void **state)
{
	uint32_t t;
	char name[32];

	(void)state;
	for (t = 1; t <= VHSM_KEY_TYPE_MAX; t++) {
		struct tlv g[] = { STR(VHSM_T_NAME, name), U32(VHSM_T_KEY_TYPE, t) };

		snprintf(name, sizeof(name), "app/t%u", t);
		g[0].len = strlen(name);
		/* A certificate is public data: imported, never generated. */
		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 2), t == VHSM_KEY_CERT ? VHSM_E_UNSUPPORTED : 0);
	}
	assert_int_equal(d.nkeys, VHSM_KEY_TYPE_MAX - 1);
	{
		struct tlv g[] = { STR(VHSM_T_NAME, "app/bad"), U32(VHSM_T_KEY_TYPE, 99) };

		assert_int_equal(req(&app, VHSM_OP_GENERATE, g, 2), VHSM_E_ARGUMENT);
	}
}

/* Certificate objects: imported with the import right, read back by
 * get_public (DATA), listed, no usages, deleted like keys. */
static void
test_cert_objects(void **state)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	uint8_t *der = NULL;
	int l;
	size_t dl;
	const uint8_t *p;

	(void)state;
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 60));
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	l = i2d_X509(x, &der);
	assert_true(l > 0);
	{
		struct tlv im[] = { STR(VHSM_T_NAME, "app/web+cert"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_CERT),
				    BYTES(VHSM_T_DATA, der, (size_t)l) };
		struct tlv n[] = { STR(VHSM_T_NAME, "app/web+cert") };
		struct tlv sg[] = { STR(VHSM_T_NAME, "app/web+cert"), BYTES(VHSM_T_DATA, "x", 1) };
		struct tlv bad[] = { STR(VHSM_T_NAME, "app/junk"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_CERT),
				     BYTES(VHSM_T_DATA, "junk", 4) };
		struct tlv use[] = { STR(VHSM_T_NAME, "app/u"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_CERT),
				     U32(VHSM_T_USAGES, VHSM_USAGE_VERIFY), BYTES(VHSM_T_DATA, der, (size_t)l) };
		struct tlv pubim[] = { STR(VHSM_T_NAME, "pub/c"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_CERT),
				       BYTES(VHSM_T_DATA, der, (size_t)l) };

		assert_int_equal(req(&app, VHSM_OP_IMPORT, im, 3), 0);
		assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, n, 1), 0);
		assert_int_equal(get_u32(VHSM_T_KEY_TYPE), VHSM_KEY_CERT);
		assert_int_equal(get_u32(VHSM_T_USAGES), 0);
		p = get(VHSM_T_DATA, &dl);
		assert_int_equal(dl, (size_t)l);
		assert_memory_equal(p, der, dl);
		assert_int_not_equal(vhsm_tlv_find(rf.body, rf.body_len, VHSM_T_PUBKEY, &p, &dl), 0);
		/* no usages at all: a cert signs nothing */
		assert_int_equal(req(&app, VHSM_OP_SIGN, sg, 2), VHSM_E_USAGE);
		assert_int_equal(req(&app, VHSM_OP_READ_SECRET, n, 1), VHSM_E_NOT_EXPORTABLE);
		assert_int_equal(req(&app, VHSM_OP_IMPORT, bad, 3), VHSM_E_ARGUMENT);
		assert_int_equal(req(&app, VHSM_OP_IMPORT, use, 4), VHSM_E_ARGUMENT);
		/* uid 2000 holds only verify and get_public on pub/ names: it may not create one */
		assert_int_equal(req(&other, VHSM_OP_IMPORT, pubim, 3), VHSM_E_DENIED);
		assert_int_equal(req(&other, VHSM_OP_GET_PUBLIC, n, 1), VHSM_E_DENIED);
		assert_int_equal(req(&app, VHSM_OP_LIST, NULL, 0), 0);
		assert_int_equal(req(&app, VHSM_OP_DELETE, n, 1), 0);
		assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, n, 1), VHSM_E_NOT_FOUND);
	}
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(pk);
}

/* derive's KDF TLV: the new key is the raw secret (NONE) or X9.63 of it. */
static void
test_derive_kdf(void **state)
{
	struct tlv ec[] = { STR(VHSM_T_NAME, "app/ec"), U32(VHSM_T_KEY_TYPE, VHSM_KEY_EC_P256) };
	EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *ours;
	EVP_PKEY_CTX *pc;
	unsigned char *pder = NULL, z[32];
	size_t zl = sizeof(z), ol;
	const uint8_t *p;
	int pdl = i2d_PUBKEY(peer, &pder);

	(void)state;
	assert_int_equal(req(&app, VHSM_OP_GENERATE, ec, 2), 0);
	assert_int_equal(req(&app, VHSM_OP_GET_PUBLIC, ec, 1), 0);
	p = get(VHSM_T_PUBKEY, &ol);
	ours = d2i_PUBKEY(NULL, &p, (long)ol);
	assert_non_null(ours);
	pc = EVP_PKEY_CTX_new(peer, NULL);
	assert_int_equal(EVP_PKEY_derive_init(pc), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(pc, ours), 1);
	assert_int_equal(EVP_PKEY_derive(pc, z, &zl), 1);
	{
		struct tlv dv[] = { STR(VHSM_T_NAME, "app/ec"), STR(VHSM_T_NEW_NAME, "app/raw"),
				    U32(VHSM_T_KEY_TYPE, VHSM_KEY_HMAC_SHA256),
				    BYTES(VHSM_T_PUBKEY, pder, (size_t)pdl), U32(VHSM_T_KDF, VHSM_KDF_NONE) };
		struct tlv h[] = { STR(VHSM_T_NAME, "app/raw"), BYTES(VHSM_T_DATA, "Hi", 2) };
		uint8_t exp[32];
		unsigned el = 0;

		/* The answer carries no key material: the new key stays inside. */
		assert_int_equal(req(&app, VHSM_OP_DERIVE, dv, 5), 0);
		assert_int_not_equal(vhsm_tlv_find(rf.body, rf.body_len, VHSM_T_DATA, &p, &ol), 0);
		/* HMAC under the derived key = HMAC under the ECDH secret itself. */
		assert_int_equal(req(&app, VHSM_OP_HMAC, h, 2), 0);
		p = get(VHSM_T_DATA, &ol);
		assert_non_null(HMAC(EVP_sha256(), z, 32, (const uint8_t *)"Hi", 2, exp, &el));
		assert_int_equal(ol, 32);
		assert_memory_equal(p, exp, 32);
		/* Shared info only with X9.63; unknown KDFs refused; wrong-size TLV. */
		{
			struct tlv withinfo[] = { STR(VHSM_T_NAME, "app/ec"), STR(VHSM_T_NEW_NAME, "app/raw2"),
						  U32(VHSM_T_KEY_TYPE, VHSM_KEY_AES256),
						  BYTES(VHSM_T_PUBKEY, pder, (size_t)pdl),
						  U32(VHSM_T_KDF, VHSM_KDF_NONE), BYTES(VHSM_T_DATA, "ctx", 3) };
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 6), VHSM_E_ARGUMENT);
			withinfo[4] = (struct tlv)U32(VHSM_T_KDF, VHSM_KDF_HKDF);
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 6), VHSM_E_ARGUMENT);
			withinfo[4] = (struct tlv)U32(VHSM_T_KDF, 99);
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 5), VHSM_E_UNSUPPORTED);
			withinfo[4] = (struct tlv)BYTES(VHSM_T_KDF, "x", 1);
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 5), VHSM_E_ARGUMENT);
			withinfo[4] = (struct tlv)U32(VHSM_T_KDF, VHSM_KDF_X963_SHA256);
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 6), 0);
			/* NONE from P-256 cannot fill a 48-byte HMAC-SHA-384 key */
			withinfo[1] = (struct tlv)STR(VHSM_T_NEW_NAME, "app/raw3");
			withinfo[2] = (struct tlv)U32(VHSM_T_KEY_TYPE, VHSM_KEY_HMAC_SHA384);
			withinfo[4] = (struct tlv)U32(VHSM_T_KDF, VHSM_KDF_NONE);
			assert_int_equal(req(&app, VHSM_OP_DERIVE, withinfo, 5), VHSM_E_ARGUMENT);
		}
	}
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(ours);
	EVP_PKEY_free(peer);
	OPENSSL_free(pder);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_sign_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_denied_does_not_reveal_existence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate_retire_and_old_ciphertext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attributes_enforced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap_unwrap_derive_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_every_type_generates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_derive_kdf, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
