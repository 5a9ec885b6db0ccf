/*
 * libvhsm-pkcs11 through its only entry point, C_GetFunctionList, against a
 * real vhsmd (argv[1]: vhsmd, argv[2]: the module).  vhsmd runs with a
 * volatile store; keys are session objects (CKA_TOKEN false).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/x509.h>

#include "testsupport.h"

/* Last: p11-kit's compatibility macros rename common words. */
#include <p11-kit/pkcs11.h>

static const char *vhsmd_path, *module_path;
static char dir[] = "/tmp/p11-unit-XXXXXX";
static char sock[300], ini[400];
static pid_t daemon_pid;
static void *lib;
static CK_FUNCTION_LIST_PTR f;

static const CK_BYTE oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };

/* Start vhsmd with `ini` and wait for its socket. */
static void
spawn_daemon(void)
{
	daemon_pid = ts_daemon_start(vhsmd_path, ini, sock);
}

/* Stop vhsmd (its socket goes with it). */
static void
kill_daemon(void)
{
	assert_int_equal(ts_daemon_stop(daemon_pid), 0);
	daemon_pid = 0;
	assert_int_not_equal(access(sock, F_OK), 0);
}

static int
start_daemon(void **state)
{
	char path[400];
	FILE *fp;
	CK_C_GetFunctionList gfl;
	int i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "{\"rules\":[{\"principal\":{\"uid\":%u},\"keys\":[\"*\"],\"operations\":[\"*\"]}]}",
		(unsigned)getuid());
	fclose(fp);
	snprintf(ini, sizeof(ini), "%s/vhsmd.ini", dir);
	fp = fopen(ini, "w");
	assert_non_null(fp);
	fprintf(fp, "[vhsmd]\nsocket = %s\npolicy = %s/policy.json\nstate_dir = %s/state\n"
		    "secure_heap_size = 262144\n[sealing]\nstore = none\n", sock, dir, dir);
	fclose(fp);
	spawn_daemon();
	(void)i;
	setenv("NITRIDE_VHSM_SOCKET", sock, 1);
	lib = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
	assert_non_null(lib);
	/* Only C_GetFunctionList is exported. */
	assert_null(dlsym(lib, "C_Initialize"));
	gfl = (CK_C_GetFunctionList)(uintptr_t)dlsym(lib, "C_GetFunctionList");
	assert_non_null(gfl);
	assert_int_equal(gfl(&f), CKR_OK);
	assert_int_equal(f->version.major, 2);
	return 0;
}

static int
stop_daemon(void **state)
{
	char path[400];
	int r;

	(void)state;
	if (lib != NULL)
		dlclose(lib);
	r = ts_daemon_stop(daemon_pid);
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", dir);
	rmdir(path);
	rmdir(dir);
	return r;
}

static CK_SESSION_HANDLE
open_session(void)
{
	CK_SESSION_HANDLE s = 0;

	assert_int_equal(f->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s), CKR_OK);
	return s;
}

static void
gen_ec(CK_SESSION_HANDLE s, const char *label, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {
		{ CKA_EC_PARAMS, (CK_VOID_PTR)(uintptr_t)oid_p256, sizeof(oid_p256) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE vt[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_LABEL, (CK_VOID_PTR)(uintptr_t)label, strlen(label) },
	};
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };

	assert_int_equal(f->C_GenerateKeyPair(s, &m, pt, 3, vt, 3, pub, priv), CKR_OK);
}

static void
test_init_cycles(void **state)
{
	CK_INFO info;
	CK_ULONG n = 0;
	int i;

	(void)state;
	assert_int_equal(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
	assert_int_equal(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
	for (i = 0; i < 3; i++) {
		CK_C_INITIALIZE_ARGS ia = { NULL, NULL, NULL, NULL, CKF_OS_LOCKING_OK, NULL };
		CK_SESSION_HANDLE s;
		assert_int_equal(f->C_Initialize(&ia), CKR_OK);
		assert_int_equal(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
		assert_int_equal(f->C_GetInfo(&info), CKR_OK);
		assert_int_equal(info.cryptokiVersion.minor, 40);
		assert_int_equal(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
		assert_int_equal(n, 1);
		s = open_session();
		/* a handle from a previous cycle is not valid in this one */
		assert_int_equal(f->C_CloseSession(s + 1), CKR_SESSION_HANDLE_INVALID);
		assert_int_equal(f->C_Finalize(NULL), CKR_OK);
		assert_int_equal(f->C_GetSessionInfo(s, &(CK_SESSION_INFO){ 0 }), CKR_CRYPTOKI_NOT_INITIALIZED);
	}
	/* pReserved must be NULL */
	CK_C_INITIALIZE_ARGS bad = { NULL, NULL, NULL, NULL, 0, (CK_VOID_PTR)&n };
	assert_int_equal(f->C_Initialize(&bad), CKR_ARGUMENTS_BAD);
}

static int
init(void **state)
{
	(void)state;
	return f->C_Initialize(NULL) == CKR_OK ? 0 : -1;
}

static int
fini(void **state)
{
	(void)state;
	return f->C_Finalize(NULL) == CKR_OK ? 0 : -1;
}

static void
test_token_and_mechanisms(void **state)
{
	CK_TOKEN_INFO ti;
	CK_MECHANISM_INFO mi;
	CK_MECHANISM_TYPE list[64];
	CK_ULONG n = 1;

	(void)state;
	assert_int_equal(f->C_GetTokenInfo(0, &ti), CKR_OK);
	assert_true(ti.flags & CKF_TOKEN_INITIALIZED);
	assert_false(ti.flags & CKF_LOGIN_REQUIRED);
	assert_int_equal(f->C_GetTokenInfo(7, &ti), CKR_SLOT_ID_INVALID);
	assert_int_equal(f->C_GetMechanismList(0, list, &n), CKR_BUFFER_TOO_SMALL);
	assert_true(n > 10);
	assert_int_equal(f->C_GetMechanismList(0, list, &n), CKR_OK);
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_ECDSA_SHA256, &mi), CKR_OK);
	assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
	assert_int_equal(mi.ulMinKeySize, 256);
	/* raw mechanisms sign a caller's digest / DigestInfo (vhsmd's prehashed sign) */
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_ECDSA, &mi), CKR_OK);
	assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_RSA_PKCS, &mi), CKR_OK);
	assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
	assert_false(mi.flags & CKF_DECRYPT);
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_RSA_PKCS_PSS, &mi), CKR_OK);
	assert_true((mi.flags & (CKF_SIGN | CKF_VERIFY)) == (CKF_SIGN | CKF_VERIFY));
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_AES_GCM, &mi), CKR_OK);
	assert_true(mi.flags & CKF_ENCRYPT);
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_DES3_CBC, &mi), CKR_MECHANISM_INVALID);
}

static void
test_login(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_SESSION_INFO si;

	(void)state;
	assert_int_equal(f->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
	assert_int_equal(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"anything", 8), CKR_OK);
	assert_int_equal(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"1234", 4), CKR_USER_ALREADY_LOGGED_IN);
	assert_int_equal(f->C_GetSessionInfo(s, &si), CKR_OK);
	assert_int_equal(si.state, CKS_RW_USER_FUNCTIONS);
	assert_int_equal(f->C_Logout(s), CKR_OK);
	assert_int_not_equal(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)"x", 1), CKR_OK);
	assert_int_equal(f->C_Login(s, 42, (CK_UTF8CHAR_PTR)"x", 1), CKR_USER_TYPE_INVALID);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
	assert_int_equal(f->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
}

