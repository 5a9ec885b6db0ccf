/*
 * libvhsm-pkcs11: the vHSM (vhsmd) as a PKCS#11 v2.40 token (docs/pkcs11.md).
 *
 * One slot per configured vhsmd socket; the token's objects are the keys the
 * calling process may use (vhsm list).  Private and secret key material never
 * leaves vhsmd: signing, decryption, MACs and key generation are vHSM
 * requests; verification and public-key encryption run here with the public
 * key.  Authorisation is vhsmd's (its policy on the caller's kernel identity);
 * p11_Login accepts any PIN for applications that insist on one.
 *
 * Locking: one mutex guards the slot, session and object tables; it is never
 * held during a vHSM request, so threads with their own sessions sign in
 * parallel over the shared, thread-safe vhsm_client.
 */
#include "pkcs11/p11.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ecdsa.h>
#include <openssl/x509.h>

#define P11_EXPORT __attribute__((visibility("default")))
#define MAX_SESSIONS 4096
#define CONF_DEFAULT "/etc/nitride/vhsm-pkcs11.conf"

struct p11_session {
	CK_SESSION_HANDLE h;
	CK_SLOT_ID slot;
	CK_FLAGS flags;
	CK_OBJECT_HANDLE *found;
	size_t nfound, pos;
	int finding;
	struct p11_op sign, verify, enc, dec;
	int lost; /* its session objects died with vhsmd: the handle is invalid (kept until closed) */
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_init;
static pid_t g_pid;      /* the process that called C_Initialize */
static pid_t g_cur_pid;  /* this process: set by C_Initialize and in fork children */
static struct p11_slot g_slots[P11_MAX_SLOTS];
static size_t g_nslots;
static struct p11_session *g_sess[MAX_SESSIONS]; /* handle = index + 1 */
static int g_logged_in[P11_MAX_SLOTS];
static CK_OBJECT_HANDLE g_next_handle;
static unsigned long g_name_ctr;

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void
pad_copy(CK_UTF8CHAR *dst, size_t n, const char *src)
{
	size_t l = strlen(src);

	memset(dst, ' ', n);
	memcpy(dst, src, l < n ? l : n);
}

/* vhsm_status → CKR. */
static CK_RV
rv_of(int r)
{
	switch (r) {
	case VHSM_OK: return CKR_OK;
	case VHSM_E_DENIED: return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case VHSM_E_NOT_FOUND: return CKR_KEY_HANDLE_INVALID;
	case VHSM_E_USAGE: return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case VHSM_E_BAD_SIGNATURE: return CKR_SIGNATURE_INVALID;
	case VHSM_E_DECRYPT: return CKR_ENCRYPTED_DATA_INVALID;
	case VHSM_E_UNSUPPORTED: return CKR_MECHANISM_INVALID;
	case VHSM_E_NOMEM: return CKR_HOST_MEMORY;
	case VHSM_E_IO: return CKR_DEVICE_REMOVED;
	case VHSM_E_TOO_LARGE: return CKR_DATA_LEN_RANGE;
	case VHSM_E_NOT_ATTESTED: return CKR_KEY_FUNCTION_NOT_PERMITTED;
	case VHSM_E_RETIRED: return CKR_KEY_HANDLE_INVALID;
	case VHSM_E_EXISTS: return CKR_TEMPLATE_INCONSISTENT;
	case VHSM_E_ARGUMENT: return CKR_ARGUMENTS_BAD;
	default: return CKR_DEVICE_ERROR;
	}
}

static void
op_clear(struct p11_op *o)
{
	EVP_PKEY_free(o->pub);
	OPENSSL_clear_free(o->data, o->cap);
	OPENSSL_clear_free(o->ad, o->ad_len);
	OPENSSL_clear_free(o->result, o->result_len);
	memset(o, 0, sizeof(*o));
}

static void
obj_free(struct p11_obj *o)
{
	EVP_PKEY_free(o->pub);
	o->pub = NULL;
	free(o->value);
	o->value = NULL;
	o->value_len = 0;
}

/* Socket paths: $NITRIDE_VHSM_SOCKET (colon-separated), else `socket = PATH`
 * lines of $NITRIDE_PKCS11_CONF or /etc/nitride/vhsm-pkcs11.conf, else
 * $VHSM_SOCKET, else VHSM_DEFAULT_SOCKET. */
static void
add_slot(const char *path, size_t len)
{
	if (len == 0 || len >= sizeof(g_slots[0].socket) || g_nslots >= P11_MAX_SLOTS)
		return;
	memcpy(g_slots[g_nslots].socket, path, len);
	g_slots[g_nslots].socket[len] = '\0';
	g_nslots++;
}

static void
load_config(void)
{
	const char *env = getenv("NITRIDE_VHSM_SOCKET"), *conf;
	char line[512];
	FILE *f;

	if (env != NULL && *env != '\0') {
		const char *p = env;
		while (*p != '\0') {
			const char *e = strchr(p, ':');
			size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
			add_slot(p, l);
			p += l;
			if (*p == ':')
				p++;
		}
		return;
	}
	conf = getenv("NITRIDE_PKCS11_CONF");
	if ((f = fopen(conf != NULL ? conf : CONF_DEFAULT, "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			char *p = line, *e;
			while (*p == ' ' || *p == '\t')
				p++;
			if (strncmp(p, "socket", 6) != 0)
				continue;
			p += 6;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p++ != '=')
				continue;
			while (*p == ' ' || *p == '\t')
				p++;
			e = p + strlen(p);
			while (e > p && (e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			add_slot(p, (size_t)(e - p));
		}
		fclose(f);
		if (g_nslots > 0)
			return;
	}
	env = getenv("VHSM_SOCKET");
	if (env == NULL || *env == '\0')
		env = VHSM_DEFAULT_SOCKET;
	add_slot(env, strlen(env));
}

/* Drop all state.  `do_close`: 0 in a forked child (the parent owns the
 * connections; we only free our copies). */
static void
reset_state(int do_close)
{
	size_t i, j;

	for (i = 0; i < MAX_SESSIONS; i++) {
		struct p11_session *s = g_sess[i];
		if (s == NULL)
			continue;
		op_clear(&s->sign);
		op_clear(&s->verify);
		op_clear(&s->enc);
		op_clear(&s->dec);
		free(s->found);
		free(s);
		g_sess[i] = NULL;
	}
	for (i = 0; i < g_nslots; i++) {
		struct p11_slot *sl = &g_slots[i];
		for (j = 0; j < sl->nobjs; j++) {
			/* Session objects die with their sessions: volatile vHSM keys. */
			if (do_close && sl->objs[j].owner != 0 && sl->objs[j].cls != CKO_PUBLIC_KEY &&
			    sl->c != NULL)
				(void)!vhsm_delete(sl->c, sl->objs[j].name);
			obj_free(&sl->objs[j]);
		}
		free(sl->objs);
		if (do_close) {
			vhsm_close(sl->c);
			for (j = 0; j < sl->ndead; j++)
				vhsm_close(sl->dead[j]);
		}
		memset(sl, 0, sizeof(*sl));
	}
	memset(g_logged_in, 0, sizeof(g_logged_in));
	g_nslots = 0;
	g_init = 0;
}

/* Caller holds g_lock.  CKR_OK with the session, or the standard's error. */
static CK_RV
get_session(CK_SESSION_HANDLE h, struct p11_session **out)
{
	if (!g_init || g_pid != g_cur_pid)
		return CKR_CRYPTOKI_NOT_INITIALIZED;
	if (h == 0 || h > MAX_SESSIONS || g_sess[h - 1] == NULL || g_sess[h - 1]->lost)
		return CKR_SESSION_HANDLE_INVALID;
	*out = g_sess[h - 1];
	return CKR_OK;
}

static CK_RV
check_init(void)
{
	return g_init && g_pid == g_cur_pid ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
}

/* Caller holds g_lock.  Connects the slot if needed; 0 if connected. */
static int
slot_connect(struct p11_slot *sl)
{
	if (sl->c == NULL && vhsm_connect(sl->socket, &sl->c) != VHSM_OK)
		sl->c = NULL;
	return sl->c != NULL ? 0 : -1;
}

/*
 * Caller holds g_lock.  Connection c of slot sl failed: vhsmd went away (it
 * restarted, say).  Its volatile keys went with it, so a session that owns
 * session objects is closed as PKCS#11 closes sessions on token removal: its
 * handle answers CKR_SESSION_HANDLE_INVALID from now on (its memory stays
 * until C_CloseSession or C_Finalize: another thread may be inside a call on
 * it).  Other sessions and token objects go on; the next call reconnects.
 * c is not closed here (another thread may be in a request on it): it waits
 * in sl->dead until C_Finalize.  When that is full, the slot keeps the failed
 * connection and stays failed until C_Finalize.
 */
static void
slot_lost(struct p11_slot *sl, vhsm_client *c)
{
	size_t i, j, w;

	if (c == NULL || sl->c != c || sl->ndead == P11_MAX_DEAD)
		return;
	sl->dead[sl->ndead++] = c;
	sl->c = NULL;
	for (i = 0; i < MAX_SESSIONS; i++) {
		struct p11_session *s = g_sess[i];
		if (s == NULL || &g_slots[s->slot] != sl)
			continue;
		for (j = 0; j < sl->nobjs; j++)
			if (sl->objs[j].owner == s->h)
				s->lost = 1;
	}
	for (i = 0, w = 0; i < sl->nobjs; i++) {
		if (sl->objs[i].owner != 0 && g_sess[sl->objs[i].owner - 1]->lost)
			obj_free(&sl->objs[i]);
		else
			sl->objs[w++] = sl->objs[i];
	}
	sl->nobjs = w;
}

/* The session's connection, connecting if needed.  CKR_OK with *c, or the
 * session's error, or CKR_TOKEN_NOT_PRESENT while vhsmd cannot be reached. */
static CK_RV
session_client(CK_SESSION_HANDLE h, struct p11_session **sp, vhsm_client **c)
{
	struct p11_session *s;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(h, &s)) == CKR_OK) {
		if (slot_connect(&g_slots[s->slot]) != 0)
			rv = CKR_TOKEN_NOT_PRESENT;
		else
			*c = g_slots[s->slot].c;
		if (sp != NULL)
			*sp = s;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/*
 * A request of session h on connection `old` failed with VHSM_E_IO.  Records
 * the loss (slot_lost) and, when `c` is given, reconnects: CKR_OK with the new
 * connection in *c if the session survived and vhsmd answers again (the caller
 * may then repeat a request that changes nothing in vhsmd), else
 * CKR_DEVICE_REMOVED (the token went away during the call).
 */
static CK_RV
client_lost(CK_SESSION_HANDLE h, vhsm_client *old, vhsm_client **c)
{
	struct p11_session *s;
	struct p11_slot *sl;
	CK_RV rv = CKR_DEVICE_REMOVED;

	pthread_mutex_lock(&g_lock);
	if (!g_init || g_pid != g_cur_pid || h == 0 || h > MAX_SESSIONS || (s = g_sess[h - 1]) == NULL)
		goto out;
	sl = &g_slots[s->slot];
	slot_lost(sl, old);
	if (c != NULL && !s->lost && slot_connect(sl) == 0 && sl->c != old) {
		*c = sl->c;
		rv = CKR_OK;
	}
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static int
vk_is_asym(vhsm_key_type t)
{
	return t >= VHSM_KEY_EC_P256 && t <= VHSM_KEY_RSA4096;
}

static CK_KEY_TYPE
kt_of(vhsm_key_type t)
{
	switch (t) {
	case VHSM_KEY_AES256: return CKK_AES;
	case VHSM_KEY_HMAC_SHA256: return CKK_SHA256_HMAC;
	case VHSM_KEY_HMAC_SHA384: return CKK_SHA384_HMAC;
	case VHSM_KEY_EC_P256: case VHSM_KEY_EC_P384: return CKK_EC;
	case VHSM_KEY_RSA2048: case VHSM_KEY_RSA3072: case VHSM_KEY_RSA4096: return CKK_RSA;
	default: return (CK_KEY_TYPE)-1;
	}
}

static struct p11_obj *
find_obj(struct p11_slot *sl, const char *name, CK_OBJECT_CLASS cls)
{
	size_t i;

	for (i = 0; i < sl->nobjs; i++)
		if (sl->objs[i].cls == cls && strcmp(sl->objs[i].name, name) == 0)
			return &sl->objs[i];
	return NULL;
}

static struct p11_obj *
obj_by_handle(CK_OBJECT_HANDLE h, struct p11_slot **slp)
{
	size_t i, j;

	for (i = 0; i < g_nslots; i++)
		for (j = 0; j < g_slots[i].nobjs; j++)
			if (g_slots[i].objs[j].h == h) {
				if (slp != NULL)
					*slp = &g_slots[i];
				return &g_slots[i].objs[j];
			}
	return NULL;
}

/* Caller holds g_lock.  Room for `need` more objects in the slot's table. */
static CK_RV
objs_reserve(struct p11_slot *sl, size_t need)
{
	if (sl->nobjs + need > sl->cap) {
		size_t nc = sl->cap ? sl->cap * 2 : 32;
		struct p11_obj *n = realloc(sl->objs, nc * sizeof(*n));
		if (n == NULL)
			return CKR_HOST_MEMORY;
		sl->objs = n;
		sl->cap = nc;
	}
	return CKR_OK;
}

/* Caller holds g_lock.  Adds the CKO_CERTIFICATE object of a vHSM cert
 * object whose DER certificate is der (copied); idempotent. */
static CK_RV
add_cert_object(struct p11_slot *sl, const vhsm_key_info *ki, CK_SESSION_HANDLE owner,
		const uint8_t *der, size_t der_len)
{
	struct p11_obj *o = find_obj(sl, ki->name, CKO_CERTIFICATE);
	uint8_t *copy = NULL;
	CK_RV rv;

	if (o != NULL) {
		o->seen = 1;
		if (o->value_len == der_len && memcmp(o->value, der, der_len) == 0)
			return CKR_OK;
	}
	if (der_len == 0 || (copy = malloc(der_len)) == NULL)
		return der_len == 0 ? CKR_DEVICE_ERROR : CKR_HOST_MEMORY;
	memcpy(copy, der, der_len);
	if (o != NULL) { /* a new version of the certificate (vhsm rotate with data) */
		free(o->value);
		o->value = copy;
		o->value_len = der_len;
		o->info = *ki;
		return CKR_OK;
	}
	if ((rv = objs_reserve(sl, 1)) != CKR_OK) {
		free(copy);
		return rv;
	}
	o = &sl->objs[sl->nobjs++];
	memset(o, 0, sizeof(*o));
	o->h = ++g_next_handle;
	o->cls = CKO_CERTIFICATE;
	o->kt = (CK_KEY_TYPE)-1;
	snprintf(o->name, sizeof(o->name), "%s", ki->name);
	o->info = *ki;
	o->owner = owner;
	o->seen = 1;
	o->value = copy;
	o->value_len = der_len;
	return CKR_OK;
}

/* Caller holds g_lock.  Adds the objects of one vHSM key (idempotent). */
static CK_RV
add_key_objects(struct p11_slot *sl, const vhsm_key_info *ki, CK_SESSION_HANDLE owner)
{
	CK_KEY_TYPE kt = kt_of(ki->type);
	int asym = kt == CKK_EC || kt == CKK_RSA;
	struct p11_obj *o;
	EVP_PKEY *pub = NULL;
	uint8_t *spki = NULL;
	size_t spki_len = 0, need = asym ? 2 : 1, k;
	CK_RV rv = CKR_OK;

	if (ki->type == VHSM_KEY_CERT) {
		uint8_t *der = NULL;
		size_t dl = 0;
		o = find_obj(sl, ki->name, CKO_CERTIFICATE);
		if (o != NULL && o->info.version == ki->version) {
			o->seen = 1;
			return CKR_OK;
		}
		/* A certificate is read with get_public; without it there is no object. */
		if (vhsm_read_public_data(sl->c, ki->name, NULL, &der, &dl) != VHSM_OK)
			return CKR_OK;
		rv = add_cert_object(sl, ki, owner, der, dl);
		vhsm_buf_free(der, dl);
		return rv;
	}
	if (kt == (CK_KEY_TYPE)-1)
		return CKR_OK; /* ed25519 and opaque secrets are not offered */
	o = find_obj(sl, ki->name, asym ? CKO_PRIVATE_KEY : CKO_SECRET_KEY);
	if (o != NULL) {
		o->info = *ki;
		o->seen = 1;
		if ((o = find_obj(sl, ki->name, CKO_PUBLIC_KEY)) != NULL)
			o->seen = 1;
		return CKR_OK;
	}
	if (asym && vhsm_get_public(sl->c, ki->name, NULL, &spki, &spki_len) == VHSM_OK) {
		const uint8_t *p = spki;
		pub = d2i_PUBKEY(NULL, &p, (long)spki_len);
	}
	if ((rv = objs_reserve(sl, need)) != CKR_OK)
		goto out;
	for (k = 0; k < need; k++) {
		o = &sl->objs[sl->nobjs++];
		memset(o, 0, sizeof(*o));
		o->h = ++g_next_handle;
		o->cls = !asym ? CKO_SECRET_KEY : k == 0 ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
		o->kt = kt;
		snprintf(o->name, sizeof(o->name), "%s", ki->name);
		o->info = *ki;
		o->owner = owner;
		o->seen = 1;
		if (pub != NULL && EVP_PKEY_up_ref(pub) == 1)
			o->pub = pub;
	}
	if (asym && pub == NULL)
		sl->nobjs--; /* no public key: no public-key object */
out:
	EVP_PKEY_free(pub);
	vhsm_buf_free(spki, spki_len);
	return rv;
}

/* Caller holds g_lock.  Re-reads the key list; keeps handles of keys still there. */
static CK_RV
refresh_slot(struct p11_slot *sl)
{
	vhsm_key_info *infos = NULL;
	size_t n = 0, i, w;
	CK_RV rv = CKR_OK;
	int r;

	if (slot_connect(sl) != 0)
		return CKR_DEVICE_REMOVED;
	if ((r = vhsm_list(sl->c, &infos, &n)) == VHSM_E_IO) {
		/* vhsmd restarted: a listing changes nothing, so list again on a new connection. */
		slot_lost(sl, sl->c);
		if (slot_connect(sl) != 0)
			return CKR_DEVICE_REMOVED;
		r = vhsm_list(sl->c, &infos, &n);
	}
	if (r != VHSM_OK) {
		rv = r == VHSM_E_DENIED ? CKR_OK : rv_of(r);
		goto out;
	}
	for (i = 0; i < sl->nobjs; i++)
		sl->objs[i].seen = 0;
	for (i = 0; i < n && rv == CKR_OK; i++)
		rv = add_key_objects(sl, &infos[i], 0);
	for (i = 0, w = 0; i < sl->nobjs; i++) {
		if (sl->objs[i].seen)
			sl->objs[w++] = sl->objs[i];
		else
			obj_free(&sl->objs[i]);
	}
	sl->nobjs = w;
out:
	free(infos);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                          */

/* CKA_ID: the bytes after "+id" when the name ends in "+id<hex>", else the
 * first 16 bytes of SHA-256(name).  CKA_LABEL: the name without that suffix.
 * Both are functions of the name, hence stable across restarts. */
static size_t
name_label_len(const char *name, uint8_t id[64], size_t *id_len)
{
	const char *p = strstr(name, "+id");
	size_t l = strlen(name), hl, i;

	if (p != NULL && (hl = strlen(p + 3)) > 0 && hl % 2 == 0 && hl / 2 <= 64 &&
	    strspn(p + 3, "0123456789abcdefABCDEF") == hl) {
		for (i = 0; i < hl / 2; i++) {
			char b[3] = { p[3 + 2 * i], p[4 + 2 * i], 0 };
			id[i] = (uint8_t)strtoul(b, NULL, 16);
		}
		*id_len = hl / 2;
		return (size_t)(p - name);
	}
	{
		unsigned char md[32];
		unsigned int ml = 0;
		EVP_Digest(name, l, md, &ml, EVP_sha256(), NULL);
		memcpy(id, md, 16);
		*id_len = 16;
	}
	return l;
}

/* Certificates live in vhsmd beside their keys under the key's name plus this
 * suffix ('+' never occurs in names the module makes from labels), so a key
 * pair and its certificate share CKA_LABEL and CKA_ID. */
#define CERT_SUFFIX "+cert"

/* name_label_len for an object: a certificate's name without CERT_SUFFIX. */
static size_t
obj_label_id(const struct p11_obj *o, uint8_t id[64], size_t *id_len)
{
	char base[129];
	size_t l = strlen(o->name), sl = sizeof(CERT_SUFFIX) - 1;

	if (o->cls != CKO_CERTIFICATE || l <= sl || strcmp(o->name + l - sl, CERT_SUFFIX) != 0)
		return name_label_len(o->name, id, id_len);
	memcpy(base, o->name, l - sl);
	base[l - sl] = '\0';
	return name_label_len(base, id, id_len);
}

static const uint8_t oid_p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t oid_p384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

static uint32_t
usage_for(const struct p11_obj *o, uint32_t bit)
{
	return (o->info.usages & bit) != 0;
}

/* A DER encoding made by an i2d function into *heap (caller frees). */
#define DER_INTO_HEAP(call) do { \
	unsigned char *d_ = NULL; int l_ = (call); \
	if (l_ <= 0) { rv = CKR_GENERAL_ERROR; goto out; } \
	*heap = d_; *ptr = d_; *len = (size_t)l_; goto out; } while (0)

/* attr_value for a certificate object (PKCS#11 v2.40 §4.6, X.509 certificates):
 * the DER value and what OpenSSL reads from it. */
static CK_RV
cert_attr_value(const struct p11_obj *o, CK_ATTRIBUTE_TYPE type, uint8_t *tmp, size_t tmpsz,
		const void **ptr, size_t *len, uint8_t **heap)
{
	const unsigned char *p = o->value;
	X509 *x = NULL;
	CK_BBOOL b;
	CK_ULONG ul;
	uint8_t id[64];
	size_t idl = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	CK_RV rv = CKR_OK;

#define CBOOL(v) do { b = (v) ? CK_TRUE : CK_FALSE; memcpy(tmp, &b, sizeof(b)); *len = sizeof(b); goto out; } while (0)
#define CULONG(v) do { ul = (v); memcpy(tmp, &ul, sizeof(ul)); *len = sizeof(ul); goto out; } while (0)
	switch (type) {
	case CKA_CLASS: CULONG(CKO_CERTIFICATE);
	case CKA_CERTIFICATE_TYPE: CULONG(CKC_X_509);
	case CKA_CERTIFICATE_CATEGORY: CULONG(0); /* unspecified */
	case CKA_JAVA_MIDP_SECURITY_DOMAIN: CULONG(0);
	case CKA_TOKEN: CBOOL(o->owner == 0);
	case CKA_PRIVATE: case CKA_MODIFIABLE: case CKA_COPYABLE: case CKA_TRUSTED: CBOOL(0);
	case CKA_DESTROYABLE: CBOOL(1);
	case CKA_LABEL:
		*len = obj_label_id(o, id, &idl);
		*ptr = o->name;
		goto out;
	case CKA_ID:
		(void)obj_label_id(o, id, &idl);
		if (idl > tmpsz)
			return CKR_GENERAL_ERROR;
		memcpy(tmp, id, idl);
		*len = idl;
		goto out;
	case CKA_VALUE:
		*ptr = o->value;
		*len = o->value_len;
		goto out;
	case CKA_CHECK_VALUE: /* the first 3 bytes of SHA-1(CKA_VALUE), as the standard defines it */
		if (EVP_Digest(o->value, o->value_len, md, &ml, EVP_sha1(), NULL) != 1 || tmpsz < 3)
			return CKR_GENERAL_ERROR;
		memcpy(tmp, md, 3);
		*len = 3;
		goto out;
	case CKA_START_DATE: case CKA_END_DATE: case CKA_URL:
	case CKA_HASH_OF_SUBJECT_PUBLIC_KEY: case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
		*len = 0;
		goto out;
	case CKA_SUBJECT: case CKA_ISSUER: case CKA_SERIAL_NUMBER: case CKA_PUBLIC_KEY_INFO:
		break;
	default:
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
	if ((x = d2i_X509(NULL, &p, (long)o->value_len)) == NULL)
		return CKR_GENERAL_ERROR;
	if (type == CKA_SUBJECT)
		DER_INTO_HEAP(i2d_X509_NAME(X509_get_subject_name(x), &d_));
	if (type == CKA_ISSUER)
		DER_INTO_HEAP(i2d_X509_NAME(X509_get_issuer_name(x), &d_));
	if (type == CKA_SERIAL_NUMBER) /* the DER INTEGER, as PKCS#11 and its clients use it */
		DER_INTO_HEAP(i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &d_));
	DER_INTO_HEAP(i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &d_));
#undef CBOOL
#undef CULONG
out:
	X509_free(x);
	return rv;
}

/* Writes attribute `type` of o into a temporary; *len its length.
 * Returns CKR_OK, CKR_ATTRIBUTE_TYPE_INVALID or CKR_ATTRIBUTE_SENSITIVE;
 * *heap is set when *ptr was allocated (caller frees). */
static CK_RV
attr_value(const struct p11_obj *o, CK_ATTRIBUTE_TYPE type, uint8_t *tmp, size_t tmpsz,
	   const void **ptr, size_t *len, uint8_t **heap)
{
	CK_BBOOL t = CK_TRUE, f = CK_FALSE, b;
	CK_ULONG ul;
	int priv = o->cls == CKO_PRIVATE_KEY, pubo = o->cls == CKO_PUBLIC_KEY;
	int secret = o->cls == CKO_SECRET_KEY;
	uint8_t id[64];
	size_t idl = 0;
	BIGNUM *bn = NULL;

	*heap = NULL;
	*ptr = tmp;
	if (o->cls == CKO_CERTIFICATE)
		return cert_attr_value(o, type, tmp, tmpsz, ptr, len, heap);
#define BOOL(v) do { b = (v) ? t : f; memcpy(tmp, &b, sizeof(b)); *len = sizeof(b); return CKR_OK; } while (0)
#define ULONG(v) do { ul = (v); memcpy(tmp, &ul, sizeof(ul)); *len = sizeof(ul); return CKR_OK; } while (0)
	switch (type) {
	case CKA_CLASS: ULONG(o->cls);
	case CKA_KEY_TYPE: ULONG(o->kt);
	case CKA_TOKEN: BOOL(o->owner == 0);
	case CKA_PRIVATE: BOOL(0);
	case CKA_MODIFIABLE: BOOL(0);
	case CKA_COPYABLE: BOOL(0);
	case CKA_DESTROYABLE: BOOL(1);
	case CKA_LABEL:
		*len = obj_label_id(o, id, &idl);
		*ptr = o->name;
		return CKR_OK;
	case CKA_ID:
		(void)obj_label_id(o, id, &idl);
		if (idl > tmpsz)
			return CKR_GENERAL_ERROR;
		memcpy(tmp, id, idl);
		*len = idl;
		return CKR_OK;
	case CKA_START_DATE: case CKA_END_DATE:
		*len = 0;
		return CKR_OK;
	case CKA_LOCAL: BOOL(o->info.origin == VHSM_ORIGIN_GENERATED);
	case CKA_KEY_GEN_MECHANISM:
		if (o->info.origin != VHSM_ORIGIN_GENERATED)
			ULONG(CK_UNAVAILABLE_INFORMATION);
		ULONG(o->kt == CKK_EC ? CKM_EC_KEY_PAIR_GEN : o->kt == CKK_RSA ? CKM_RSA_PKCS_KEY_PAIR_GEN
		      : o->kt == CKK_AES ? CKM_AES_KEY_GEN : CKM_GENERIC_SECRET_KEY_GEN);
	case CKA_DERIVE: BOOL(!pubo && usage_for(o, VHSM_USAGE_DERIVE));
	case CKA_ALLOWED_MECHANISMS:
		*len = 0;
		return CKR_OK;
	default:
		break;
	}
	if (priv || secret) {
		switch (type) {
		case CKA_SENSITIVE: case CKA_ALWAYS_SENSITIVE: BOOL(1);
		case CKA_EXTRACTABLE: BOOL(0);
		case CKA_NEVER_EXTRACTABLE: BOOL(1);
		case CKA_SIGN: BOOL(usage_for(o, VHSM_USAGE_SIGN) || usage_for(o, VHSM_USAGE_MAC));
		case CKA_DECRYPT: BOOL(usage_for(o, VHSM_USAGE_DECRYPT));
		case CKA_UNWRAP: BOOL(usage_for(o, VHSM_USAGE_UNWRAP));
		case CKA_SIGN_RECOVER: BOOL(0);
		case CKA_WRAP_WITH_TRUSTED: BOOL(0);
		case CKA_ALWAYS_AUTHENTICATE: BOOL(0);
		case CKA_VALUE: case CKA_PRIVATE_EXPONENT: case CKA_PRIME_1: case CKA_PRIME_2:
		case CKA_EXPONENT_1: case CKA_EXPONENT_2: case CKA_COEFFICIENT:
			return CKR_ATTRIBUTE_SENSITIVE;
		default:
			break;
		}
	}
	if (secret) {
		switch (type) {
		case CKA_VALUE_LEN:
			ULONG(o->info.type == VHSM_KEY_HMAC_SHA384 ? 48 : 32);
		case CKA_ENCRYPT: BOOL(usage_for(o, VHSM_USAGE_ENCRYPT));
		case CKA_VERIFY: BOOL(usage_for(o, VHSM_USAGE_VERIFY));
		case CKA_WRAP: BOOL(usage_for(o, VHSM_USAGE_WRAP));
		case CKA_TRUSTED: BOOL(0);
		default:
			return CKR_ATTRIBUTE_TYPE_INVALID;
		}
	}
	if (pubo) {
		switch (type) {
		case CKA_VERIFY: BOOL(usage_for(o, VHSM_USAGE_VERIFY));
		case CKA_ENCRYPT: BOOL(o->kt == CKK_RSA && usage_for(o, VHSM_USAGE_ENCRYPT));
		case CKA_WRAP: BOOL(0);
		case CKA_VERIFY_RECOVER: BOOL(0);
		case CKA_TRUSTED: BOOL(0);
		default:
			break;
		}
	}
	if (type == CKA_SUBJECT) {
		*len = 0;
		return CKR_OK;
	}
	if (o->pub == NULL)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (type == CKA_PUBLIC_KEY_INFO) {
		int l = i2d_PUBKEY(o->pub, heap);
		if (l <= 0)
			return CKR_HOST_MEMORY;
		*ptr = *heap;
		*len = (size_t)l;
		return CKR_OK;
	}
	if (o->kt == CKK_EC) {
		if (type == CKA_EC_PARAMS) {
			*ptr = o->info.type == VHSM_KEY_EC_P256 ? oid_p256 : oid_p384;
			*len = o->info.type == VHSM_KEY_EC_P256 ? sizeof(oid_p256) : sizeof(oid_p384);
			return CKR_OK;
		}
		if (type == CKA_EC_POINT) {
			X509_PUBKEY *xp = NULL;
			const unsigned char *pt = NULL;
			int pl = 0;
			/* DER OCTET STRING of the uncompressed point (≤ 97 bytes: short form).
			 * Through the SPKI encoding: works for provider and legacy (engine) keys. */
			if (X509_PUBKEY_set(&xp, o->pub) != 1 ||
			    X509_PUBKEY_get0_param(NULL, &pt, &pl, NULL, xp) != 1 || pl <= 0 || pl > 127 ||
			    (size_t)pl + 2 > tmpsz) {
				X509_PUBKEY_free(xp);
				return CKR_GENERAL_ERROR;
			}
			tmp[0] = 0x04;
			tmp[1] = (uint8_t)pl;
			memcpy(tmp + 2, pt, (size_t)pl);
			*len = (size_t)pl + 2;
			X509_PUBKEY_free(xp);
			return CKR_OK;
		}
		return CKR_ATTRIBUTE_TYPE_INVALID;
	}
	if (type == CKA_MODULUS_BITS && pubo)
		ULONG((CK_ULONG)EVP_PKEY_get_bits(o->pub));
	if (type == CKA_MODULUS || type == CKA_PUBLIC_EXPONENT) {
		int l;
		if (EVP_PKEY_get_bn_param(o->pub, type == CKA_MODULUS ? OSSL_PKEY_PARAM_RSA_N
					  : OSSL_PKEY_PARAM_RSA_E, &bn) != 1)
			return CKR_GENERAL_ERROR;
		l = BN_num_bytes(bn);
		if (l <= 0 || (size_t)l > tmpsz) {
			BN_free(bn);
			return CKR_GENERAL_ERROR;
		}
		BN_bn2bin(bn, tmp);
		BN_free(bn);
		*len = (size_t)l;
		return CKR_OK;
	}
#undef BOOL
#undef ULONG
	return CKR_ATTRIBUTE_TYPE_INVALID;
}

/* C_GetAttributeValue's rules for one object (PKCS#11 v2.40 §5.7). */
static CK_RV
get_attrs(const struct p11_obj *o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_RV rv = CKR_OK;
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		uint8_t tmp[1024], *heap = NULL;
		const void *p = NULL;
		size_t len = 0;
		CK_RV r = attr_value(o, t[i].type, tmp, sizeof(tmp), &p, &len, &heap);

		if (r == CKR_GENERAL_ERROR || r == CKR_HOST_MEMORY) {
			OPENSSL_free(heap);
			return r;
		}
		if (r != CKR_OK) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = r;
		} else if (t[i].pValue == NULL) {
			t[i].ulValueLen = len;
		} else if (t[i].ulValueLen < len) {
			t[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			if (len > 0)
				memcpy(t[i].pValue, p, len);
			t[i].ulValueLen = len;
		}
		OPENSSL_free(heap);
	}
	return rv;
}

static int
obj_matches(const struct p11_obj *o, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
	CK_ULONG i;

	for (i = 0; i < n; i++) {
		uint8_t tmp[1024], *heap = NULL;
		const void *p = NULL;
		size_t len = 0;
		int ok = attr_value(o, t[i].type, tmp, sizeof(tmp), &p, &len, &heap) == CKR_OK &&
			 len == t[i].ulValueLen && (len == 0 || memcmp(p, t[i].pValue, len) == 0);
		OPENSSL_free(heap);
		if (!ok)
			return 0;
	}
	return 1;
}

/* ------------------------------------------------------------------ */
/* Mechanisms                                                          */

struct mech {
	CK_MECHANISM_TYPE m;
	CK_ULONG min, max;
	CK_FLAGS flags;
};

#define ECF (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)
static const struct mech mechs[] = {
	{ CKM_EC_KEY_PAIR_GEN, 256, 384, CKF_GENERATE_KEY_PAIR | ECF },
	/* Raw-digest ECDSA: vhsmd hashes what it signs, so only verification (here). */
	{ CKM_ECDSA, 256, 384, CKF_SIGN | CKF_VERIFY | ECF },
	{ CKM_ECDSA_SHA256, 256, 384, CKF_SIGN | CKF_VERIFY | ECF },
	{ CKM_ECDSA_SHA384, 256, 384, CKF_SIGN | CKF_VERIFY | ECF },
	{ CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR },
	{ CKM_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_SHA256_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_SHA384_RSA_PKCS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_SHA256_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_SHA384_RSA_PKCS_PSS, 2048, 4096, CKF_SIGN | CKF_VERIFY },
	{ CKM_RSA_PKCS_OAEP, 2048, 4096, CKF_ENCRYPT | CKF_DECRYPT },
	{ CKM_AES_KEY_GEN, 32, 32, CKF_GENERATE },
	{ CKM_AES_GCM, 32, 32, CKF_ENCRYPT | CKF_DECRYPT },
	{ CKM_SHA256_HMAC, 32, 32, CKF_SIGN | CKF_VERIFY },
	/* RFC 5649.  No decrypt: vhsmd's unwrap makes a key and never returns the
	 * plaintext.  Encrypt wraps caller bytes; C_WrapKey of a vHSM key is refused. */
	{ CKM_AES_KEY_WRAP_PAD, 32, 32, CKF_ENCRYPT | CKF_WRAP | CKF_UNWRAP },
	{ CKM_ECDH1_DERIVE, 256, 384, CKF_DERIVE | ECF },
};
#define NMECHS (sizeof(mechs) / sizeof(mechs[0]))

static const struct mech *
mech_find(CK_MECHANISM_TYPE m)
{
	size_t i;

	for (i = 0; i < NMECHS; i++)
		if (mechs[i].m == m)
			return &mechs[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* General, slot and token functions                                   */

static CK_FUNCTION_LIST function_list;

/* fork(): the child must find g_lock unlocked (another thread may hold it at
 * the fork); glibc drops these handlers when the module is dlclose()d. */
static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_release(void) { pthread_mutex_unlock(&g_lock); }
/* The child also learns that it is one: every call checks g_pid against the
 * current pid, and reading a variable is cheaper than the getpid() system
 * call on each operation (glibc no longer caches it). */
static void atfork_child(void) { g_cur_pid = getpid(); pthread_mutex_unlock(&g_lock); }
static void atfork_register(void) { (void)pthread_atfork(atfork_prepare, atfork_release, atfork_child); }
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static CK_RV
p11_Initialize(CK_VOID_PTR pInitArgs)
{
	CK_C_INITIALIZE_ARGS *a = pInitArgs;
	CK_RV rv = CKR_OK;

	if (a != NULL) {
		if (a->pReserved != NULL)
			return CKR_ARGUMENTS_BAD;
		int some = a->CreateMutex != NULL || a->DestroyMutex != NULL || a->LockMutex != NULL ||
			   a->UnlockMutex != NULL;
		int all = a->CreateMutex != NULL && a->DestroyMutex != NULL && a->LockMutex != NULL &&
			  a->UnlockMutex != NULL;
		if (some && !all)
			return CKR_ARGUMENTS_BAD;
		/* Application mutexes without OS locking: we cannot use them for the
		 * library's own threads; the standard allows CKR_CANT_LOCK. */
		if (all && !(a->flags & CKF_OS_LOCKING_OK))
			return CKR_CANT_LOCK;
	}
	(void)pthread_once(&g_atfork_once, atfork_register);
	pthread_mutex_lock(&g_lock);
	g_cur_pid = getpid();
	if (g_init && g_pid == g_cur_pid) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	if (g_init)
		reset_state(0); /* a forked child: the parent's connections are not ours */
	load_config();
	g_pid = g_cur_pid;
	g_init = 1;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_Finalize(CK_VOID_PTR pReserved)
{
	CK_RV rv = CKR_OK;

	if (pReserved != NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) == CKR_OK)
		reset_state(1);
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_GetInfo(CK_INFO_PTR pInfo)
{
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	rv = check_init();
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	memset(pInfo, 0, sizeof(*pInfo));
	pInfo->cryptokiVersion.major = 2;
	pInfo->cryptokiVersion.minor = 40;
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "Nitride");
	pad_copy(pInfo->libraryDescription, sizeof(pInfo->libraryDescription), "Nitride vHSM PKCS#11");
	pInfo->libraryVersion.major = 0;
	pInfo->libraryVersion.minor = 1;
	return CKR_OK;
}

P11_EXPORT CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList)
{
	if (ppFunctionList == NULL)
		return CKR_ARGUMENTS_BAD;
	*ppFunctionList = &function_list;
	return CKR_OK;
}

static CK_RV
p11_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
	CK_SLOT_ID ids[P11_MAX_SLOTS];
	CK_ULONG n = 0, i;
	CK_RV rv;

	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) != CKR_OK)
		goto out;
	for (i = 0; i < g_nslots; i++)
		if (!tokenPresent || slot_connect(&g_slots[i]) == 0)
			ids[n++] = i;
	if (pSlotList == NULL) {
		*pulCount = n;
	} else if (*pulCount < n) {
		*pulCount = n;
		rv = CKR_BUFFER_TOO_SMALL;
	} else {
		memcpy(pSlotList, ids, n * sizeof(ids[0]));
		*pulCount = n;
	}
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo)
{
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) != CKR_OK)
		goto out;
	if (slotID >= g_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	memset(pInfo, 0, sizeof(*pInfo));
	pad_copy(pInfo->slotDescription, sizeof(pInfo->slotDescription), g_slots[slotID].socket);
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "Nitride");
	pInfo->flags = CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
	if (slot_connect(&g_slots[slotID]) == 0)
		pInfo->flags |= CKF_TOKEN_PRESENT;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo)
{
	CK_RV rv;
	char label[33];
	size_t i, sessions = 0;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) != CKR_OK)
		goto out;
	if (slotID >= g_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	if (slot_connect(&g_slots[slotID]) != 0) {
		rv = CKR_TOKEN_NOT_PRESENT;
		goto out;
	}
	for (i = 0; i < MAX_SESSIONS; i++)
		if (g_sess[i] != NULL && g_sess[i]->slot == slotID)
			sessions++;
	memset(pInfo, 0, sizeof(*pInfo));
	snprintf(label, sizeof(label), "vhsm%zu", (size_t)slotID);
	pad_copy(pInfo->label, sizeof(pInfo->label), label);
	pad_copy(pInfo->manufacturerID, sizeof(pInfo->manufacturerID), "Nitride");
	pad_copy(pInfo->model, sizeof(pInfo->model), "vhsmd");
	snprintf(label, sizeof(label), "%zu", (size_t)slotID);
	pad_copy(pInfo->serialNumber, sizeof(pInfo->serialNumber), label);
	/* No CKF_LOGIN_REQUIRED: vhsmd authorises each request itself. */
	pInfo->flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
	pInfo->ulMaxSessionCount = MAX_SESSIONS;
	pInfo->ulSessionCount = sessions;
	pInfo->ulMaxRwSessionCount = MAX_SESSIONS;
	pInfo->ulRwSessionCount = sessions;
	pInfo->ulMaxPinLen = 256;
	pInfo->ulMinPinLen = 0;
	pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
	pInfo->hardwareVersion.major = 1;
	pInfo->firmwareVersion.major = 1;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList, CK_ULONG_PTR pulCount)
{
	CK_RV rv;
	size_t i;

	if (pulCount == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) == CKR_OK && slotID >= g_nslots)
		rv = CKR_SLOT_ID_INVALID;
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	if (pList == NULL) {
		*pulCount = NMECHS;
		return CKR_OK;
	}
	if (*pulCount < NMECHS) {
		*pulCount = NMECHS;
		return CKR_BUFFER_TOO_SMALL;
	}
	for (i = 0; i < NMECHS; i++)
		pList[i] = mechs[i].m;
	*pulCount = NMECHS;
	return CKR_OK;
}

