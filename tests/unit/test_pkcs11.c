/*
 * libvhsm-pkcs11 through its only entry point, C_GetFunctionList, against a
 * real vhsmd (argv[1]: vhsmd, argv[2]: the module).  vhsmd runs with a
 * volatile store; keys are session objects (CKA_TOKEN false).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>

/* Last: p11-kit's compatibility macros rename common words. */
#include <p11-kit/pkcs11.h>

static const char *vhsmd_path, *module_path;
static char dir[] = "/tmp/p11-unit-XXXXXX";
static char sock[300];
static pid_t daemon_pid;
static void *lib;
static CK_FUNCTION_LIST_PTR f;

static const CK_BYTE oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };

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
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "[vhsmd]\nsocket = %s\npolicy = %s/policy.json\nstate_dir = %s/state\n"
		    "secure_heap_size = 262144\n[sealing]\nstore = none\n", sock, dir, dir);
	fclose(fp);
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		execl(vhsmd_path, vhsmd_path, "--config", path, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 500 && access(sock, F_OK) != 0; i++)
		usleep(10000);
	assert_int_equal(access(sock, F_OK), 0);
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
	int st = 0;

	(void)state;
	if (lib != NULL)
		dlclose(lib);
	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, &st, 0);
	}
	snprintf(path, sizeof(path), "%s/policy.json", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/vhsmd.ini", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/state", dir);
	rmdir(path);
	rmdir(dir);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
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
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s VHSMD MODULE\n", argv[0]);
		return 2;
	}
	vhsmd_path = argv[1];
	module_path = argv[2];
	return cmocka_run_group_tests(tests, start_daemon, stop_daemon);
}