static void
test_ec(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_OBJECT_HANDLE pub, priv, found[8];
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 }, raw = { CKM_ECDSA, NULL, 0 };
	CK_BYTE msg[] = "message to sign", sig[128], v[256], digest[32];
	CK_ULONG sl = 0, n = 0;
	CK_BBOOL sens = 0, extr = 1;
	CK_ULONG bogus = 0;
	CK_ATTRIBUTE a[] = {
		{ CKA_SENSITIVE, &sens, sizeof(sens) },
		{ CKA_EXTRACTABLE, &extr, sizeof(extr) },
		{ CKA_VALUE, v, sizeof(v) },
		{ 0x7fff0001UL, &bogus, sizeof(bogus) },
	};
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE ft[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, "t-ec", 4 } };
	CK_BYTE small[2];
	CK_ATTRIBUTE pa[] = { { CKA_EC_POINT, small, sizeof(small) } };
	unsigned int dl = 0;

	(void)state;
	gen_ec(s, "t-ec", &pub, &priv);
	assert_int_equal(f->C_GetAttributeValue(s, priv, a, 3), CKR_ATTRIBUTE_SENSITIVE);
	assert_int_equal(sens, CK_TRUE);
	assert_int_equal(extr, CK_FALSE);
	assert_int_equal(a[2].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	assert_int_equal(f->C_GetAttributeValue(s, priv, a + 3, 1), CKR_ATTRIBUTE_TYPE_INVALID);
	assert_int_equal(a[3].ulValueLen, CK_UNAVAILABLE_INFORMATION);
	assert_int_equal(f->C_GetAttributeValue(s, pub, pa, 1), CKR_BUFFER_TOO_SMALL);
	pa[0].pValue = NULL;
	assert_int_equal(f->C_GetAttributeValue(s, pub, pa, 1), CKR_OK);
	assert_int_equal(pa[0].ulValueLen, 67); /* 04 41 04 x y */

	/* found by class and label */
	assert_int_equal(f->C_FindObjectsInit(s, ft, 2), CKR_OK);
	assert_int_equal(f->C_FindObjectsInit(s, ft, 2), CKR_OPERATION_ACTIVE);
	assert_int_equal(f->C_FindObjects(s, found, 8, &n), CKR_OK);
	assert_int_equal(n, 1);
	assert_int_equal(found[0], priv);
	assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);

	/* size query, short buffer, then the signature */
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig, &sl), CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(f->C_SignInit(s, &m, pub), CKR_KEY_TYPE_INCONSISTENT);
	assert_int_equal(f->C_SignInit(s, &m, priv), CKR_OK);
	assert_int_equal(f->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), NULL, &sl), CKR_OK);
	assert_int_equal(sl, 64);
	sl = 10;
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig, &sl), CKR_BUFFER_TOO_SMALL);
	sl = sizeof(sig);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig, &sl), CKR_OK);
	assert_int_equal(sl, 64);

	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);
	/* raw ECDSA verify over SHA-256(msg) */
	assert_int_equal(EVP_Digest(msg, sizeof(msg), digest, &dl, EVP_sha256(), NULL), 1);
	assert_int_equal(f->C_VerifyInit(s, &raw, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, digest, sizeof(digest), sig, sl), CKR_OK);
	sig[5] ^= 1;
	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_SIGNATURE_INVALID);
	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, 63), CKR_SIGNATURE_LEN_RANGE);

	/* raw CKM_ECDSA signs SHA-256(msg): verifies as ECDSA-SHA256 over msg */
	assert_int_equal(f->C_SignInit(s, &raw, priv), CKR_OK);
	sl = 0;
	assert_int_equal(f->C_Sign(s, digest, sizeof(digest), NULL, &sl), CKR_OK);
	assert_int_equal(sl, 64);
	assert_int_equal(f->C_Sign(s, digest, sizeof(digest), sig, &sl), CKR_OK);
	assert_int_equal(sl, 64);
	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &raw, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, digest, sizeof(digest), sig, sl), CKR_OK);
	digest[0] ^= 1;
	assert_int_equal(f->C_VerifyInit(s, &raw, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, digest, sizeof(digest), sig, sl), CKR_SIGNATURE_INVALID);
	/* a 20-byte (SHA-1-sized) digest is refused; raw is single-part only */
	assert_int_equal(f->C_SignInit(s, &raw, priv), CKR_OK);
	sl = sizeof(sig);
	assert_int_equal(f->C_Sign(s, digest, 20, sig, &sl), CKR_DATA_LEN_RANGE);
	/* multi-part raw: the parts together are the digest */
	digest[0] ^= 1;
	assert_int_equal(f->C_SignInit(s, &raw, priv), CKR_OK);
	assert_int_equal(f->C_SignUpdate(s, digest, 16), CKR_OK);
	assert_int_equal(f->C_SignUpdate(s, digest + 16, 16), CKR_OK);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignFinal(s, sig, &sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);

	/* multi-part sign, single-part verify */
	assert_int_equal(f->C_SignInit(s, &m, priv), CKR_OK);
	assert_int_equal(f->C_SignUpdate(s, msg, 5), CKR_OK);
	assert_int_equal(f->C_SignUpdate(s, msg + 5, sizeof(msg) - 5), CKR_OK);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignFinal(s, sig, &sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &m, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);

	/* session objects end with their session */
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
	s = open_session();
	assert_int_equal(f->C_FindObjectsInit(s, ft, 2), CKR_OK);
	assert_int_equal(f->C_FindObjects(s, found, 8, &n), CKR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static void
test_aes_gcm(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_OBJECT_HANDLE k;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ULONG len = 32, bad = 16, n;
	CK_ATTRIBUTE t[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_ENCRYPT, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE tb[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_VALUE_LEN, &bad, sizeof(bad) } };
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_BYTE iv[12] = { 0 }, aad[] = "header", pt[4096], ct[4200], out[4200];
	CK_GCM_PARAMS gp = { iv, 12, 96, aad, sizeof(aad), 128 };
	CK_GCM_PARAMS gbad = { iv, 16, 128, NULL, 0, 128 };
	CK_MECHANISM m = { CKM_AES_GCM, &gp, sizeof(gp) }, mb = { CKM_AES_GCM, &gbad, sizeof(gbad) };
	CK_ULONG cl, ol;

	(void)state;
	memset(pt, 0x5a, sizeof(pt));
	assert_int_equal(f->C_GenerateKey(s, &gen, tb, 2, &k), CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(f->C_GenerateKey(s, &gen, t, 4, &k), CKR_OK);
	assert_int_equal(f->C_EncryptInit(s, &mb, k), CKR_MECHANISM_PARAM_INVALID);
	assert_int_equal(f->C_EncryptInit(s, &m, k), CKR_OK);
	assert_int_equal(f->C_Encrypt(s, pt, sizeof(pt), NULL, &cl), CKR_OK);
	assert_int_equal(cl, sizeof(pt) + 16);
	cl = sizeof(ct);
	assert_int_equal(f->C_Encrypt(s, pt, sizeof(pt), ct, &cl), CKR_OK);
	assert_int_equal(cl, sizeof(pt) + 16);
	/* the vHSM chose the nonce and wrote it into pIv */
	for (n = 0; n < 12 && iv[n] == 0; n++)
		;
	assert_true(n < 12);
	assert_int_equal(f->C_DecryptInit(s, &m, k), CKR_OK);
	ol = sizeof(out);
	assert_int_equal(f->C_Decrypt(s, ct, cl, out, &ol), CKR_OK);
	assert_int_equal(ol, sizeof(pt));
	assert_memory_equal(out, pt, sizeof(pt));
	/* multi-part decrypt */
	assert_int_equal(f->C_DecryptInit(s, &m, k), CKR_OK);
	ol = sizeof(out);
	assert_int_equal(f->C_DecryptUpdate(s, ct, 100, out, &ol), CKR_OK);
	assert_int_equal(ol, 0);
	assert_int_equal(f->C_DecryptUpdate(s, ct + 100, cl - 100, out, &ol), CKR_OK);
	ol = sizeof(out);
	assert_int_equal(f->C_DecryptFinal(s, out, &ol), CKR_OK);
	assert_memory_equal(out, pt, sizeof(pt));
	/* a flipped bit fails authentication */
	ct[10] ^= 1;
	assert_int_equal(f->C_DecryptInit(s, &m, k), CKR_OK);
	ol = sizeof(out);
	assert_int_equal(f->C_Decrypt(s, ct, cl, out, &ol), CKR_ENCRYPTED_DATA_INVALID);
	assert_int_equal(f->C_Decrypt(s, ct, cl, out, &ol), CKR_OPERATION_NOT_INITIALIZED);
	assert_int_equal(f->C_DestroyObject(s, k), CKR_OK);
	assert_int_equal(f->C_EncryptInit(s, &m, k), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static void
test_rsa(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_OBJECT_HANDLE pub, priv;
	CK_BBOOL no = CK_FALSE;
	CK_ULONG bits = 2048, bad_bits = 1024;
	CK_BYTE e[] = { 1, 0, 1 };
	CK_ATTRIBUTE pt[] = {
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_MODULUS_BITS, &bits, sizeof(bits) },
		{ CKA_PUBLIC_EXPONENT, e, sizeof(e) },
	};
	CK_ATTRIBUTE vt[] = { { CKA_TOKEN, &no, sizeof(no) } };
	CK_MECHANISM gen = { CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0 };
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, 32 }, pbad = { CKM_SHA256, CKG_MGF1_SHA256, 20 };
	CK_RSA_PKCS_OAEP_PARAMS oaep = { CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_RSA_PKCS_OAEP_PARAMS osha1 = { CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0 };
	CK_MECHANISM mp = { CKM_SHA256_RSA_PKCS_PSS, &pss, sizeof(pss) };
	CK_MECHANISM mpb = { CKM_SHA256_RSA_PKCS_PSS, &pbad, sizeof(pbad) };
	CK_MECHANISM mo = { CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep) };
	CK_MECHANISM mo1 = { CKM_RSA_PKCS_OAEP, &osha1, sizeof(osha1) };
	CK_MECHANISM m1 = { CKM_SHA384_RSA_PKCS, NULL, 0 };
	CK_BYTE msg[] = "rsa message", sig[512], ct[512], out[512], sig2[512];
	CK_ULONG sl = sizeof(sig), cl = sizeof(ct), ol, sl2 = sizeof(sig2);
	CK_MECHANISM mr = { CKM_RSA_PKCS, NULL, 0 }, m256 = { CKM_SHA256_RSA_PKCS, NULL, 0 };
	CK_MECHANISM mpr = { CKM_RSA_PKCS_PSS, &pss, sizeof(pss) };
	CK_MECHANISM mprb = { CKM_RSA_PKCS_PSS, &pbad, sizeof(pbad) };
	/* SHA-256 DigestInfo: DER prefix, then the digest */
	CK_BYTE di[51] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
			   0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20 };
	unsigned int dl = 0;

	(void)state;
	pt[1].pValue = &bad_bits;
	assert_int_equal(f->C_GenerateKeyPair(s, &gen, pt, 3, vt, 1, &pub, &priv), CKR_KEY_SIZE_RANGE);
	pt[1].pValue = &bits;
	assert_int_equal(f->C_GenerateKeyPair(s, &gen, pt, 3, vt, 1, &pub, &priv), CKR_OK);
	assert_int_equal(f->C_SignInit(s, &mpb, priv), CKR_MECHANISM_PARAM_INVALID);
	assert_int_equal(f->C_SignInit(s, &mp, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig, &sl), CKR_OK);
	assert_int_equal(sl, 256);
	assert_int_equal(f->C_VerifyInit(s, &mp, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignInit(s, &m1, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig, &sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &m1, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg) - 1, sig, sl), CKR_SIGNATURE_INVALID);
	/* raw CKM_RSA_PKCS over a SHA-256 DigestInfo = CKM_SHA256_RSA_PKCS over msg */
	assert_int_equal(EVP_Digest(msg, sizeof(msg), di + 19, &dl, EVP_sha256(), NULL), 1);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignInit(s, &mr, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, di, sizeof(di), sig, &sl), CKR_OK);
	assert_int_equal(sl, 256);
	assert_int_equal(f->C_SignInit(s, &m256, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), sig2, &sl2), CKR_OK);
	assert_int_equal(sl2, sl);
	assert_memory_equal(sig, sig2, sl); /* PKCS#1 v1.5 is deterministic */
	assert_int_equal(f->C_VerifyInit(s, &m256, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &mr, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, di, sizeof(di), sig, sl), CKR_OK);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignInit(s, &mr, priv), CKR_OK);
	memset(out, 0x5a, sizeof(out));
	assert_int_equal(f->C_Sign(s, out, 246, sig, &sl), CKR_DATA_LEN_RANGE); /* > k-11 */
	/* raw CKM_RSA_PKCS_PSS over SHA-256(msg) = CKM_SHA256_RSA_PKCS_PSS over msg */
	sl = sizeof(sig);
	assert_int_equal(f->C_SignInit(s, &mpr, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, di + 19, 32, sig, &sl), CKR_OK);
	assert_int_equal(sl, 256);
	assert_int_equal(f->C_VerifyInit(s, &mp, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_OK);
	assert_int_equal(f->C_VerifyInit(s, &mpr, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, di + 19, 32, sig, sl), CKR_OK);
	sig[7] ^= 1;
	assert_int_equal(f->C_VerifyInit(s, &mp, pub), CKR_OK);
	assert_int_equal(f->C_Verify(s, msg, sizeof(msg), sig, sl), CKR_SIGNATURE_INVALID);
	sl = sizeof(sig);
	assert_int_equal(f->C_SignInit(s, &mpr, priv), CKR_OK);
	assert_int_equal(f->C_Sign(s, di + 19, 31, sig, &sl), CKR_DATA_LEN_RANGE);
	assert_int_equal(f->C_SignInit(s, &mprb, priv), CKR_MECHANISM_PARAM_INVALID);
	sl = sizeof(sig);
	assert_int_equal(f->C_EncryptInit(s, &mo1, pub), CKR_MECHANISM_PARAM_INVALID);
	assert_int_equal(f->C_EncryptInit(s, &mo, pub), CKR_OK);
	assert_int_equal(f->C_Encrypt(s, msg, sizeof(msg), ct, &cl), CKR_OK);
	assert_int_equal(f->C_DecryptInit(s, &mo, pub), CKR_KEY_TYPE_INCONSISTENT);
	/* PKCS#1 v1.5 decryption is refused on purpose (a padding oracle). */
	assert_int_equal(f->C_DecryptInit(s, &mr, priv), CKR_MECHANISM_INVALID);
	assert_int_equal(f->C_DecryptInit(s, &mo, priv), CKR_OK);
	ol = 4; /* too small: the result is kept for the next call */
	assert_int_equal(f->C_Decrypt(s, ct, cl, out, &ol), CKR_BUFFER_TOO_SMALL);
	assert_int_equal(ol, sizeof(msg));
	assert_int_equal(f->C_Decrypt(s, ct, cl, out, &ol), CKR_OK);
	assert_memory_equal(out, msg, sizeof(msg));
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static void
test_random(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_BYTE a[100000], b[32] = { 0 };
	size_t i, z = 0;

	(void)state;
	assert_int_equal(f->C_GenerateRandom(s, a, sizeof(a)), CKR_OK);
	assert_int_equal(f->C_GenerateRandom(s, b, sizeof(b)), CKR_OK);
	for (i = 0; i < sizeof(b); i++)
		z += b[i] == 0;
	assert_true(z < 8);
	assert_int_equal(f->C_GenerateRandom(0, b, 1), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static CK_OBJECT_HANDLE thr_pub, thr_priv;

static void *
signer(void *arg)
{
	CK_SESSION_HANDLE s = 0;
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	CK_BYTE msg[32], sig[64];
	CK_ULONG sl;
	uintptr_t bad = 0;
	int i;

	memset(msg, (int)(uintptr_t)arg, sizeof(msg));
	if (f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
		return (void *)1;
	for (i = 0; i < 200; i++) {
		sl = sizeof(sig);
		msg[0] = (CK_BYTE)i;
		if (f->C_SignInit(s, &m, thr_priv) != CKR_OK || f->C_Sign(s, msg, sizeof(msg), sig, &sl) != CKR_OK ||
		    f->C_VerifyInit(s, &m, thr_pub) != CKR_OK || f->C_Verify(s, msg, sizeof(msg), sig, sl) != CKR_OK)
			bad++;
	}
	f->C_CloseSession(s);
	return (void *)bad;
}

static void
test_threads(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	pthread_t t[4];
	void *res;
	int i;

	(void)state;
	gen_ec(s, "t-thr", &thr_pub, &thr_priv);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, signer, (void *)(uintptr_t)(i + 1)), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &res), 0);
		assert_null(res);
	}
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

static CK_BBOOL
get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t)
{
	CK_BBOOL b = 0x55;
	CK_ATTRIBUTE a = { t, &b, sizeof(b) };

	assert_int_equal(f->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
	return b;
}

/* Usage attributes in templates become the vHSM key's usages. */
static void
test_usage_flags(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ATTRIBUTE pt[] = {
		{ CKA_EC_PARAMS, (CK_VOID_PTR)(uintptr_t)oid_p256, sizeof(oid_p256) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
	};
	CK_ATTRIBUTE vt[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_SIGN, &no, sizeof(no) },
			      { CKA_DERIVE, &yes, sizeof(yes) } };
	CK_ATTRIBUTE vt2[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_SIGN, &no, sizeof(no) },
			       { CKA_DERIVE, &no, sizeof(no) } };
	CK_ATTRIBUTE pt2[] = {
		{ CKA_EC_PARAMS, (CK_VOID_PTR)(uintptr_t)oid_p256, sizeof(oid_p256) },
		{ CKA_TOKEN, &no, sizeof(no) },
		{ CKA_VERIFY, &no, sizeof(no) },
	};
	CK_KEY_TYPE rsa = CKK_RSA;
	CK_ATTRIBUTE wrongkt[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_KEY_TYPE, &rsa, sizeof(rsa) } };
	CK_ULONG len = 32;
	CK_ATTRIBUTE at[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_VALUE_LEN, &len, sizeof(len) },
			      { CKA_ENCRYPT, &no, sizeof(no) } };
	CK_ATTRIBUTE none[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_ENCRYPT, &no, sizeof(no) },
				{ CKA_DECRYPT, &no, sizeof(no) }, { CKA_WRAP, &no, sizeof(no) },
				{ CKA_UNWRAP, &no, sizeof(no) } };
	CK_MECHANISM kp = { CKM_EC_KEY_PAIR_GEN, NULL, 0 }, ecdsa = { CKM_ECDSA_SHA256, NULL, 0 };
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_BYTE iv[12];
	CK_GCM_PARAMS gp = { iv, 12, 96, NULL, 0, 128 };
	CK_MECHANISM gcm = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_OBJECT_HANDLE pub, priv, k;

	(void)state;
	assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt, 3, vt, 3, &pub, &priv), CKR_OK);
	assert_int_equal(get_bool(s, priv, CKA_SIGN), CK_FALSE);
	assert_int_equal(get_bool(s, priv, CKA_DERIVE), CK_TRUE);
	assert_int_equal(get_bool(s, pub, CKA_VERIFY), CK_TRUE);
	assert_int_equal(f->C_SignInit(s, &ecdsa, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
	assert_int_equal(f->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
	assert_int_equal(f->C_VerifyFinal(s, iv, 12), CKR_SIGNATURE_LEN_RANGE);
	/* no verify: refused here too, though verification runs in the module */
	assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt2, 3, vt, 3, &pub, &priv), CKR_OK);
	assert_int_equal(get_bool(s, pub, CKA_VERIFY), CK_FALSE);
	assert_int_equal(f->C_VerifyInit(s, &ecdsa, pub), CKR_KEY_FUNCTION_NOT_PERMITTED);
	/* a key left with no usage at all, a key type the mechanism cannot make */
	assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt2, 3, vt2, 3, &pub, &priv), CKR_TEMPLATE_INCONSISTENT);
	assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt, 3, wrongkt, 2, &pub, &priv), CKR_TEMPLATE_INCONSISTENT);
	assert_int_equal(f->C_GenerateKey(s, &gen, none, 5, &k), CKR_TEMPLATE_INCONSISTENT);
	assert_int_equal(f->C_GenerateKey(s, &gen, wrongkt, 2, &k), CKR_TEMPLATE_INCONSISTENT);
	/* AES without encrypt: decrypt yes, encrypt no */
	assert_int_equal(f->C_GenerateKey(s, &gen, at, 3, &k), CKR_OK);
	assert_int_equal(get_bool(s, k, CKA_ENCRYPT), CK_FALSE);
	assert_int_equal(get_bool(s, k, CKA_DECRYPT), CK_TRUE);
	assert_int_equal(f->C_EncryptInit(s, &gcm, k), CKR_KEY_FUNCTION_NOT_PERMITTED);
	assert_int_equal(f->C_DecryptInit(s, &gcm, k), CKR_OK);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