static CK_RV
p11_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo)
{
	const struct mech *m;
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) == CKR_OK && slotID >= g_nslots)
		rv = CKR_SLOT_ID_INVALID;
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	if ((m = mech_find(type)) == NULL)
		return CKR_MECHANISM_INVALID;
	pInfo->ulMinKeySize = m->min;
	pInfo->ulMaxKeySize = m->max;
	pInfo->flags = m->flags | CKF_HW;
	return CKR_OK;
}

static CK_RV
p11_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
	(void)slotID; (void)pPin; (void)ulPinLen; (void)pLabel;
	return check_init() != CKR_OK ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_SUPPORTED;
}

/* ------------------------------------------------------------------ */
/* Sessions and login                                                  */

static CK_RV
p11_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
	      CK_SESSION_HANDLE_PTR phSession)
{
	struct p11_session *s = NULL;
	CK_RV rv;
	size_t i;

	(void)pApplication; (void)Notify;
	if (phSession == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) != CKR_OK)
		goto out;
	if (slotID >= g_nslots) {
		rv = CKR_SLOT_ID_INVALID;
		goto out;
	}
	if (!(flags & CKF_SERIAL_SESSION)) {
		rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
		goto out;
	}
	if (slot_connect(&g_slots[slotID]) != 0) {
		rv = CKR_TOKEN_NOT_PRESENT;
		goto out;
	}
	for (i = 0; i < MAX_SESSIONS && g_sess[i] != NULL; i++)
		;
	if (i == MAX_SESSIONS) {
		rv = CKR_SESSION_COUNT;
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	s->h = i + 1;
	s->slot = slotID;
	s->flags = flags;
	g_sess[i] = s;
	*phSession = s->h;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/* Caller holds g_lock. */
static void
session_free(struct p11_session *s)
{
	struct p11_slot *sl = &g_slots[s->slot];
	size_t i, w;

	for (i = 0, w = 0; i < sl->nobjs; i++) {
		struct p11_obj *o = &sl->objs[i];
		if (o->owner == s->h) {
			if (o->cls != CKO_PUBLIC_KEY && sl->c != NULL)
				(void)!vhsm_delete(sl->c, o->name);
			obj_free(o);
		} else {
			sl->objs[w++] = *o;
		}
	}
	sl->nobjs = w;
	op_clear(&s->sign);
	op_clear(&s->verify);
	op_clear(&s->enc);
	op_clear(&s->dec);
	free(s->found);
	g_sess[s->h - 1] = NULL;
	free(s);
}

static CK_RV
p11_CloseSession(CK_SESSION_HANDLE hSession)
{
	struct p11_session *s;
	CK_RV rv;
	CK_SLOT_ID slot;
	size_t i, left = 0;

	pthread_mutex_lock(&g_lock);
	if (check_init() == CKR_OK && hSession > 0 && hSession <= MAX_SESSIONS && g_sess[hSession - 1] != NULL &&
	    g_sess[hSession - 1]->lost) {
		/* Closed already when vhsmd went away (slot_lost); now its memory goes. */
		session_free(g_sess[hSession - 1]);
		rv = CKR_SESSION_HANDLE_INVALID;
	} else if ((rv = get_session(hSession, &s)) == CKR_OK) {
		slot = s->slot;
		session_free(s);
		for (i = 0; i < MAX_SESSIONS; i++)
			if (g_sess[i] != NULL && g_sess[i]->slot == slot)
				left++;
		if (left == 0)
			g_logged_in[slot] = 0;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_CloseAllSessions(CK_SLOT_ID slotID)
{
	CK_RV rv;
	size_t i;

	pthread_mutex_lock(&g_lock);
	if ((rv = check_init()) == CKR_OK && slotID >= g_nslots)
		rv = CKR_SLOT_ID_INVALID;
	if (rv == CKR_OK) {
		for (i = 0; i < MAX_SESSIONS; i++)
			if (g_sess[i] != NULL && g_sess[i]->slot == slotID)
				session_free(g_sess[i]);
		g_logged_in[slotID] = 0;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo)
{
	struct p11_session *s;
	CK_RV rv;

	if (pInfo == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) == CKR_OK) {
		int rw = (s->flags & CKF_RW_SESSION) != 0, li = g_logged_in[s->slot];
		pInfo->slotID = s->slot;
		pInfo->flags = s->flags;
		pInfo->ulDeviceError = 0;
		pInfo->state = li ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
				  : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/* Any PIN is accepted: vhsmd authorises every request by the caller's
 * kernel identity, and a PIN would add nothing it checks (docs/pkcs11.md). */
static CK_RV
p11_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
	struct p11_session *s;
	CK_RV rv;

	(void)pPin; (void)ulPinLen;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if (userType == CKU_SO) {
		rv = CKR_PIN_LOCKED; /* no security officer: the token is administered through vhsmd */
		goto out;
	}
	if (userType != CKU_USER && userType != CKU_CONTEXT_SPECIFIC) {
		rv = CKR_USER_TYPE_INVALID;
		goto out;
	}
	if (userType == CKU_CONTEXT_SPECIFIC) {
		rv = g_logged_in[s->slot] ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	if (g_logged_in[s->slot]) {
		rv = CKR_USER_ALREADY_LOGGED_IN;
		goto out;
	}
	g_logged_in[s->slot] = 1;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_Logout(CK_SESSION_HANDLE hSession)
{
	struct p11_session *s;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) == CKR_OK) {
		if (!g_logged_in[s->slot])
			rv = CKR_USER_NOT_LOGGED_IN;
		g_logged_in[s->slot] = 0;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Objects                                                             */

static CK_RV
p11_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
		    CK_ULONG ulCount)
{
	struct p11_session *s;
	struct p11_obj *o;
	CK_RV rv;

	if (pTemplate == NULL && ulCount > 0)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if ((o = obj_by_handle(hObject, NULL)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	rv = get_attrs(o, pTemplate, ulCount);
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
	struct p11_session *s;
	struct p11_slot *sl;
	CK_RV rv;
	size_t i;

	if (pTemplate == NULL && ulCount > 0)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if (s->finding) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	sl = &g_slots[s->slot];
	if ((rv = refresh_slot(sl)) != CKR_OK)
		goto out;
	if (s->lost) { /* its session objects went with a vhsmd restart, found just now */
		rv = CKR_DEVICE_REMOVED;
		goto out;
	}
	free(s->found);
	s->found = NULL;
	s->nfound = s->pos = 0;
	if (sl->nobjs > 0 && (s->found = calloc(sl->nobjs, sizeof(*s->found))) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	for (i = 0; i < sl->nobjs; i++)
		if (obj_matches(&sl->objs[i], pTemplate, ulCount))
			s->found[s->nfound++] = sl->objs[i].h;
	s->finding = 1;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
	      CK_ULONG_PTR pulObjectCount)
{
	struct p11_session *s;
	CK_RV rv;
	CK_ULONG n = 0;

	if (phObject == NULL || pulObjectCount == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if (!s->finding) {
		rv = CKR_OPERATION_NOT_INITIALIZED;
		goto out;
	}
	while (n < ulMaxObjectCount && s->pos < s->nfound)
		phObject[n++] = s->found[s->pos++];
	*pulObjectCount = n;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_FindObjectsFinal(CK_SESSION_HANDLE hSession)
{
	struct p11_session *s;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) == CKR_OK) {
		if (!s->finding)
			rv = CKR_OPERATION_NOT_INITIALIZED;
		free(s->found);
		s->found = NULL;
		s->nfound = s->pos = 0;
		s->finding = 0;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject)
{
	struct p11_session *s;
	struct p11_slot *sl = NULL;
	struct p11_obj *o;
	char name[129];
	CK_RV rv;
	size_t i, w;
	int r;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if ((o = obj_by_handle(hObject, &sl)) == NULL) {
		rv = CKR_OBJECT_HANDLE_INVALID;
		goto out;
	}
	if (o->owner == 0 && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	if (o->cls == CKO_PUBLIC_KEY) {
		/* The public half goes with the key pair; destroying it alone only
		 * hides it until the next search. */
		for (i = 0, w = 0; i < sl->nobjs; i++)
			if (sl->objs[i].h != hObject)
				sl->objs[w++] = sl->objs[i];
			else
				obj_free(&sl->objs[i]);
		sl->nobjs = w;
		goto out;
	}
	snprintf(name, sizeof(name), "%s", o->name);
	if (slot_connect(sl) != 0) {
		rv = CKR_TOKEN_NOT_PRESENT;
		goto out;
	}
	if ((r = vhsm_delete(sl->c, name)) == VHSM_E_IO) {
		slot_lost(sl, sl->c);
		rv = CKR_DEVICE_REMOVED;
		goto out;
	}
	if (r != VHSM_OK && r != VHSM_E_NOT_FOUND) {
		rv = r == VHSM_E_DENIED ? CKR_ACTION_PROHIBITED : rv_of(r);
		goto out;
	}
	for (i = 0, w = 0; i < sl->nobjs; i++)
		if (strcmp(sl->objs[i].name, name) != 0)
			sl->objs[w++] = sl->objs[i];
		else
			obj_free(&sl->objs[i]);
	sl->nobjs = w;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Key generation                                                      */

struct gen_req {
	CK_BBOOL token;
	int have_token;
	char label[100];
	uint8_t id[32];
	size_t id_len;
	CK_ULONG value_len, bits;
	int curve; /* 0 none, 256, 384 */
	uint32_t usages;     /* usage attributes given CK_TRUE */
	uint32_t usages_off; /* usage attributes given CK_FALSE: the vHSM key lacks them */
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	int have_cls, have_kt, have_value_len;
	int bad_value, bad_type;
	const char *suffix;  /* appended to the vHSM name (CERT_SUFFIX), or NULL */
};

static CK_BBOOL
tbool(const CK_ATTRIBUTE *a, int *bad)
{
	if (a->pValue == NULL || a->ulValueLen != sizeof(CK_BBOOL)) {
		*bad = 1;
		return CK_FALSE;
	}
	return *(const CK_BBOOL *)a->pValue;
}

static void
usage_attr(const CK_ATTRIBUTE *a, struct gen_req *g, uint32_t bits)
{
	if (tbool(a, &g->bad_value))
		g->usages |= bits;
	else
		g->usages_off |= bits;
}

/* The usages a vHSM key type can have (vhsmd refuses others). */
static uint32_t
type_usages(vhsm_key_type t)
{
	switch (t) {
	case VHSM_KEY_AES256:
		return VHSM_USAGE_ENCRYPT | VHSM_USAGE_DECRYPT | VHSM_USAGE_WRAP | VHSM_USAGE_UNWRAP;
	case VHSM_KEY_HMAC_SHA256: case VHSM_KEY_HMAC_SHA384:
		return VHSM_USAGE_MAC | VHSM_USAGE_VERIFY;
	case VHSM_KEY_EC_P256: case VHSM_KEY_EC_P384:
		return VHSM_USAGE_SIGN | VHSM_USAGE_VERIFY | VHSM_USAGE_DERIVE;
	case VHSM_KEY_RSA2048: case VHSM_KEY_RSA3072: case VHSM_KEY_RSA4096:
		return VHSM_USAGE_SIGN | VHSM_USAGE_VERIFY | VHSM_USAGE_ENCRYPT | VHSM_USAGE_DECRYPT;
	default:
		return 0;
	}
}

static void
parse_template(CK_ATTRIBUTE_PTR t, CK_ULONG n, struct gen_req *g)
{
	CK_ULONG i;
	static const uint8_t e65537[] = { 0x01, 0x00, 0x01 };

	for (i = 0; i < n; i++) {
		const CK_ATTRIBUTE *a = &t[i];
		switch (a->type) {
		case CKA_TOKEN:
			g->token = tbool(a, &g->bad_value);
			g->have_token = 1;
			break;
		case CKA_LABEL:
			if (a->ulValueLen >= sizeof(g->label) || (a->ulValueLen > 0 && a->pValue == NULL)) {
				g->bad_value = 1;
				break;
			}
			if (a->ulValueLen > 0)
				memcpy(g->label, a->pValue, a->ulValueLen);
			g->label[a->ulValueLen] = '\0';
			break;
		case CKA_ID:
			if (a->ulValueLen > sizeof(g->id) || (a->ulValueLen > 0 && a->pValue == NULL)) {
				g->bad_value = 1;
				break;
			}
			if (a->ulValueLen > 0)
				memcpy(g->id, a->pValue, a->ulValueLen);
			g->id_len = a->ulValueLen;
			break;
		case CKA_VALUE_LEN:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
				g->bad_value = 1;
			else
				g->value_len = *(const CK_ULONG *)a->pValue;
			g->have_value_len = 1;
			break;
		case CKA_MODULUS_BITS:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
				g->bad_value = 1;
			else
				g->bits = *(const CK_ULONG *)a->pValue;
			break;
		case CKA_PUBLIC_EXPONENT: {
			const uint8_t *p = a->pValue;
			size_t l = a->ulValueLen;
			while (l > 0 && p != NULL && *p == 0) {
				p++;
				l--;
			}
			if (p == NULL || l != 3 || memcmp(p, e65537, 3) != 0)
				g->bad_value = 1;
			break;
		}
		case CKA_EC_PARAMS:
			if (a->ulValueLen == sizeof(oid_p256) && memcmp(a->pValue, oid_p256, sizeof(oid_p256)) == 0)
				g->curve = 256;
			else if (a->ulValueLen == sizeof(oid_p384) &&
				 memcmp(a->pValue, oid_p384, sizeof(oid_p384)) == 0)
				g->curve = 384;
			else
				g->bad_value = 1;
			break;
		case CKA_SENSITIVE: case CKA_ALWAYS_AUTHENTICATE:
			break;
		case CKA_EXTRACTABLE:
			if (tbool(a, &g->bad_value))
				g->bad_value = 1; /* never extractable */
			break;
		/* Usage attributes: CK_FALSE removes the vHSM usage (CKA_SIGN covers
		 * MACs for HMAC keys); CK_TRUE keeps what the key type allows. */
		case CKA_SIGN: usage_attr(a, g, VHSM_USAGE_SIGN | VHSM_USAGE_MAC); break;
		case CKA_VERIFY: usage_attr(a, g, VHSM_USAGE_VERIFY); break;
		case CKA_ENCRYPT: usage_attr(a, g, VHSM_USAGE_ENCRYPT); break;
		case CKA_DECRYPT: usage_attr(a, g, VHSM_USAGE_DECRYPT); break;
		case CKA_WRAP: usage_attr(a, g, VHSM_USAGE_WRAP); break;
		case CKA_UNWRAP: usage_attr(a, g, VHSM_USAGE_UNWRAP); break;
		case CKA_DERIVE: usage_attr(a, g, VHSM_USAGE_DERIVE); break;
		case CKA_CLASS:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
				g->bad_value = 1;
			else
				g->cls = *(const CK_OBJECT_CLASS *)a->pValue;
			g->have_cls = 1;
			break;
		case CKA_KEY_TYPE:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
				g->bad_value = 1;
			else
				g->kt = *(const CK_KEY_TYPE *)a->pValue;
			g->have_kt = 1;
			break;
		case CKA_PRIVATE: case CKA_MODIFIABLE:
		case CKA_SUBJECT: case CKA_START_DATE: case CKA_END_DATE: case CKA_COPYABLE:
		case CKA_DESTROYABLE: case CKA_SIGN_RECOVER: case CKA_VERIFY_RECOVER:
			break; /* accepted; the vHSM's model decides (docs/pkcs11.md) */
		default:
			g->bad_type = 1;
			break;
		}
	}
}

/* A vHSM name for a new key: LABEL (or "p11") + "+id" + hex(CKA_ID) if an ID
 * was given; when that name exists, a random suffix before "+id".  Returns 0,
 * or -1 if the name would exceed the vHSM's 128 bytes. */
static int
make_name(const struct gen_req *g, int attempt, char out[129])
{
	char base[100], idhex[70] = "";
	size_t i, j = 0;
	int n;

	for (i = 0; g->label[i] != '\0' && j + 1 < sizeof(base); i++) {
		char c = g->label[i];
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			 strchr("._:@/-", c) != NULL;
		base[j++] = ok ? c : '_';
	}
	base[j] = '\0';
	if (j == 0 || base[0] == '.' || base[0] == '-')
		snprintf(base, sizeof(base), "p11");
	if (g->id_len > 0) {
		idhex[0] = '+';
		idhex[1] = 'i';
		idhex[2] = 'd';
		for (i = 0; i < g->id_len; i++)
			snprintf(idhex + 3 + 2 * i, 3, "%02x", g->id[i]);
	}
	if (attempt == 0) {
		n = snprintf(out, 129, "%s%s%s", base, idhex, g->suffix ? g->suffix : "");
	} else {
		uint8_t rnd[4] = { 0 };
		(void)RAND_bytes(rnd, sizeof(rnd));
		n = snprintf(out, 129, "%s.%lu%02x%02x%02x%02x%s%s", base, ++g_name_ctr, rnd[0], rnd[1],
			     rnd[2], rnd[3], idhex, g->suffix ? g->suffix : "");
	}
	return n > 0 && n < 129 ? 0 : -1;
}

/* How a new vHSM key is made: generate, unwrap or derive.  Returns a VHSM status. */
struct maker {
	int (*make)(vhsm_client *c, const char *name, const vhsm_key_spec *spec, const struct maker *mk);
	const char *key;       /* unwrap, derive: the vHSM key used */
	const uint8_t *data;   /* unwrap: the wrapped key; derive: the peer's SPKI */
	size_t len;
	vhsm_kdf kdf;          /* derive */
	const uint8_t *shared; /* derive: X9.63 shared info */
	size_t shared_len;
};

static int
make_generate(vhsm_client *c, const char *name, const vhsm_key_spec *spec, const struct maker *mk)
{
	(void)mk;
	return vhsm_generate(c, name, spec);
}

/* Creates a `type` vHSM key with mk under a fresh name, the usages the
 * templates leave on; adds its objects; returns the handles. */
static CK_RV
create_key(CK_SESSION_HANDLE hSession, const struct gen_req *g, vhsm_key_type type, const struct maker *mk,
	   CK_OBJECT_HANDLE_PTR ph_priv, CK_OBJECT_HANDLE_PTR ph_pub)
{
	struct p11_session *s;
	struct p11_slot *sl;
	vhsm_client *c = NULL;
	vhsm_key_spec spec = { type, 0, 0, 0 };
	vhsm_key_info ki;
	char name[129];
	int r = VHSM_E_EXISTS, attempt;
	CK_RV rv;
	struct p11_obj *o;

	if ((rv = session_client(hSession, &s, &c)) != CKR_OK)
		return rv;
	if (g->token && !(s->flags & CKF_RW_SESSION))
		return CKR_SESSION_READ_ONLY;
	/* Usage attributes set to CK_FALSE take the usage away (docs/pkcs11.md). */
	if (g->usages_off != 0) {
		spec.usages = type_usages(type) & ~g->usages_off;
		if (spec.usages == 0)
			return CKR_TEMPLATE_INCONSISTENT; /* a key that could do nothing */
	}
	spec.flags = g->token ? VHSM_FLAG_PERSISTENT : 0;
	for (attempt = 0; attempt < 4 && r == VHSM_E_EXISTS; attempt++) {
		if (make_name(g, attempt, name) != 0)
			return CKR_ATTRIBUTE_VALUE_INVALID; /* label + ID too long for a vHSM name */
		r = mk->make(c, name, &spec, mk);
	}
	if (r == VHSM_E_IO) /* not repeated: vhsmd may have made the key before it went away */
		return client_lost(hSession, c, NULL);
	if (r != VHSM_OK)
		return r == VHSM_E_DENIED ? CKR_FUNCTION_REJECTED : r == VHSM_E_ARGUMENT ? CKR_TEMPLATE_INCONSISTENT
		       : rv_of(r);
	if ((r = vhsm_get_public(c, name, &ki, NULL, NULL)) != VHSM_OK) {
		memset(&ki, 0, sizeof(ki));
		snprintf(ki.name, sizeof(ki.name), "%s", name);
		ki.type = type;
		ki.usages = spec.usages != 0 ? spec.usages : type_usages(type);
		ki.origin = mk->make == make_generate ? VHSM_ORIGIN_GENERATED : VHSM_ORIGIN_PROVISIONED;
		ki.version = 1;
	}
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto unlock;
	sl = &g_slots[s->slot];
	if ((rv = add_key_objects(sl, &ki, g->token ? 0 : s->h)) != CKR_OK)
		goto unlock;
	o = find_obj(sl, name, ph_pub != NULL || vk_is_asym(type) ? CKO_PRIVATE_KEY : CKO_SECRET_KEY);
	if (o == NULL) {
		rv = CKR_DEVICE_ERROR;
		goto unlock;
	}
	*ph_priv = o->h;
	if (ph_pub != NULL) {
		if ((o = find_obj(sl, name, CKO_PUBLIC_KEY)) == NULL) {
			rv = CKR_DEVICE_ERROR;
			goto unlock;
		}
		*ph_pub = o->h;
	}
unlock:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
generate(CK_SESSION_HANDLE hSession, const struct gen_req *g, vhsm_key_type type,
	 CK_OBJECT_HANDLE_PTR ph_priv, CK_OBJECT_HANDLE_PTR ph_pub)
{
	static const struct maker mk = { make_generate, NULL, NULL, 0, VHSM_KDF_HKDF, NULL, 0 };

	return create_key(hSession, g, type, &mk, ph_priv, ph_pub);
}

static CK_RV
p11_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
	      CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
	struct gen_req g;
	CK_RV rv;

	if (pMechanism == NULL || phKey == NULL || (pTemplate == NULL && ulCount > 0))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	rv = check_init();
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	if (pMechanism->mechanism != CKM_AES_KEY_GEN)
		return CKR_MECHANISM_INVALID;
	memset(&g, 0, sizeof(g));
	g.value_len = 32;
	parse_template(pTemplate, ulCount, &g);
	if (g.bad_type)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (g.bad_value || g.value_len != 32)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if ((g.have_cls && g.cls != CKO_SECRET_KEY) || (g.have_kt && g.kt != CKK_AES))
		return CKR_TEMPLATE_INCONSISTENT;
	return generate(hSession, &g, VHSM_KEY_AES256, phKey, NULL);
}

static CK_RV
p11_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
		  CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
		  CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
		  CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey)
{
	struct gen_req g, gp;
	vhsm_key_type type;
	CK_RV rv;

	if (pMechanism == NULL || phPublicKey == NULL || phPrivateKey == NULL ||
	    (pPublicKeyTemplate == NULL && ulPublicKeyAttributeCount > 0) ||
	    (pPrivateKeyTemplate == NULL && ulPrivateKeyAttributeCount > 0))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	rv = check_init();
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	if (pMechanism->mechanism != CKM_EC_KEY_PAIR_GEN &&
	    pMechanism->mechanism != CKM_RSA_PKCS_KEY_PAIR_GEN)
		return CKR_MECHANISM_INVALID;
	memset(&g, 0, sizeof(g));
	memset(&gp, 0, sizeof(gp));
	parse_template(pPublicKeyTemplate, ulPublicKeyAttributeCount, &gp);
	parse_template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount, &g);
	if (g.bad_type || gp.bad_type)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (g.bad_value || gp.bad_value)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	/* One vHSM key holds both halves: name from the private template, else the public one. */
	if (g.label[0] == '\0')
		memcpy(g.label, gp.label, sizeof(g.label));
	if (g.id_len == 0) {
		memcpy(g.id, gp.id, sizeof(g.id));
		g.id_len = gp.id_len;
	}
	if (!g.have_token && gp.have_token)
		g.token = gp.token;
	/* One vHSM key: the private template's usages and the public one's. */
	g.usages_off |= gp.usages_off;
	if ((g.have_cls && g.cls != CKO_PRIVATE_KEY) || (gp.have_cls && gp.cls != CKO_PUBLIC_KEY) ||
	    (g.have_kt && g.kt != (pMechanism->mechanism == CKM_EC_KEY_PAIR_GEN ? CKK_EC : CKK_RSA)) ||
	    (gp.have_kt && gp.kt != (pMechanism->mechanism == CKM_EC_KEY_PAIR_GEN ? CKK_EC : CKK_RSA)))
		return CKR_TEMPLATE_INCONSISTENT;
	if (pMechanism->mechanism == CKM_EC_KEY_PAIR_GEN) {
		if (gp.curve == 0)
			return CKR_TEMPLATE_INCOMPLETE;
		type = gp.curve == 256 ? VHSM_KEY_EC_P256 : VHSM_KEY_EC_P384;
	} else {
		if (gp.bits == 0)
			return CKR_TEMPLATE_INCOMPLETE;
		if (gp.bits == 2048)
			type = VHSM_KEY_RSA2048;
		else if (gp.bits == 3072)
			type = VHSM_KEY_RSA3072;
		else if (gp.bits == 4096)
			type = VHSM_KEY_RSA4096;
		else
			return CKR_KEY_SIZE_RANGE;
	}
	return generate(hSession, &g, type, phPrivateKey, phPublicKey);
}

static CK_RV
p11_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen)
{
	struct p11_session *s;
	vhsm_client *c = NULL;
	CK_RV rv;
	uint8_t *buf = NULL;
	CK_ULONG done = 0;
	int r;

	if ((rv = session_client(hSession, &s, &c)) != CKR_OK)
		return rv;
	if (RandomData == NULL && ulRandomLen > 0)
		return CKR_ARGUMENTS_BAD;
	while (done < ulRandomLen) {
		size_t n = ulRandomLen - done > 65536 ? 65536 : ulRandomLen - done;
		/* After a vhsmd restart: reconnect and ask again (random changes nothing). */
		if ((r = vhsm_random(c, n, &buf)) == VHSM_E_IO && (rv = client_lost(hSession, c, &c)) == CKR_OK)
			r = vhsm_random(c, n, &buf);
		if (r == VHSM_E_IO)
			return client_lost(hSession, c, NULL);
		if (r != VHSM_OK)
			return r == VHSM_E_DENIED ? CKR_FUNCTION_REJECTED : rv_of(r);
		memcpy(RandomData + done, buf, n);
		vhsm_buf_free(buf, n);
		buf = NULL;
		done += n;
	}
	return CKR_OK;
}

static CK_RV
p11_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
	struct p11_session *s;
	CK_RV rv;

	(void)pSeed; (void)ulSeedLen;
	pthread_mutex_lock(&g_lock);
	rv = get_session(hSession, &s);
	pthread_mutex_unlock(&g_lock);
	return rv == CKR_OK ? CKR_RANDOM_SEED_NOT_SUPPORTED : rv;
}

/* ------------------------------------------------------------------ */
/* Cryptographic operations                                            */

enum op_kind { OP_SIGN, OP_VERIFY, OP_ENCRYPT, OP_DECRYPT };

static struct p11_op *
op_of(struct p11_session *s, enum op_kind k)
{
	return k == OP_SIGN ? &s->sign : k == OP_VERIFY ? &s->verify : k == OP_ENCRYPT ? &s->enc : &s->dec;
}

static vhsm_hash
hash_of_mech(CK_MECHANISM_TYPE m)
{
	switch (m) {
	case CKM_SHA256: case CKG_MGF1_SHA256: return VHSM_HASH_SHA256;
	case CKM_SHA384: case CKG_MGF1_SHA384: return VHSM_HASH_SHA384;
	case CKM_SHA512: case CKG_MGF1_SHA512: return VHSM_HASH_SHA512;
	default: return VHSM_HASH_DEFAULT;
	}
}

static const char *
md_name(vhsm_hash h)
{
	return h == VHSM_HASH_SHA384 ? "SHA384" : h == VHSM_HASH_SHA512 ? "SHA512" : "SHA256";
}

/* CKM_AES_KEY_WRAP_PAD's optional parameter: the RFC 5649 initial value, which
 * vhsmd fixes at A65959A6 (the only one the RFC defines). */
static int
wrap_pad_params_ok(const CK_MECHANISM *m)
{
	static const uint8_t aiv[4] = { 0xa6, 0x59, 0x59, 0xa6 };

	if (m->pParameter == NULL && m->ulParameterLen == 0)
		return 1;
	return m->pParameter != NULL && m->ulParameterLen == sizeof(aiv) &&
	       memcmp(m->pParameter, aiv, sizeof(aiv)) == 0;
}

/* Checks mechanism, key and parameters; fills o.  Caller holds g_lock. */
static CK_RV
op_setup(struct p11_op *o, enum op_kind k, CK_MECHANISM_PTR m, struct p11_obj *key)
{
	static const CK_FLAGS need[] = { CKF_SIGN, CKF_VERIFY, CKF_ENCRYPT, CKF_DECRYPT };
	const struct mech *me = mech_find(m->mechanism);
	int ec = key->kt == CKK_EC, rsa = key->kt == CKK_RSA;

	if (me == NULL || !(me->flags & need[k]))
		return CKR_MECHANISM_INVALID;
	o->mech = m->mechanism;
	o->type = key->info.type;
	snprintf(o->name, sizeof(o->name), "%s", key->name);
	switch (m->mechanism) {
	case CKM_ECDSA: case CKM_ECDSA_SHA256: case CKM_ECDSA_SHA384:
		if (!ec)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (m->pParameter != NULL || m->ulParameterLen != 0)
			return CKR_MECHANISM_PARAM_INVALID;
		o->alg = VHSM_ALG_ECDSA_RAW;
		o->hash = m->mechanism == CKM_ECDSA_SHA384 ? VHSM_HASH_SHA384 : VHSM_HASH_SHA256;
		break;
	case CKM_RSA_PKCS: case CKM_SHA256_RSA_PKCS: case CKM_SHA384_RSA_PKCS:
		if (!rsa)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (m->pParameter != NULL || m->ulParameterLen != 0)
			return CKR_MECHANISM_PARAM_INVALID;
		o->alg = VHSM_ALG_RSA_PKCS1;
		o->hash = m->mechanism == CKM_SHA384_RSA_PKCS ? VHSM_HASH_SHA384 : VHSM_HASH_SHA256;
		break;
	case CKM_RSA_PKCS_PSS: case CKM_SHA256_RSA_PKCS_PSS: case CKM_SHA384_RSA_PKCS_PSS: {
		const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
		vhsm_hash h;
		if (!rsa)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (p == NULL || m->ulParameterLen != sizeof(*p))
			return CKR_MECHANISM_PARAM_INVALID;
		h = hash_of_mech(p->hashAlg);
		/* vhsmd: MGF1 with the signing digest, salt = digest length. */
		if (h == VHSM_HASH_DEFAULT || hash_of_mech(p->mgf) != h ||
		    p->sLen != (h == VHSM_HASH_SHA256 ? 32u : h == VHSM_HASH_SHA384 ? 48u : 64u) ||
		    (m->mechanism == CKM_SHA256_RSA_PKCS_PSS && h != VHSM_HASH_SHA256) ||
		    (m->mechanism == CKM_SHA384_RSA_PKCS_PSS && h != VHSM_HASH_SHA384))
			return CKR_MECHANISM_PARAM_INVALID;
		o->alg = VHSM_ALG_RSA_PSS;
		o->hash = h;
		break;
	}
	case CKM_RSA_PKCS_OAEP: {
		const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
		vhsm_hash h;
		if (!rsa)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (p == NULL || m->ulParameterLen != sizeof(*p))
			return CKR_MECHANISM_PARAM_INVALID;
		h = hash_of_mech(p->hashAlg);
		/* vhsmd: SHA-256/384/512 with MGF1 of the same digest, no label. */
		if (h == VHSM_HASH_DEFAULT || hash_of_mech(p->mgf) != h ||
		    (p->source != 0 && p->source != CKZ_DATA_SPECIFIED) || p->ulSourceDataLen != 0)
			return CKR_MECHANISM_PARAM_INVALID;
		o->alg = VHSM_ALG_RSA_OAEP;
		o->hash = h;
		break;
	}
	case CKM_AES_GCM: {
		const CK_GCM_PARAMS *p = m->pParameter;
		if (key->kt != CKK_AES)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (p == NULL || m->ulParameterLen != sizeof(*p) || p->pIv == NULL || p->ulIvLen != 12 ||
		    p->ulTagBits != 128 || (p->pAAD == NULL && p->ulAADLen > 0) || p->ulAADLen > P11_DATA_MAX)
			return CKR_MECHANISM_PARAM_INVALID;
		memcpy(o->iv, p->pIv, 12);
		o->iv_out = p->pIv;
		if (p->ulAADLen > 0) {
			if ((o->ad = OPENSSL_malloc(p->ulAADLen)) == NULL)
				return CKR_HOST_MEMORY;
			memcpy(o->ad, p->pAAD, p->ulAADLen);
			o->ad_len = p->ulAADLen;
		}
		break;
	}
	case CKM_SHA256_HMAC:
		if (key->kt != CKK_SHA256_HMAC && key->kt != CKK_GENERIC_SECRET)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (m->pParameter != NULL || m->ulParameterLen != 0)
			return CKR_MECHANISM_PARAM_INVALID;
		break;
	case CKM_AES_KEY_WRAP_PAD: /* encrypt only: vhsmd's wrap of caller bytes */
		if (key->kt != CKK_AES)
			return CKR_KEY_TYPE_INCONSISTENT;
		if (!wrap_pad_params_ok(m))
			return CKR_MECHANISM_PARAM_INVALID;
		if (!(key->info.usages & VHSM_USAGE_WRAP))
			return CKR_KEY_FUNCTION_NOT_PERMITTED;
		break;
	default:
		return CKR_MECHANISM_INVALID;
	}
	if (key->cls == CKO_CERTIFICATE)
		return CKR_KEY_TYPE_INCONSISTENT;
	/* Key class and usage. */
	if (k == OP_SIGN && !((key->cls == CKO_PRIVATE_KEY && (key->info.usages & VHSM_USAGE_SIGN)) ||
			      (key->cls == CKO_SECRET_KEY && (key->info.usages & VHSM_USAGE_MAC))))
		return key->cls == CKO_PUBLIC_KEY ? CKR_KEY_TYPE_INCONSISTENT : CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (k == OP_DECRYPT && (key->cls == CKO_PUBLIC_KEY || !(key->info.usages & VHSM_USAGE_DECRYPT)))
		return key->cls == CKO_PUBLIC_KEY ? CKR_KEY_TYPE_INCONSISTENT : CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (k == OP_ENCRYPT && key->kt == CKK_AES && m->mechanism != CKM_AES_KEY_WRAP_PAD &&
	    !(key->info.usages & VHSM_USAGE_ENCRYPT))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (k == OP_ENCRYPT && rsa && !(key->info.usages & VHSM_USAGE_ENCRYPT))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if (k == OP_VERIFY && !(key->info.usages & VHSM_USAGE_VERIFY))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	if ((k == OP_VERIFY && key->cls != CKO_SECRET_KEY) || (k == OP_ENCRYPT && rsa)) {
		/* Public-key operations run here. */
		if (key->pub == NULL || EVP_PKEY_up_ref(key->pub) != 1)
			return CKR_KEY_FUNCTION_NOT_PERMITTED;
		o->pub = key->pub;
		o->use_pub = 1;
	}
	return CKR_OK;
}

static CK_RV
op_init(CK_SESSION_HANDLE h, enum op_kind k, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE hKey)
{
	struct p11_session *s;
	struct p11_obj *key;
	struct p11_op *o;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(h, &s)) != CKR_OK)
		goto out;
	if (m == NULL) {
		rv = CKR_ARGUMENTS_BAD;
		goto out;
	}
	o = op_of(s, k);
	if (o->active) {
		rv = CKR_OPERATION_ACTIVE;
		goto out;
	}
	if ((key = obj_by_handle(hKey, NULL)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if ((rv = op_setup(o, k, m, key)) != CKR_OK) {
		op_clear(o);
		goto out;
	}
	o->active = 1;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

/* The active operation of kind k in session h (the application serialises
 * calls on one session, PKCS#11 v2.40 §6.7.7). */
static CK_RV
op_get(CK_SESSION_HANDLE h, enum op_kind k, struct p11_op **out, vhsm_client **c)
{
	struct p11_session *s;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(h, &s)) == CKR_OK) {
		*out = op_of(s, k);
		*c = g_slots[s->slot].c;
		if (!(*out)->active)
			rv = CKR_OPERATION_NOT_INITIALIZED;
		else if (*c == NULL && slot_connect(&g_slots[s->slot]) == 0) /* after a vhsmd restart */
			*c = g_slots[s->slot].c;
		else if (*c == NULL)
			rv = CKR_TOKEN_NOT_PRESENT;
	}
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static size_t
out_len_bound(const struct p11_op *o, enum op_kind k, size_t in_len)
{
	switch (o->type) {
	case VHSM_KEY_EC_P256: return 64;
	case VHSM_KEY_EC_P384: return 96;
	case VHSM_KEY_RSA2048: return 256;
	case VHSM_KEY_RSA3072: return 384;
	case VHSM_KEY_RSA4096: return 512;
	case VHSM_KEY_AES256:
		if (o->mech == CKM_AES_KEY_WRAP_PAD) /* RFC 5649: padded to 8, plus 8 */
			return in_len > SIZE_MAX - 16 ? 0 : (in_len + 7) / 8 * 8 + 8;
		return k == OP_ENCRYPT ? in_len + 16 : in_len >= 16 ? in_len - 16 : 0;
	default:
		return 32; /* HMAC-SHA256 */
	}
}

/* Runs the operation on the whole input; *res (OPENSSL_malloc'ed) on success. */
static CK_RV
op_compute(struct p11_op *o, enum op_kind k, vhsm_client *c, const uint8_t *in, size_t in_len,
	   uint8_t **res, size_t *res_len)
{
	uint8_t *out = NULL, *blob = NULL;
	size_t out_len = 0, blob_len = 0;
	EVP_PKEY_CTX *pc = NULL;
	CK_RV rv = CKR_OK;
	int r;

	if (k == OP_SIGN) {
		/* Raw mechanisms: the input is the digest (CKM_ECDSA, CKM_RSA_PKCS_PSS)
		 * or the DigestInfo (CKM_RSA_PKCS): vhsmd's prehashed sign. */
		int raw = o->mech == CKM_ECDSA || o->mech == CKM_RSA_PKCS || o->mech == CKM_RSA_PKCS_PSS;
		vhsm_hash h = o->mech == CKM_RSA_PKCS_PSS ? (vhsm_hash)(VHSM_HASH_PREHASHED | o->hash)
			      : raw			   ? VHSM_HASH_PREHASHED
							   : o->hash;

		if (o->mech == CKM_SHA256_HMAC)
			r = vhsm_hmac(c, o->name, in, in_len, &out, &out_len);
		else
			r = vhsm_sign(c, o->name, o->alg, h, in, in_len, &out, &out_len, NULL);
		if (r != VHSM_OK) {
			/* vhsmd refuses a digest/DigestInfo of the wrong length with ARGUMENT. */
			rv = raw && r == VHSM_E_ARGUMENT ? CKR_DATA_LEN_RANGE : rv_of(r);
			goto out;
		}
	} else if (k == OP_ENCRYPT && o->mech == CKM_AES_KEY_WRAP_PAD) {
		if (in_len == 0) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		if ((r = vhsm_wrap(c, o->name, in, in_len, &out, &out_len)) != VHSM_OK) {
			rv = r == VHSM_E_ARGUMENT ? CKR_DATA_LEN_RANGE : rv_of(r);
			goto out;
		}
	} else if (k == OP_ENCRYPT && o->mech == CKM_AES_GCM) {
		if ((r = vhsm_encrypt(c, o->name, VHSM_HASH_DEFAULT, o->ad, o->ad_len, in, in_len, &blob,
				      &blob_len)) != VHSM_OK) {
			rv = rv_of(r);
			goto out;
		}
		/* version(4) | nonce(12) | ciphertext | tag(16) → ciphertext | tag; nonce → pIv. */
		if (blob_len != in_len + 32 || (out = OPENSSL_malloc(in_len + 16)) == NULL) {
			rv = blob_len != in_len + 32 ? CKR_DEVICE_ERROR : CKR_HOST_MEMORY;
			goto out;
		}
		memcpy(o->iv, blob + 4, 12);
		memcpy(out, blob + 16, in_len + 16);
		out_len = in_len + 16;
	} else if (k == OP_DECRYPT && o->mech == CKM_AES_GCM) {
		if (in_len < 16) {
			rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
			goto out;
		}
		if ((blob = OPENSSL_malloc(in_len + 16)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		memset(blob, 0, 4); /* version 0: the current one */
		memcpy(blob + 4, o->iv, 12);
		memcpy(blob + 16, in, in_len);
		blob_len = in_len + 16;
		if ((r = vhsm_decrypt(c, o->name, VHSM_HASH_DEFAULT, o->ad, o->ad_len, blob, blob_len, &out,
				      &out_len)) != VHSM_OK) {
			rv = rv_of(r);
			goto out;
		}
	} else if (k == OP_DECRYPT) { /* RSA-OAEP */
		if ((r = vhsm_decrypt(c, o->name, o->hash, NULL, 0, in, in_len, &out, &out_len)) != VHSM_OK) {
			rv = r == VHSM_E_ARGUMENT ? CKR_ENCRYPTED_DATA_LEN_RANGE : rv_of(r);
			goto out;
		}
	} else if (k == OP_ENCRYPT) { /* RSA-OAEP with the public key, here */
		size_t n = 0;
		if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, o->pub, NULL)) == NULL ||
		    EVP_PKEY_encrypt_init(pc) != 1 || EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, md_name(o->hash), NULL) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md_name(pc, md_name(o->hash), NULL) != 1 ||
		    EVP_PKEY_encrypt(pc, NULL, &n, in, in_len) != 1 || (out = OPENSSL_malloc(n)) == NULL) {
			rv = CKR_DEVICE_ERROR;
			goto out;
		}
		if (EVP_PKEY_encrypt(pc, out, &n, in, in_len) != 1) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		out_len = n;
	}
	*res = out;
	*res_len = out_len;
	out = NULL;
out:
	EVP_PKEY_CTX_free(pc);
	if (out != NULL && out_len > 0)
		OPENSSL_cleanse(out, out_len);
	OPENSSL_free(out);
	OPENSSL_clear_free(blob, blob_len);
	return rv;
}

/* Verification of `sig` over `in` (whole message or, for raw mechanisms, the digest). */
static CK_RV
op_verify_compute(struct p11_op *o, vhsm_client *c, const uint8_t *in, size_t in_len,
		  const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *mc = NULL;
	EVP_PKEY_CTX *pc = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	uint8_t *der = NULL;
	const uint8_t *vs = sig;
	size_t vl = sig_len, half;
	CK_RV rv = CKR_SIGNATURE_INVALID;
	int r, der_len;

	if (!o->use_pub) { /* HMAC: the vHSM compares */
		if (sig_len != 32)
			return CKR_SIGNATURE_LEN_RANGE;
		r = vhsm_verify(c, o->name, 0, VHSM_ALG_DEFAULT, VHSM_HASH_DEFAULT, in, in_len, sig, sig_len);
		return r == VHSM_OK ? CKR_OK : rv_of(r);
	}
	if (sig_len != out_len_bound(o, OP_SIGN, 0))
		return CKR_SIGNATURE_LEN_RANGE;
	if (o->alg == VHSM_ALG_ECDSA_RAW) {
		half = sig_len / 2;
		if ((es = ECDSA_SIG_new()) == NULL || (br = BN_bin2bn(sig, (int)half, NULL)) == NULL ||
		    (bs = BN_bin2bn(sig + half, (int)half, NULL)) == NULL || ECDSA_SIG_set0(es, br, bs) != 1) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		br = bs = NULL;
		if ((der_len = i2d_ECDSA_SIG(es, &der)) <= 0) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		vs = der;
		vl = (size_t)der_len;
	}
	if (o->mech == CKM_ECDSA || o->mech == CKM_RSA_PKCS || o->mech == CKM_RSA_PKCS_PSS) {
		if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, o->pub, NULL)) == NULL || EVP_PKEY_verify_init(pc) != 1) {
			rv = CKR_HOST_MEMORY;
			goto out;
		}
		if (o->mech == CKM_RSA_PKCS && EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) != 1)
			goto out;
		if (o->mech == CKM_RSA_PKCS_PSS &&
		    (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
		     EVP_PKEY_CTX_set_signature_md(pc, EVP_get_digestbyname(md_name(o->hash))) != 1 ||
		     EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1))
			goto out;
		if (o->mech == CKM_RSA_PKCS_PSS && in_len != (size_t)EVP_MD_get_size(EVP_get_digestbyname(md_name(o->hash)))) {
			rv = CKR_DATA_LEN_RANGE;
			goto out;
		}
		if (EVP_PKEY_verify(pc, vs, vl, in, in_len) == 1)
			rv = CKR_OK;
		goto out;
	}
	if ((mc = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(mc, &pc, md_name(o->hash), NULL, NULL, o->pub, NULL) != 1) {
		pc = NULL;
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if (o->alg == VHSM_ALG_RSA_PSS &&
	    (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1)) {
		pc = NULL;
		goto out;
	}
	pc = NULL; /* owned by mc */
	if (EVP_DigestVerify(mc, vs, vl, in, in_len) == 1)
		rv = CKR_OK;
out:
	EVP_MD_CTX_free(mc);
	EVP_PKEY_CTX_free(pc);
	ECDSA_SIG_free(es);
	BN_free(br);
	BN_free(bs);
	OPENSSL_free(der);
	return rv;
}

/* Output handling shared by p11_Sign/p11_Encrypt/C_Decrypt and their Finals
 * (PKCS#11 v2.40 §5.2): a NULL buffer asks for the length and keeps the
 * operation; a short buffer gives CKR_BUFFER_TOO_SMALL and keeps it (the
 * result, once computed, is kept too); anything else ends the operation. */
static CK_RV
op_finish(CK_SESSION_HANDLE h, enum op_kind k, const uint8_t *in, size_t in_len, int final,
	  CK_BYTE_PTR pOut, CK_ULONG_PTR pulOut)
{
	struct p11_op *o;
	vhsm_client *c;
	CK_RV rv;

	if ((rv = op_get(h, k, &o, &c)) != CKR_OK)
		return rv;
	if (pulOut == NULL || (in == NULL && in_len > 0)) {
		rv = CKR_ARGUMENTS_BAD;
		goto end;
	}
	if (final) {
		in = o->data;
		in_len = o->len;
	} else if (o->multi) {
		rv = CKR_OPERATION_ACTIVE;
		goto end;
	}
	if (o->result == NULL) {
		size_t bound = out_len_bound(o, k, in_len);
		if (pOut == NULL) {
			*pulOut = bound;
			return CKR_OK;
		}
		if (*pulOut < bound && !(k == OP_DECRYPT && o->mech == CKM_RSA_PKCS_OAEP)) {
			*pulOut = bound;
			return CKR_BUFFER_TOO_SMALL;
		}
		rv = op_compute(o, k, c, in, in_len, &o->result, &o->result_len);
		/* vhsmd restarted: these requests change nothing there, so one more try
		 * on a new connection (client_lost) is safe. */
		if (rv == CKR_DEVICE_REMOVED && (rv = client_lost(h, c, &c)) == CKR_OK)
			rv = op_compute(o, k, c, in, in_len, &o->result, &o->result_len);
		if (rv != CKR_OK)
			goto end;
		if (k == OP_ENCRYPT && o->mech == CKM_AES_GCM)
			memcpy(o->iv_out, o->iv, 12); /* the vHSM's nonce (docs/pkcs11.md) */
	} else if (pOut == NULL) {
		*pulOut = o->result_len;
		return CKR_OK;
	}
	if (*pulOut < o->result_len) {
		*pulOut = o->result_len;
		return CKR_BUFFER_TOO_SMALL;
	}
	if (o->result_len > 0)
		memcpy(pOut, o->result, o->result_len);
	*pulOut = o->result_len;
end:
	pthread_mutex_lock(&g_lock);
	op_clear(o);
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
op_update(CK_SESSION_HANDLE h, enum op_kind k, const uint8_t *in, size_t in_len)
{
	struct p11_op *o;
	vhsm_client *c;
	CK_RV rv;

	if ((rv = op_get(h, k, &o, &c)) != CKR_OK)
		return rv;
	if (in == NULL && in_len > 0) {
		rv = CKR_ARGUMENTS_BAD;
		goto fail;
	}
	/* RSA-OAEP is single-part only.  The raw signature mechanisms collect
	 * their parts: the whole is the digest or DigestInfo (pkcs11-tool --test
	 * and SoftHSM2 do this too). */
	if (o->mech == CKM_RSA_PKCS_OAEP || o->mech == CKM_AES_KEY_WRAP_PAD) {
		rv = CKR_MECHANISM_INVALID;
		goto fail;
	}
	if (in_len > P11_DATA_MAX - o->len) {
		rv = k == OP_DECRYPT ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_DATA_LEN_RANGE;
		goto fail;
	}
	if (o->len + in_len > o->cap) {
		size_t nc = o->cap ? o->cap : 4096;
		uint8_t *n;
		while (nc < o->len + in_len)
			nc *= 2;
		if ((n = OPENSSL_malloc(nc)) == NULL) {
			rv = CKR_HOST_MEMORY;
			goto fail;
		}
		if (o->len > 0)
			memcpy(n, o->data, o->len);
		OPENSSL_clear_free(o->data, o->cap);
		o->data = n;
		o->cap = nc;
	}
	if (in_len > 0)
		memcpy(o->data + o->len, in, in_len);
	o->len += in_len;
	o->multi = 1;
	return CKR_OK;
fail:
	pthread_mutex_lock(&g_lock);
	op_clear(o);
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	return op_init(hSession, OP_SIGN, pMechanism, hKey);
}

static CK_RV
p11_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
       CK_ULONG_PTR pulSignatureLen)
{
	return op_finish(hSession, OP_SIGN, pData, ulDataLen, 0, pSignature, pulSignatureLen);
}

static CK_RV
p11_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	return op_update(hSession, OP_SIGN, pPart, ulPartLen);
}

static CK_RV
p11_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)
{
	return op_finish(hSession, OP_SIGN, NULL, 0, 1, pSignature, pulSignatureLen);
}

static CK_RV
p11_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	return op_init(hSession, OP_VERIFY, pMechanism, hKey);
}