/* CKM_AES_KEY_WRAP_PAD: C_Encrypt wraps caller bytes (RFC 5649), C_UnwrapKey
 * makes a vHSM key of them, C_WrapKey of a vHSM key is refused. */
static void
test_wrap_unwrap(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_ULONG len = 32, wl, ol;
	CK_OBJECT_CLASS sec = CKO_SECRET_KEY, priv_cls = CKO_PRIVATE_KEY, data_cls = CKO_DATA;
	CK_KEY_TYPE aes = CKK_AES, gen_secret = CKK_GENERIC_SECRET, des = CKK_DES3;
	CK_ATTRIBUTE kt[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_VALUE_LEN, &len, sizeof(len) } };
	CK_ATTRIBUTE ut[] = { { CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &aes, sizeof(aes) },
			      { CKA_TOKEN, &no, sizeof(no) }, { CKA_LABEL, "unwrapped", 9 },
			      { CKA_ENCRYPT, &yes, sizeof(yes) } };
	CK_ATTRIBUTE ut_ext[] = { { CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &aes, sizeof(aes) },
				  { CKA_TOKEN, &no, sizeof(no) }, { CKA_EXTRACTABLE, &yes, sizeof(yes) } };
	CK_ATTRIBUTE ut_des[] = { { CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &des, sizeof(des) } };
	CK_ATTRIBUTE ut_data[] = { { CKA_CLASS, &data_cls, sizeof(data_cls) }, { CKA_KEY_TYPE, &aes, sizeof(aes) } };
	CK_ATTRIBUTE ut_priv[] = { { CKA_CLASS, &priv_cls, sizeof(priv_cls) }, { CKA_KEY_TYPE, &aes, sizeof(aes) } };
	CK_ATTRIBUTE ut_mac[] = { { CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &gen_secret, sizeof(gen_secret) },
				  { CKA_TOKEN, &no, sizeof(no) } };
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 }, wp = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_BYTE aiv[4] = { 0xa6, 0x59, 0x59, 0xa6 }, badiv[4] = { 1, 2, 3, 4 };
	CK_MECHANISM wp_iv = { CKM_AES_KEY_WRAP_PAD, aiv, 4 }, wp_bad = { CKM_AES_KEY_WRAP_PAD, badiv, 4 };
	CK_MECHANISM gcm_m = { CKM_AES_GCM, NULL, 0 };
	CK_BYTE secret[32], mackey[40], wrapped[64], wrapped2[64], iv[12] = { 0 }, pt[] = "plaintext", ct[64], out[64];
	CK_GCM_PARAMS gp = { iv, 12, 96, NULL, 0, 128 };
	CK_MECHANISM gcm = { CKM_AES_GCM, &gp, sizeof(gp) };
	CK_OBJECT_HANDLE kek, k, k2, pub, priv;
	EVP_CIPHER_CTX *cx;
	int l1 = 0, l2 = 0;
	CK_MECHANISM_INFO mi;

	(void)state;
	(void)gcm_m;
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_AES_KEY_WRAP_PAD, &mi), CKR_OK);
	assert_int_equal(mi.flags & (CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP),
			 CKF_ENCRYPT | CKF_WRAP | CKF_UNWRAP);
	memset(secret, 0x42, sizeof(secret));
	memset(mackey, 0x17, sizeof(mackey));
	assert_int_equal(f->C_GenerateKey(s, &gen, kt, 2, &kek), CKR_OK);
	/* C_Encrypt: single-part only; 32 bytes wrap to 40 */
	assert_int_equal(f->C_EncryptInit(s, &wp_bad, kek), CKR_MECHANISM_PARAM_INVALID);
	assert_int_equal(f->C_EncryptInit(s, &wp_iv, kek), CKR_OK);
	assert_int_equal(f->C_Encrypt(s, secret, 32, NULL, &wl), CKR_OK);
	assert_int_equal(wl, 40);
	wl = sizeof(wrapped);
	assert_int_equal(f->C_Encrypt(s, secret, 32, wrapped, &wl), CKR_OK);
	assert_int_equal(wl, 40);
	assert_int_equal(f->C_EncryptInit(s, &wp, kek), CKR_OK);
	assert_int_equal(f->C_EncryptUpdate(s, secret, 32, out, &ol), CKR_MECHANISM_INVALID);
	assert_int_equal(f->C_DecryptInit(s, &wp, kek), CKR_MECHANISM_INVALID); /* vhsmd never returns it */
	/* unwrap into an AES key; it encrypts what OpenSSL decrypts with the secret */
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut, 5, &k), CKR_OK);
	assert_int_equal(get_bool(s, k, CKA_EXTRACTABLE), CK_FALSE);
	assert_int_equal(get_bool(s, k, CKA_LOCAL), CK_FALSE);
	assert_int_equal(f->C_EncryptInit(s, &gcm, k), CKR_OK);
	ol = sizeof(ct);
	assert_int_equal(f->C_Encrypt(s, pt, sizeof(pt), ct, &ol), CKR_OK);
	cx = EVP_CIPHER_CTX_new();
	assert_int_equal(EVP_DecryptInit_ex(cx, EVP_aes_256_gcm(), NULL, secret, iv), 1);
	assert_int_equal(EVP_DecryptUpdate(cx, out, &l1, ct, (int)sizeof(pt)), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_GCM_SET_TAG, 16, ct + sizeof(pt)), 1);
	assert_int_equal(EVP_DecryptFinal_ex(cx, out + l1, &l2), 1);
	assert_memory_equal(out, pt, sizeof(pt));
	EVP_CIPHER_CTX_free(cx);
	/* a generic secret (HMAC key) of 40 bytes */
	assert_int_equal(f->C_EncryptInit(s, &wp, kek), CKR_OK);
	wl = sizeof(wrapped2);
	assert_int_equal(f->C_Encrypt(s, mackey, sizeof(mackey), wrapped2, &wl), CKR_OK);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped2, wl, ut_mac, 3, &k2), CKR_OK);
	{
		CK_MECHANISM hm = { CKM_SHA256_HMAC, NULL, 0 };
		CK_BYTE mac[32], exp[32];
		CK_ULONG ml = sizeof(mac);
		unsigned el = 0;
		assert_int_equal(f->C_SignInit(s, &hm, k2), CKR_OK);
		assert_int_equal(f->C_Sign(s, pt, sizeof(pt), mac, &ml), CKR_OK);
		assert_non_null(HMAC(EVP_sha256(), mackey, sizeof(mackey), pt, sizeof(pt), exp, &el));
		assert_memory_equal(mac, exp, 32);
	}
	/* errors, in the standard's terms */
	wl = 40;
	assert_int_equal(f->C_UnwrapKey(s, &wp_bad, kek, wrapped, wl, ut, 3, &k2), CKR_MECHANISM_PARAM_INVALID);
	assert_int_equal(f->C_UnwrapKey(s, &gcm, kek, wrapped, wl, ut, 3, &k2), CKR_MECHANISM_INVALID);
	assert_int_equal(f->C_UnwrapKey(s, &wp, 0xdead, wrapped, wl, ut, 3, &k2), CKR_UNWRAPPING_KEY_HANDLE_INVALID);
	gen_ec(s, "not-a-kek", &pub, &priv);
	assert_int_equal(f->C_UnwrapKey(s, &wp, priv, wrapped, wl, ut, 3, &k2), CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, 39, ut, 3, &k2), CKR_WRAPPED_KEY_LEN_RANGE);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, 8, ut, 3, &k2), CKR_WRAPPED_KEY_LEN_RANGE);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut, 1, &k2), CKR_TEMPLATE_INCOMPLETE);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut_ext, 4, &k2), CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut_des, 2, &k2), CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut_data, 2, &k2), CKR_TEMPLATE_INCONSISTENT);
	/* 32 bytes are not a PKCS#8 EC key */
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut_priv, 2, &k2), CKR_ATTRIBUTE_VALUE_INVALID);
	{
		CK_KEY_TYPE ec = CKK_EC;
		CK_ATTRIBUTE ut_ec[] = { { CKA_CLASS, &priv_cls, sizeof(priv_cls) }, { CKA_KEY_TYPE, &ec, sizeof(ec) },
					 { CKA_TOKEN, &no, sizeof(no) } };
		assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut_ec, 3, &k2), CKR_WRAPPED_KEY_INVALID);
	}
	wrapped[5] ^= 1;
	assert_int_equal(f->C_UnwrapKey(s, &wp, kek, wrapped, wl, ut, 3, &k2), CKR_WRAPPED_KEY_INVALID);
	/* C_WrapKey: every vHSM key is unextractable */
	wl = sizeof(wrapped);
	assert_int_equal(f->C_WrapKey(s, &wp, kek, k, wrapped, &wl), CKR_KEY_UNEXTRACTABLE);
	assert_int_equal(f->C_WrapKey(s, &wp, kek, priv, wrapped, &wl), CKR_KEY_UNEXTRACTABLE);
	assert_int_equal(f->C_WrapKey(s, &wp, kek, pub, wrapped, &wl), CKR_KEY_NOT_WRAPPABLE);
	assert_int_equal(f->C_WrapKey(s, &wp, kek, 0xdead, wrapped, &wl), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(f->C_WrapKey(s, &wp, priv, k, wrapped, &wl), CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
	assert_int_equal(f->C_WrapKey(s, &wp, 0xdead, k, wrapped, &wl), CKR_WRAPPING_KEY_HANDLE_INVALID);
	assert_int_equal(f->C_WrapKey(s, &gcm, kek, k, wrapped, &wl), CKR_MECHANISM_INVALID);
	assert_int_equal(f->C_WrapKey(s, &wp, kek, k, wrapped, NULL), CKR_ARGUMENTS_BAD);
	/* a KEK generated without CKA_UNWRAP / CKA_WRAP */
	{
		CK_ATTRIBUTE nu[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_UNWRAP, &no, sizeof(no) },
				      { CKA_WRAP, &no, sizeof(no) } };
		CK_OBJECT_HANDLE kek2;
		assert_int_equal(f->C_GenerateKey(s, &gen, nu, 3, &kek2), CKR_OK);
		wrapped[5] ^= 1;
		assert_int_equal(f->C_UnwrapKey(s, &wp, kek2, wrapped, 40, ut, 3, &k2), CKR_KEY_FUNCTION_NOT_PERMITTED);
		assert_int_equal(f->C_EncryptInit(s, &wp, kek2), CKR_KEY_FUNCTION_NOT_PERMITTED);
		assert_int_equal(f->C_WrapKey(s, &wp, kek2, k, wrapped, &wl), CKR_KEY_FUNCTION_NOT_PERMITTED);
	}
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

/* The EC point of a public-key object, raw (04 x y). */
static EVP_PKEY *
ec_pub_of(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub)
{
	CK_BYTE pt[80];
	CK_ATTRIBUTE a = { CKA_EC_POINT, pt, sizeof(pt) };
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pk = NULL;

	assert_int_equal(f->C_GetAttributeValue(s, pub, &a, 1), CKR_OK);
	assert_int_equal(a.ulValueLen, 67);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)"P-256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt + 2, 65);
	params[2] = OSSL_PARAM_construct_end();
	assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
	assert_int_equal(EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
	EVP_PKEY_CTX_free(pc);
	return pk;
}

/* CKM_ECDH1_DERIVE: the derived key stays in the vHSM; what it computes
 * matches OpenSSL's ECDH (CKD_NULL) and X9.63 KDF. */
static void
test_ecdh_derive(void **state)
{
	CK_SESSION_HANDLE s = open_session();
	CK_OBJECT_HANDLE pub, priv, k, pub2, priv2;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_OBJECT_CLASS sec = CKO_SECRET_KEY;
	CK_KEY_TYPE gen_secret = CKK_GENERIC_SECRET, aes = CKK_AES;
	CK_ULONG l48 = 48, l16 = 16;
	CK_ATTRIBUTE dt[] = { { CKA_CLASS, &sec, sizeof(sec) }, { CKA_KEY_TYPE, &gen_secret, sizeof(gen_secret) },
			      { CKA_TOKEN, &no, sizeof(no) }, { CKA_LABEL, "ecdh", 4 } };
	CK_ATTRIBUTE dt_aes[] = { { CKA_KEY_TYPE, &aes, sizeof(aes) }, { CKA_TOKEN, &no, sizeof(no) } };
	CK_ATTRIBUTE dt_48[] = { { CKA_KEY_TYPE, &gen_secret, sizeof(gen_secret) }, { CKA_VALUE_LEN, &l48, sizeof(l48) } };
	CK_ATTRIBUTE dt_16[] = { { CKA_KEY_TYPE, &aes, sizeof(aes) }, { CKA_VALUE_LEN, &l16, sizeof(l16) } };
	/* pkcs11-tool --derive's template: an extractable, non-sensitive key */
	CK_ATTRIBUTE dt_ext[] = { { CKA_KEY_TYPE, &gen_secret, sizeof(gen_secret) },
				  { CKA_SENSITIVE, &no, sizeof(no) }, { CKA_EXTRACTABLE, &yes, sizeof(yes) } };
	EVP_PKEY *peer = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), *ours;
	EVP_PKEY_CTX *pc;
	unsigned char point[65], der_point[67], z[32], exp[32], okm[32];
	size_t plen = 0, zl = sizeof(z);
	CK_ECDH1_DERIVE_PARAMS ep = { CKD_NULL, 0, NULL, 65, point };
	CK_MECHANISM dm = { CKM_ECDH1_DERIVE, &ep, sizeof(ep) };
	CK_MECHANISM hm = { CKM_SHA256_HMAC, NULL, 0 };
	CK_BYTE msg[] = "derived", mac[32], shared[] = "shared info";
	CK_ULONG ml = sizeof(mac);
	unsigned el = 0;
	CK_MECHANISM_INFO mi;

	(void)state;
	assert_int_equal(f->C_GetMechanismInfo(0, CKM_ECDH1_DERIVE, &mi), CKR_OK);
	assert_true(mi.flags & CKF_DERIVE);
	gen_ec(s, "ecdh-base", &pub, &priv);
	assert_int_equal(get_bool(s, priv, CKA_DERIVE), CK_TRUE);
	ours = ec_pub_of(s, pub);
	assert_int_equal(EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &plen), 1);
	assert_int_equal(plen, 65);
	pc = EVP_PKEY_CTX_new(peer, NULL);
	assert_int_equal(EVP_PKEY_derive_init(pc), 1);
	assert_int_equal(EVP_PKEY_derive_set_peer(pc, ours), 1);
	assert_int_equal(EVP_PKEY_derive(pc, z, &zl), 1);
	/* CKD_NULL into a generic secret: HMAC under it = HMAC under Z */
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_OK);
	assert_int_equal(get_bool(s, k, CKA_SENSITIVE), CK_TRUE);
	assert_int_equal(get_bool(s, k, CKA_EXTRACTABLE), CK_FALSE);
	{
		CK_BYTE v[64];
		CK_ATTRIBUTE va = { CKA_VALUE, v, sizeof(v) };
		assert_int_equal(f->C_GetAttributeValue(s, k, &va, 1), CKR_ATTRIBUTE_SENSITIVE);
	}
	assert_int_equal(f->C_SignInit(s, &hm, k), CKR_OK);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), mac, &ml), CKR_OK);
	assert_non_null(HMAC(EVP_sha256(), z, 32, msg, sizeof(msg), exp, &el));
	assert_memory_equal(mac, exp, 32);
	/* the point as a DER OCTET STRING works too; CKD_SHA256_KDF = X9.63 */
	der_point[0] = 0x04;
	der_point[1] = 65;
	memcpy(der_point + 2, point, 65);
	ep.kdf = CKD_SHA256_KDF;
	ep.pPublicData = der_point;
	ep.ulPublicDataLen = 67;
	ep.pSharedData = shared;
	ep.ulSharedDataLen = sizeof(shared);
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_OK);
	{
		EVP_KDF *kdf = EVP_KDF_fetch(NULL, "X963KDF", NULL);
		EVP_KDF_CTX *kc = EVP_KDF_CTX_new(kdf);
		OSSL_PARAM params[4];
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)(uintptr_t)"SHA256", 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z, 32);
		params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, shared, sizeof(shared));
		params[3] = OSSL_PARAM_construct_end();
		assert_int_equal(EVP_KDF_derive(kc, okm, 32, params), 1);
		EVP_KDF_CTX_free(kc);
		EVP_KDF_free(kdf);
	}
	assert_int_equal(f->C_SignInit(s, &hm, k), CKR_OK);
	ml = sizeof(mac);
	assert_int_equal(f->C_Sign(s, msg, sizeof(msg), mac, &ml), CKR_OK);
	assert_non_null(HMAC(EVP_sha256(), okm, 32, msg, sizeof(msg), exp, &el));
	assert_memory_equal(mac, exp, 32);
	/* an AES key */
	ep.kdf = CKD_NULL;
	ep.pSharedData = NULL;
	ep.ulSharedDataLen = 0;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt_aes, 2, &k), CKR_OK);
	{
		CK_ULONG kt = 0;
		CK_ATTRIBUTE ka = { CKA_KEY_TYPE, &kt, sizeof(kt) };
		assert_int_equal(f->C_GetAttributeValue(s, k, &ka, 1), CKR_OK);
		assert_int_equal(kt, CKK_AES);
	}
	/* errors */
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt_ext, 3, &k), CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt_16, 2, &k), CKR_ATTRIBUTE_VALUE_INVALID);
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt_48, 2, &k), CKR_TEMPLATE_INCONSISTENT); /* 32 < 48 */
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt + 2, 1, &k), CKR_TEMPLATE_INCOMPLETE);
	assert_int_equal(f->C_DeriveKey(s, &dm, pub, dt, 4, &k), CKR_KEY_TYPE_INCONSISTENT);
	assert_int_equal(f->C_DeriveKey(s, &dm, 0xdead, dt, 4, &k), CKR_KEY_HANDLE_INVALID);
	ep.ulSharedDataLen = 3;
	ep.pSharedData = shared;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_PARAM_INVALID); /* CKD_NULL + data */
	ep.ulSharedDataLen = 0;
	ep.pSharedData = NULL;
	ep.kdf = CKD_SHA1_KDF;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_PARAM_INVALID);
	ep.kdf = CKD_NULL;
	ep.ulPublicDataLen = 64;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_PARAM_INVALID);
	ep.ulPublicDataLen = 65;
	point[64] ^= 1; /* not on the curve */
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_PARAM_INVALID);
	point[64] ^= 1;
	dm.ulParameterLen = 4;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_PARAM_INVALID);
	dm.ulParameterLen = sizeof(ep);
	dm.mechanism = CKM_ECDH1_COFACTOR_DERIVE;
	assert_int_equal(f->C_DeriveKey(s, &dm, priv, dt, 4, &k), CKR_MECHANISM_INVALID);
	dm.mechanism = CKM_ECDH1_DERIVE;
	/* a base key made without CKA_DERIVE */
	{
		CK_MECHANISM kp = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
		CK_ATTRIBUTE pt[] = { { CKA_EC_PARAMS, (CK_VOID_PTR)(uintptr_t)oid_p256, sizeof(oid_p256) },
				      { CKA_TOKEN, &no, sizeof(no) } };
		CK_ATTRIBUTE vt[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_DERIVE, &no, sizeof(no) } };
		assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt, 2, vt, 2, &pub2, &priv2), CKR_OK);
		assert_int_equal(f->C_DeriveKey(s, &dm, priv2, dt, 4, &k), CKR_KEY_FUNCTION_NOT_PERMITTED);
	}
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(ours);
	EVP_PKEY_free(peer);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