static CK_RV
verify_end(CK_SESSION_HANDLE h, const uint8_t *in, size_t in_len, int final, const uint8_t *sig,
	   size_t sig_len)
{
	struct p11_op *o;
	vhsm_client *c;
	CK_RV rv;

	if ((rv = op_get(h, OP_VERIFY, &o, &c)) != CKR_OK)
		return rv;
	if (sig == NULL || (in == NULL && in_len > 0))
		rv = CKR_ARGUMENTS_BAD;
	else if (!final && o->multi)
		rv = CKR_OPERATION_ACTIVE;
	else {
		if (final) {
			in = o->data;
			in_len = o->len;
		}
		rv = op_verify_compute(o, c, in, in_len, sig, sig_len);
		if (rv == CKR_DEVICE_REMOVED && (rv = client_lost(h, c, &c)) == CKR_OK)
			rv = op_verify_compute(o, c, in, in_len, sig, sig_len);
	}
	pthread_mutex_lock(&g_lock);
	op_clear(o);
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
	 CK_ULONG ulSignatureLen)
{
	return verify_end(hSession, pData, ulDataLen, 0, pSignature, ulSignatureLen);
}

static CK_RV
p11_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen)
{
	return op_update(hSession, OP_VERIFY, pPart, ulPartLen);
}

static CK_RV
p11_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
	return verify_end(hSession, NULL, 0, 1, pSignature, ulSignatureLen);
}

static CK_RV
p11_EncryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	return op_init(hSession, OP_ENCRYPT, pMechanism, hKey);
}

static CK_RV
p11_Encrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData,
	  CK_ULONG_PTR pulEncryptedDataLen)
{
	return op_finish(hSession, OP_ENCRYPT, pData, ulDataLen, 0, pEncryptedData, pulEncryptedDataLen);
}

/* GCM is one vHSM request: parts are collected and all output comes at Final. */
static CK_RV
p11_EncryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
		CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen)
{
	CK_RV rv;

	(void)pEncryptedPart;
	if (pulEncryptedPartLen == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((rv = op_update(hSession, OP_ENCRYPT, pPart, ulPartLen)) == CKR_OK)
		*pulEncryptedPartLen = 0;
	return rv;
}

static CK_RV
p11_EncryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen)
{
	return op_finish(hSession, OP_ENCRYPT, NULL, 0, 1, pLastEncryptedPart, pulLastEncryptedPartLen);
}

static CK_RV
p11_DecryptInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)
{
	return op_init(hSession, OP_DECRYPT, pMechanism, hKey);
}

static CK_RV
p11_Decrypt(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen,
	  CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen)
{
	return op_finish(hSession, OP_DECRYPT, pEncryptedData, ulEncryptedDataLen, 0, pData, pulDataLen);
}