/* A self-signed certificate (DER, OPENSSL_malloc'ed). */
static int
make_cert(const char *cn, long serial, uint8_t **der)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	int l;

	assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
	assert_int_equal(X509_set_subject_name(x, n), 1);
	assert_int_equal(X509_set_issuer_name(x, n), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	assert_int_equal(X509_set_pubkey(x, pk), 1);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	*der = NULL;
	l = i2d_X509(x, der);
	assert_true(l > 0);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(pk);
	return l;
}

/* Certificates beside keys: C_CreateObject, found by class, label and ID. */
static void
test_certificates(void **state)
{
	CK_SESSION_HANDLE s = open_session(), ro = 0;
	CK_BBOOL no = CK_FALSE, yes = CK_TRUE;
	CK_OBJECT_CLASS cc = CKO_CERTIFICATE, dc = CKO_DATA, pk = CKO_PRIVATE_KEY;
	CK_CERTIFICATE_TYPE x509 = CKC_X_509, wtls = CKC_WTLS;
	CK_BYTE id[] = { 0x77 }, buf[4096];
	uint8_t *der = NULL, *subj = NULL, *ser = NULL;
	int dl = make_cert("cert test", 4242, &der), sl, serl;
	X509 *x;
	const unsigned char *p = der;
	CK_OBJECT_HANDLE h, pub, priv, found[8];
	CK_ULONG n = 0, ctype = 0;

	(void)state;
	x = d2i_X509(NULL, &p, dl);
	sl = i2d_X509_NAME(X509_get_subject_name(x), &subj);
	serl = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &ser);
	{
		CK_ATTRIBUTE t[] = {
			{ CKA_CLASS, &cc, sizeof(cc) }, { CKA_CERTIFICATE_TYPE, &x509, sizeof(x509) },
			{ CKA_TOKEN, &no, sizeof(no) }, { CKA_PRIVATE, &no, sizeof(no) },
			{ CKA_LABEL, "web", 3 }, { CKA_ID, id, sizeof(id) },
			{ CKA_SUBJECT, subj, (CK_ULONG)sl }, { CKA_SERIAL_NUMBER, ser, (CK_ULONG)serl },
			{ CKA_VALUE, der, (CK_ULONG)dl },
		};
		CK_ATTRIBUTE ft[] = { { CKA_CLASS, &cc, sizeof(cc) }, { CKA_LABEL, "web", 3 } };
		CK_ATTRIBUTE fid[] = { { CKA_ID, id, sizeof(id) } };
		CK_ATTRIBUTE rd[] = { { CKA_VALUE, buf, sizeof(buf) }, { CKA_CERTIFICATE_TYPE, &ctype, sizeof(ctype) } };
		CK_ATTRIBUTE rs[] = { { CKA_SUBJECT, NULL, 0 }, { CKA_ISSUER, NULL, 0 }, { CKA_SERIAL_NUMBER, NULL, 0 },
				      { CKA_KEY_TYPE, NULL, 0 } };
		CK_BYTE idb[8];
		CK_ATTRIBUTE ri[] = { { CKA_ID, idb, sizeof(idb) } };
		CK_MECHANISM ecdsa = { CKM_ECDSA_SHA256, NULL, 0 };
		CK_ATTRIBUTE bad[9];
		int kinds;

		assert_int_equal(f->C_CreateObject(s, t, 9, &h), CKR_OK);
		/* found by class and label */
		assert_int_equal(f->C_FindObjectsInit(s, ft, 2), CKR_OK);
		assert_int_equal(f->C_FindObjects(s, found, 8, &n), CKR_OK);
		assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
		assert_int_equal(n, 1);
		assert_int_equal(found[0], h);
		assert_int_equal(f->C_GetAttributeValue(s, h, rd, 2), CKR_OK);
		assert_int_equal(rd[0].ulValueLen, (CK_ULONG)dl);
		assert_memory_equal(buf, der, (size_t)dl);
		assert_int_equal(ctype, CKC_X_509);
		assert_int_equal(f->C_GetAttributeValue(s, h, ri, 1), CKR_OK);
		assert_int_equal(ri[0].ulValueLen, 1);
		assert_int_equal(idb[0], 0x77);
		assert_int_equal(f->C_GetAttributeValue(s, h, rs, 4), CKR_ATTRIBUTE_TYPE_INVALID);
		assert_int_equal(rs[0].ulValueLen, (CK_ULONG)sl);
		assert_int_equal(rs[1].ulValueLen, (CK_ULONG)sl); /* self-signed */
		assert_int_equal(rs[2].ulValueLen, (CK_ULONG)serl);
		assert_int_equal(get_bool(s, h, CKA_TOKEN), CK_FALSE);
		assert_int_equal(get_bool(s, h, CKA_PRIVATE), CK_FALSE);
		/* a key pair with the same label and ID: the three share CKA_ID */
		{
			CK_MECHANISM kp = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
			CK_ATTRIBUTE pt[] = { { CKA_EC_PARAMS, (CK_VOID_PTR)(uintptr_t)oid_p256, sizeof(oid_p256) },
					      { CKA_TOKEN, &no, sizeof(no) } };
			CK_ATTRIBUTE vt[] = { { CKA_TOKEN, &no, sizeof(no) }, { CKA_LABEL, "web", 3 },
					      { CKA_ID, id, sizeof(id) } };
			assert_int_equal(f->C_GenerateKeyPair(s, &kp, pt, 2, vt, 3, &pub, &priv), CKR_OK);
		}
		assert_int_equal(f->C_FindObjectsInit(s, fid, 1), CKR_OK);
		assert_int_equal(f->C_FindObjects(s, found, 8, &n), CKR_OK);
		assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
		assert_int_equal(n, 3);
		for (kinds = 0; n > 0; n--)
			kinds |= found[n - 1] == h ? 1 : found[n - 1] == pub ? 2 : found[n - 1] == priv ? 4 : 8;
		assert_int_equal(kinds, 7);
		/* a certificate is not a key */
		assert_int_equal(f->C_SignInit(s, &ecdsa, h), CKR_KEY_TYPE_INCONSISTENT);
		assert_int_equal(f->C_SetAttributeValue(s, h, t + 4, 1), CKR_ACTION_PROHIBITED);
		/* refusals */
		memcpy(bad, t, sizeof(t));
		bad[8].ulValueLen = (CK_ULONG)dl - 1;
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		memcpy(bad, t, sizeof(t));
		bad[7].ulValueLen = 1; /* another serial */
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_TEMPLATE_INCONSISTENT);
		memcpy(bad, t, sizeof(t));
		bad[1].pValue = &wtls;
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		memcpy(bad, t, sizeof(t));
		bad[0].pValue = &dc;
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		bad[0].pValue = &pk; /* keys never come in through templates */
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_VALUE_INVALID);
		assert_int_equal(f->C_CreateObject(s, t + 1, 8, &h), CKR_TEMPLATE_INCOMPLETE); /* no class */
		assert_int_equal(f->C_CreateObject(s, t, 8, &h), CKR_TEMPLATE_INCOMPLETE);     /* no value */
		memcpy(bad, t, sizeof(t));
		bad[3].pValue = &yes;
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_VALUE_INVALID); /* private */
		memcpy(bad, t, sizeof(t));
		bad[3].type = CKA_SIGN;
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_ATTRIBUTE_TYPE_INVALID);
		/* a token object: needs a R/W session, and (here) a sealed store */
		memcpy(bad, t, sizeof(t));
		bad[2].pValue = &yes;
		assert_int_equal(f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &ro), CKR_OK);
		assert_int_equal(f->C_CreateObject(ro, bad, 9, &h), CKR_SESSION_READ_ONLY);
		assert_int_equal(f->C_CreateObject(s, bad, 9, &h), CKR_TEMPLATE_INCONSISTENT);
		assert_int_equal(f->C_CloseSession(ro), CKR_OK);
		/* destroyed: gone from searches */
		assert_int_equal(f->C_DestroyObject(s, found[0] == h ? h : h), CKR_OK);
		assert_int_equal(f->C_FindObjectsInit(s, ft, 2), CKR_OK);
		assert_int_equal(f->C_FindObjects(s, found, 8, &n), CKR_OK);
		assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
		assert_int_equal(n, 0);
		assert_int_equal(f->C_GetAttributeValue(s, h, rd, 1), CKR_OBJECT_HANDLE_INVALID);
	}
	OPENSSL_free(subj);
	OPENSSL_free(ser);
	OPENSSL_free(der);
	X509_free(x);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