static CK_RV
p11_DecryptUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen,
		CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen)
{
	CK_RV rv;

	(void)pPart;
	if (pulPartLen == NULL)
		return CKR_ARGUMENTS_BAD;
	if ((rv = op_update(hSession, OP_DECRYPT, pEncryptedPart, ulEncryptedPartLen)) == CKR_OK)
		*pulPartLen = 0;
	return rv;
}

static CK_RV
p11_DecryptFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen)
{
	return op_finish(hSession, OP_DECRYPT, NULL, 0, 1, pLastPart, pulLastPartLen);
}


/* ------------------------------------------------------------------ */
/* Certificates, key wrapping and key derivation                       */

/* Does template attribute a hold exactly the DER that i2d makes of x's field? */
static int
der_equals(const CK_ATTRIBUTE *a, const unsigned char *der, int len)
{
	return len > 0 && a->pValue != NULL && a->ulValueLen == (CK_ULONG)len &&
	       memcmp(a->pValue, der, (size_t)len) == 0;
}

/*
 * C_CreateObject: X.509 certificates only (CKO_CERTIFICATE, CKC_X_509,
 * CKA_VALUE).  The certificate becomes a vHSM cert object named like a key
 * from CKA_LABEL/CKA_ID plus CERT_SUFFIX (persistent for CKA_TOKEN true),
 * created with the import right.  Keys are never created from templates: a
 * key's value would have passed through the application.
 */