/* vhsmd restarts under a running application: sessions without session
 * objects go on (the module reconnects), a session that owned session
 * objects is closed, and while vhsmd is away calls fail cleanly. */
static void
test_reconnect(void **state)
{
	CK_SESSION_HANDLE a = open_session(), b = open_session();
	CK_OBJECT_HANDLE pub, priv;
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	CK_BYTE r[16];
	CK_ULONG n = 9;
	CK_SESSION_INFO si;

	(void)state;
	gen_ec(b, "volatile", &pub, &priv); /* a session object of b */
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_OK);
	kill_daemon();
	/* away: no token present, the call fails without a crash */
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_DEVICE_REMOVED);
	assert_int_equal(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	assert_int_equal(n, 0);
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_TOKEN_NOT_PRESENT);
	/* b owned session objects, which died with vhsmd: b is closed */
	assert_int_equal(f->C_GetSessionInfo(b, &si), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(f->C_SignInit(b, &m, priv), CKR_SESSION_HANDLE_INVALID);
	spawn_daemon();
	/* back: a works on, without the application doing anything */
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_OK);
	assert_int_equal(f->C_SignInit(a, &m, priv), CKR_KEY_HANDLE_INVALID);
	assert_int_equal(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	assert_int_equal(n, 1);
	/* restart while connected and idle: the next call reconnects by itself */
	kill_daemon();
	spawn_daemon();
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_OK);
	gen_ec(a, "after", &pub, &priv);
	kill_daemon();
	spawn_daemon();
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_DEVICE_REMOVED); /* a owned objects now */
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(f->C_CloseSession(a), CKR_SESSION_HANDLE_INVALID);
	assert_int_equal(f->C_CloseSession(b), CKR_SESSION_HANDLE_INVALID);
	a = open_session();
	assert_int_equal(f->C_GenerateRandom(a, r, sizeof(r)), CKR_OK);
	assert_int_equal(f->C_CloseSession(a), CKR_OK);
}

/* A forked child must call C_Initialize again, and then works. */
static void
test_fork(void **state)
{
	pid_t pid;
	int st = 0;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		CK_ULONG n = 0;
		CK_SESSION_HANDLE s = 0;
		CK_BYTE r[16];
		if (f->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED)
			_exit(1);
		if (f->C_Initialize(NULL) != CKR_OK)
			_exit(2);
		if (f->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
		    f->C_GenerateRandom(s, r, sizeof(r)) != CKR_OK)
			_exit(3);
		if (f->C_Finalize(NULL) != CKR_OK)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* the parent is unaffected */
	CK_SESSION_HANDLE s = open_session();
	CK_BYTE r[8];
	assert_int_equal(f->C_GenerateRandom(s, r, sizeof(r)), CKR_OK);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_cycles),
		cmocka_unit_test_setup_teardown(test_token_and_mechanisms, init, fini),
		cmocka_unit_test_setup_teardown(test_login, init, fini),
		cmocka_unit_test_setup_teardown(test_ec, init, fini),
		cmocka_unit_test_setup_teardown(test_aes_gcm, init, fini),
		cmocka_unit_test_setup_teardown(test_rsa, init, fini),
		cmocka_unit_test_setup_teardown(test_random, init, fini),
		cmocka_unit_test_setup_teardown(test_threads, init, fini),
		cmocka_unit_test_setup_teardown(test_fork, init, fini),
		cmocka_unit_test_setup_teardown(test_usage_flags, init, fini),
		cmocka_unit_test_setup_teardown(test_wrap_unwrap, init, fini),
		cmocka_unit_test_setup_teardown(test_ecdh_derive, init, fini),
		cmocka_unit_test_setup_teardown(test_certificates, init, fini),
		cmocka_unit_test_setup_teardown(test_reconnect, init, fini),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s VHSMD MODULE\n", argv[0]);
		return 2;
	}
	vhsmd_path = argv[1];
	module_path = argv[2];
	return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