static CK_RV
p11_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
	       CK_OBJECT_HANDLE_PTR phObject)
{
	struct p11_session *s;
	vhsm_client *c = NULL;
	struct gen_req g;
	const CK_ATTRIBUTE *value = NULL, *subj = NULL, *iss = NULL, *serial = NULL;
	CK_OBJECT_CLASS cls = (CK_OBJECT_CLASS)-1;
	CK_ULONG i;
	int have_ctype = 0, bad_value = 0, bad_type = 0, bad_template = 0, attempt, r = VHSM_E_EXISTS;
	X509 *x = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	char name[129];
	vhsm_key_spec spec = { VHSM_KEY_CERT, 0, 0, 0 };
	vhsm_key_info ki;
	struct p11_obj *o;
	CK_RV rv;

	if (phObject == NULL || (pTemplate == NULL && ulCount > 0))
		return CKR_ARGUMENTS_BAD;
	if ((rv = session_client(hSession, &s, &c)) != CKR_OK)
		return rv;
	memset(&g, 0, sizeof(g));
	g.suffix = CERT_SUFFIX;
	for (i = 0; i < ulCount; i++) {
		const CK_ATTRIBUTE *a = &pTemplate[i];
		switch (a->type) {
		case CKA_CLASS:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG))
				bad_value = 1;
			else
				cls = *(const CK_OBJECT_CLASS *)a->pValue;
			break;
		case CKA_CERTIFICATE_TYPE:
			if (a->pValue == NULL || a->ulValueLen != sizeof(CK_ULONG) ||
			    *(const CK_CERTIFICATE_TYPE *)a->pValue != CKC_X_509)
				bad_value = 1;
			have_ctype = 1;
			break;
		case CKA_VALUE: value = a; break;
		case CKA_SUBJECT: subj = a; break;
		case CKA_ISSUER: iss = a; break;
		case CKA_SERIAL_NUMBER: serial = a; break;
		case CKA_TOKEN: case CKA_LABEL: case CKA_ID:
			parse_template((CK_ATTRIBUTE_PTR)(uintptr_t)a, 1, &g);
			break;
		case CKA_PRIVATE: case CKA_TRUSTED: case CKA_MODIFIABLE:
			/* Objects are never private, trusted (a security officer's
			 * mark) or modifiable here. */
			if (tbool(a, &bad_value) && a->type != CKA_MODIFIABLE)
				bad_value = 1;
			break;
		case CKA_CERTIFICATE_CATEGORY: case CKA_START_DATE: case CKA_END_DATE: case CKA_URL:
		case CKA_CHECK_VALUE: case CKA_HASH_OF_SUBJECT_PUBLIC_KEY: case CKA_HASH_OF_ISSUER_PUBLIC_KEY:
		case CKA_JAVA_MIDP_SECURITY_DOMAIN: case CKA_COPYABLE: case CKA_DESTROYABLE:
			break; /* accepted; computed from the value or fixed (docs/pkcs11.md) */
		default:
			bad_type = 1;
			break;
		}
	}
	if (bad_type || g.bad_type)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (cls == (CK_OBJECT_CLASS)-1 && !bad_value)
		return CKR_TEMPLATE_INCOMPLETE;
	if (bad_value || g.bad_value || cls != CKO_CERTIFICATE)
		return CKR_ATTRIBUTE_VALUE_INVALID; /* only X.509 certificates can be created */
	if (!have_ctype || value == NULL)
		return CKR_TEMPLATE_INCOMPLETE;
	if (value->pValue == NULL || value->ulValueLen == 0 || value->ulValueLen > VHSM_CERT_MAX)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	p = value->pValue;
	if ((x = d2i_X509(NULL, &p, (long)value->ulValueLen)) == NULL ||
	    p != (const unsigned char *)value->pValue + value->ulValueLen) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	/* Given subject, issuer and serial must be the certificate's own. */
	if (subj != NULL) {
		int l = i2d_X509_NAME(X509_get_subject_name(x), &der);
		bad_template |= !der_equals(subj, der, l);
		OPENSSL_free(der);
		der = NULL;
	}
	if (iss != NULL) {
		int l = i2d_X509_NAME(X509_get_issuer_name(x), &der);
		bad_template |= !der_equals(iss, der, l);
		OPENSSL_free(der);
		der = NULL;
	}
	if (serial != NULL) {
		int l = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &der);
		bad_template |= !der_equals(serial, der, l);
		OPENSSL_free(der);
		der = NULL;
	}
	if (bad_template) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	if (!g.have_token)
		g.token = CK_FALSE; /* the standard's default: a session object */
	if (g.token && !(s->flags & CKF_RW_SESSION)) {
		rv = CKR_SESSION_READ_ONLY;
		goto out;
	}
	spec.flags = g.token ? VHSM_FLAG_PERSISTENT : 0;
	for (attempt = 0; attempt < 4 && r == VHSM_E_EXISTS; attempt++) {
		if (make_name(&g, attempt, name) != 0) {
			rv = CKR_ATTRIBUTE_VALUE_INVALID;
			goto out;
		}
		r = vhsm_import(c, name, &spec, value->pValue, value->ulValueLen);
	}
	if (r == VHSM_E_IO) {
		rv = client_lost(hSession, c, NULL);
		goto out;
	}
	if (r != VHSM_OK) {
		rv = r == VHSM_E_DENIED ? CKR_FUNCTION_REJECTED : r == VHSM_E_ARGUMENT ? CKR_TEMPLATE_INCONSISTENT
		     : rv_of(r);
		goto out;
	}
	memset(&ki, 0, sizeof(ki));
	snprintf(ki.name, sizeof(ki.name), "%s", name);
	ki.type = VHSM_KEY_CERT;
	ki.flags = spec.flags;
	ki.version = ki.versions = 1;
	ki.origin = VHSM_ORIGIN_PROVISIONED;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) == CKR_OK &&
	    (rv = add_cert_object(&g_slots[s->slot], &ki, g.token ? 0 : s->h, value->pValue,
				  value->ulValueLen)) == CKR_OK) {
		o = find_obj(&g_slots[s->slot], name, CKO_CERTIFICATE);
		if (o != NULL)
			*phObject = o->h;
		else
			rv = CKR_DEVICE_ERROR;
	}
	pthread_mutex_unlock(&g_lock);
out:
	X509_free(x);
	return rv;
}

/*
 * C_WrapKey.  Every private and secret key of the vHSM is never extractable
 * (CKA_EXTRACTABLE false), and vhsmd has no operation that wraps a key it
 * holds: that would export it.  So after the checks the standard orders,
 * wrapping answers CKR_KEY_UNEXTRACTABLE.  (CKM_AES_KEY_WRAP_PAD with
 * C_Encrypt wraps bytes the caller has.)
 */
static CK_RV
p11_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
	  CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen)
{
	struct p11_session *s;
	struct p11_obj *kek, *key;
	CK_RV rv;

	(void)pWrappedKey;
	if (pMechanism == NULL || pulWrappedKeyLen == NULL)
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto out;
	if (pMechanism->mechanism != CKM_AES_KEY_WRAP_PAD)
		rv = CKR_MECHANISM_INVALID;
	else if (!wrap_pad_params_ok(pMechanism))
		rv = CKR_MECHANISM_PARAM_INVALID;
	else if ((kek = obj_by_handle(hWrappingKey, NULL)) == NULL || kek->cls == CKO_CERTIFICATE)
		rv = CKR_WRAPPING_KEY_HANDLE_INVALID;
	else if (kek->kt != CKK_AES)
		rv = CKR_WRAPPING_KEY_TYPE_INCONSISTENT;
	else if (!(kek->info.usages & VHSM_USAGE_WRAP))
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
	else if ((key = obj_by_handle(hKey, NULL)) == NULL || key->cls == CKO_CERTIFICATE)
		rv = CKR_KEY_HANDLE_INVALID;
	else if (key->cls == CKO_PUBLIC_KEY)
		rv = CKR_KEY_NOT_WRAPPABLE; /* C_WrapKey wraps private and secret keys */
	else
		rv = CKR_KEY_UNEXTRACTABLE;
out:
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static int
make_unwrap(vhsm_client *c, const char *name, const vhsm_key_spec *spec, const struct maker *mk)
{
	return vhsm_unwrap(c, mk->key, mk->data, mk->len, name, spec);
}

static int
make_derive(vhsm_client *c, const char *name, const vhsm_key_spec *spec, const struct maker *mk)
{
	return vhsm_derive_kdf(c, mk->key, mk->data, mk->len, mk->kdf, mk->shared, mk->shared_len, name, spec);
}

/* Checks the key an unwrap or derive uses (caller holds g_lock): copies its
 * vHSM name.  Returns CKR_OK or the given error codes. */
static CK_RV
base_key(CK_OBJECT_HANDLE h, CK_RV invalid, CK_RV inconsistent, CK_KEY_TYPE kt, CK_OBJECT_CLASS cls,
	 uint32_t usage, char name[129], vhsm_key_type *type)
{
	struct p11_obj *o = obj_by_handle(h, NULL);

	if (o == NULL || o->cls == CKO_CERTIFICATE)
		return invalid;
	if (o->kt != kt || o->cls != cls)
		return inconsistent;
	if (!(o->info.usages & usage))
		return CKR_KEY_FUNCTION_NOT_PERMITTED;
	snprintf(name, 129, "%s", o->name);
	*type = o->info.type;
	return CKR_OK;
}

/* The vHSM types a new secret key may be, for (CKA_KEY_TYPE, CKA_VALUE_LEN).
 * CKK_GENERIC_SECRET is an HMAC key (what PKCS#11 does with one here). */
static CK_RV
secret_type(const struct gen_req *g, vhsm_key_type *t)
{
	CK_ULONG vl = g->have_value_len ? g->value_len : 0;

	switch (g->kt) {
	case CKK_AES:
		*t = VHSM_KEY_AES256;
		return vl == 0 || vl == 32 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKK_SHA256_HMAC:
		*t = VHSM_KEY_HMAC_SHA256;
		return vl == 0 || vl == 32 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKK_SHA384_HMAC:
		*t = VHSM_KEY_HMAC_SHA384;
		return vl == 0 || vl == 48 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	case CKK_GENERIC_SECRET:
		*t = vl == 48 ? VHSM_KEY_HMAC_SHA384 : VHSM_KEY_HMAC_SHA256;
		return vl == 0 || vl == 32 || vl == 48 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
	default:
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
}

/*
 * C_UnwrapKey with CKM_AES_KEY_WRAP_PAD (RFC 5649): vhsmd's unwrap, which
 * turns the blob into a new vHSM key and never returns its plaintext.  The
 * template's class and key type choose the vHSM type: secret keys AES-256 or
 * HMAC (CKK_GENERIC_SECRET, CKK_SHA256/384_HMAC), private keys EC or RSA
 * (PKCS#8; the curve or size is the blob's, tried in turn).
 */
static CK_RV
p11_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
	    CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
	    CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	static const vhsm_key_type ec[] = { VHSM_KEY_EC_P256, VHSM_KEY_EC_P384 };
	static const vhsm_key_type rsa[] = { VHSM_KEY_RSA2048, VHSM_KEY_RSA3072, VHSM_KEY_RSA4096 };
	struct p11_session *s;
	struct gen_req g;
	struct maker mk = { make_unwrap, NULL, NULL, 0, VHSM_KDF_HKDF, NULL, 0 };
	char kek[129];
	vhsm_key_type kt, one[1];
	const vhsm_key_type *types = one;
	size_t ntypes = 1, i;
	CK_RV rv;

	if (pMechanism == NULL || phKey == NULL || (pWrappedKey == NULL && ulWrappedKeyLen > 0) ||
	    (pTemplate == NULL && ulAttributeCount > 0))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto unlock;
	if (pMechanism->mechanism != CKM_AES_KEY_WRAP_PAD)
		rv = CKR_MECHANISM_INVALID;
	else if (!wrap_pad_params_ok(pMechanism))
		rv = CKR_MECHANISM_PARAM_INVALID;
	else
		rv = base_key(hUnwrappingKey, CKR_UNWRAPPING_KEY_HANDLE_INVALID,
			      CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, CKK_AES, CKO_SECRET_KEY, VHSM_USAGE_UNWRAP,
			      kek, &kt);
unlock:
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	/* RFC 5649: a multiple of 8 bytes, at least 16; vhsmd's cap on key material. */
	if (ulWrappedKeyLen < 16 || ulWrappedKeyLen % 8 != 0 || ulWrappedKeyLen > 2 * 4096 + 8)
		return CKR_WRAPPED_KEY_LEN_RANGE;
	memset(&g, 0, sizeof(g));
	parse_template(pTemplate, ulAttributeCount, &g);
	if (g.bad_type)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (g.bad_value)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (!g.have_cls || !g.have_kt)
		return CKR_TEMPLATE_INCOMPLETE;
	if (g.cls == CKO_SECRET_KEY) {
		if ((rv = secret_type(&g, &one[0])) != CKR_OK)
			return rv;
	} else if (g.cls == CKO_PRIVATE_KEY && g.kt == CKK_EC) {
		types = g.curve == 256 ? &ec[0] : g.curve == 384 ? &ec[1] : ec;
		ntypes = g.curve != 0 ? 1 : 2;
	} else if (g.cls == CKO_PRIVATE_KEY && g.kt == CKK_RSA) {
		types = rsa;
		ntypes = 3;
	} else {
		return g.cls == CKO_PRIVATE_KEY ? CKR_ATTRIBUTE_VALUE_INVALID : CKR_TEMPLATE_INCONSISTENT;
	}
	mk.key = kek;
	mk.data = pWrappedKey;
	mk.len = ulWrappedKeyLen;
	/* vhsmd checks that the plaintext is a key of the type (ARGUMENT if not);
	 * the authenticity check (DECRYPT) fails the same way for every type. */
	for (i = 0, rv = CKR_WRAPPED_KEY_INVALID; i < ntypes; i++) {
		rv = create_key(hSession, &g, types[i], &mk, phKey, NULL);
		if (rv != CKR_TEMPLATE_INCONSISTENT || strstr(vhsm_last_message(), "not a valid") == NULL)
			break;
		rv = CKR_WRAPPED_KEY_INVALID; /* not a key of this type: try the next */
	}
	if (rv == CKR_ENCRYPTED_DATA_INVALID)
		rv = CKR_WRAPPED_KEY_INVALID; /* RFC 5649's integrity check failed */
	return rv;
}

/* CK_ECDH1_DERIVE_PARAMS.pPublicData (an EC point, raw or as a DER OCTET
 * STRING) as the DER SubjectPublicKeyInfo vhsmd takes.  0 or -1. */
static int
peer_spki(vhsm_key_type base, const uint8_t *pt, size_t len, uint8_t **der, size_t *der_len)
{
	const char *group = base == VHSM_KEY_EC_P256 ? "P-256" : "P-384";
	size_t fl = base == VHSM_KEY_EC_P256 ? 32 : 48;
	EVP_PKEY_CTX *pc = NULL;
	EVP_PKEY *pk = NULL;
	OSSL_PARAM params[3];
	unsigned char *d = NULL;
	int l, r = -1;

	/* A raw point is 2·fl+1 (uncompressed) or fl+1 (compressed) bytes; anything
	 * else may be those in a DER OCTET STRING (short form: < 128 bytes). */
	if (len != 2 * fl + 1 && len != fl + 1 && len >= 2 && pt[0] == 0x04 && pt[1] == len - 2) {
		pt += 2;
		len -= 2;
	}
	if (len != 2 * fl + 1 && len != fl + 1)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)(uintptr_t)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)(uintptr_t)pt, len);
	params[2] = OSSL_PARAM_construct_end();
	if ((pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL || EVP_PKEY_fromdata_init(pc) != 1 ||
	    EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	EVP_PKEY_CTX_free(pc);
	/* The point must be on the curve. */
	if ((pc = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL || EVP_PKEY_public_check(pc) != 1)
		goto out;
	if ((l = i2d_PUBKEY(pk, &d)) <= 0)
		goto out;
	*der = d;
	*der_len = (size_t)l;
	r = 0;
out:
	EVP_PKEY_CTX_free(pc);
	EVP_PKEY_free(pk);
	return r;
}

/*
 * C_DeriveKey with CKM_ECDH1_DERIVE: ECDH in vhsmd with the base EC key; the
 * result becomes a new secret-key object there and is never returned.
 * CKD_NULL makes the key from the shared secret itself (its leading bytes),
 * CKD_SHA256/384/512_KDF with ANSI X9.63 and the shared data.
 */
static CK_RV
p11_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
	    CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey)
{
	const CK_ECDH1_DERIVE_PARAMS *p;
	struct p11_session *s;
	struct gen_req g;
	struct maker mk = { make_derive, NULL, NULL, 0, VHSM_KDF_NONE, NULL, 0 };
	char base[129];
	vhsm_key_type bt = 0, nt;
	uint8_t *spki = NULL;
	size_t spki_len = 0;
	CK_RV rv;

	if (pMechanism == NULL || phKey == NULL || (pTemplate == NULL && ulAttributeCount > 0))
		return CKR_ARGUMENTS_BAD;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) != CKR_OK)
		goto unlock;
	if (pMechanism->mechanism != CKM_ECDH1_DERIVE) {
		rv = CKR_MECHANISM_INVALID;
		goto unlock;
	}
	p = pMechanism->pParameter;
	if (p == NULL || pMechanism->ulParameterLen != sizeof(*p) || p->pPublicData == NULL ||
	    p->ulPublicDataLen == 0 || (p->pSharedData == NULL && p->ulSharedDataLen > 0) ||
	    p->ulSharedDataLen > VHSM_KDF_INFO_MAX) {
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto unlock;
	}
	switch (p->kdf) {
	case CKD_NULL: mk.kdf = VHSM_KDF_NONE; break;
	case CKD_SHA256_KDF: mk.kdf = VHSM_KDF_X963_SHA256; break;
	case CKD_SHA384_KDF: mk.kdf = VHSM_KDF_X963_SHA384; break;
	case CKD_SHA512_KDF: mk.kdf = VHSM_KDF_X963_SHA512; break;
	default: rv = CKR_MECHANISM_PARAM_INVALID; goto unlock;
	}
	if (p->kdf == CKD_NULL && p->ulSharedDataLen != 0) { /* the standard: no shared data with CKD_NULL */
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto unlock;
	}
	rv = base_key(hBaseKey, CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKK_EC, CKO_PRIVATE_KEY,
		      VHSM_USAGE_DERIVE, base, &bt);
unlock:
	pthread_mutex_unlock(&g_lock);
	if (rv != CKR_OK)
		return rv;
	memset(&g, 0, sizeof(g));
	parse_template(pTemplate, ulAttributeCount, &g);
	if (g.bad_type)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (g.bad_value)
		return CKR_ATTRIBUTE_VALUE_INVALID;
	if (g.have_cls && g.cls != CKO_SECRET_KEY)
		return CKR_TEMPLATE_INCONSISTENT;
	if (!g.have_kt)
		return CKR_TEMPLATE_INCOMPLETE;
	if ((rv = secret_type(&g, &nt)) != CKR_OK)
		return rv;
	/* Without a KDF the new key is the secret: P-256's 32 bytes cannot make 48. */
	if (mk.kdf == VHSM_KDF_NONE && bt == VHSM_KEY_EC_P256 && nt == VHSM_KEY_HMAC_SHA384)
		return CKR_TEMPLATE_INCONSISTENT;
	if (peer_spki(bt, p->pPublicData, p->ulPublicDataLen, &spki, &spki_len) != 0)
		return CKR_MECHANISM_PARAM_INVALID;
	mk.key = base;
	mk.data = spki;
	mk.len = spki_len;
	mk.shared = p->pSharedData;
	mk.shared_len = p->ulSharedDataLen;
	rv = create_key(hSession, &g, nt, &mk, phKey, NULL);
	OPENSSL_free(spki);
	return rv;
}

/* ------------------------------------------------------------------ */
/* Not supported (CKR_FUNCTION_NOT_SUPPORTED, after the session check)  */

static CK_RV
unsupported(CK_SESSION_HANDLE h)
{
	struct p11_session *s;
	CK_RV rv;

	pthread_mutex_lock(&g_lock);
	rv = get_session(h, &s);
	pthread_mutex_unlock(&g_lock);
	return rv == CKR_OK ? CKR_FUNCTION_NOT_SUPPORTED : rv;
}

#define UNSUP(name, params, ...) \
	static CK_RV name params { __VA_ARGS__; return unsupported(hSession); }

UNSUP(p11_InitPIN, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR a, CK_ULONG b), (void)a, (void)b)
UNSUP(p11_SetPIN, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR a, CK_ULONG b, CK_UTF8CHAR_PTR d, CK_ULONG e),
      (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_GetOperationState, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG_PTR b), (void)a, (void)b)
UNSUP(p11_SetOperationState, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_OBJECT_HANDLE d,
			    CK_OBJECT_HANDLE e), (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_CopyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE x, CK_ATTRIBUTE_PTR a, CK_ULONG b,
		     CK_OBJECT_HANDLE_PTR d), (void)x, (void)a, (void)b, (void)d)
UNSUP(p11_GetObjectSize, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE a, CK_ULONG_PTR b), (void)a, (void)b)
UNSUP(p11_DigestInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR a), (void)a)
UNSUP(p11_Digest, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d, CK_ULONG_PTR e),
      (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_DigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b), (void)a, (void)b)
UNSUP(p11_DigestKey, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE a), (void)a)
UNSUP(p11_DigestFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG_PTR b), (void)a, (void)b)
UNSUP(p11_SignRecoverInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR a, CK_OBJECT_HANDLE b), (void)a, (void)b)
UNSUP(p11_SignRecover, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d, CK_ULONG_PTR e),
      (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_VerifyRecoverInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR a, CK_OBJECT_HANDLE b), (void)a, (void)b)
UNSUP(p11_VerifyRecover, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d, CK_ULONG_PTR e),
      (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_DigestEncryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d,
			      CK_ULONG_PTR e), (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_DecryptDigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d,
			      CK_ULONG_PTR e), (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_SignEncryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d,
			    CK_ULONG_PTR e), (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_DecryptVerifyUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR a, CK_ULONG b, CK_BYTE_PTR d,
			      CK_ULONG_PTR e), (void)a, (void)b, (void)d, (void)e)
UNSUP(p11_GetFunctionStatus, (CK_SESSION_HANDLE hSession), (void)0)
UNSUP(p11_CancelFunction, (CK_SESSION_HANDLE hSession), (void)0)

static CK_RV
p11_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
		    CK_ULONG ulCount)
{
	struct p11_session *s;
	CK_RV rv;

	(void)pTemplate; (void)ulCount;
	pthread_mutex_lock(&g_lock);
	if ((rv = get_session(hSession, &s)) == CKR_OK)
		rv = obj_by_handle(hObject, NULL) == NULL ? CKR_OBJECT_HANDLE_INVALID : CKR_ACTION_PROHIBITED;
	pthread_mutex_unlock(&g_lock);
	return rv;
}

static CK_RV
p11_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
	(void)flags; (void)pSlot; (void)pReserved;
	return check_init() != CKR_OK ? CKR_CRYPTOKI_NOT_INITIALIZED : CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_FUNCTION_LIST function_list = {
	{ 2, 40 },
	p11_Initialize, p11_Finalize, p11_GetInfo, C_GetFunctionList, p11_GetSlotList, p11_GetSlotInfo,
	p11_GetTokenInfo, p11_GetMechanismList, p11_GetMechanismInfo, p11_InitToken, p11_InitPIN, p11_SetPIN,
	p11_OpenSession, p11_CloseSession, p11_CloseAllSessions, p11_GetSessionInfo, p11_GetOperationState,
	p11_SetOperationState, p11_Login, p11_Logout, p11_CreateObject, p11_CopyObject, p11_DestroyObject,
	p11_GetObjectSize, p11_GetAttributeValue, p11_SetAttributeValue, p11_FindObjectsInit, p11_FindObjects,
	p11_FindObjectsFinal, p11_EncryptInit, p11_Encrypt, p11_EncryptUpdate, p11_EncryptFinal, p11_DecryptInit,
	p11_Decrypt, p11_DecryptUpdate, p11_DecryptFinal, p11_DigestInit, p11_Digest, p11_DigestUpdate, p11_DigestKey,
	p11_DigestFinal, p11_SignInit, p11_Sign, p11_SignUpdate, p11_SignFinal, p11_SignRecoverInit, p11_SignRecover,
	p11_VerifyInit, p11_Verify, p11_VerifyUpdate, p11_VerifyFinal, p11_VerifyRecoverInit, p11_VerifyRecover,
	p11_DigestEncryptUpdate, p11_DecryptDigestUpdate, p11_SignEncryptUpdate, p11_DecryptVerifyUpdate,
	p11_GenerateKey, p11_GenerateKeyPair, p11_WrapKey, p11_UnwrapKey, p11_DeriveKey, p11_SeedRandom,
	p11_GenerateRandom, p11_GetFunctionStatus, p11_CancelFunction, p11_WaitForSlotEvent,
};
