/*
 * EAR tokens and the signing key (contract in token.h).
 */
#include "attest/token.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjose/cjose.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "attest/nonce.h"
#include "common/atomicfile.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "common/jcs.h"
#include "common/jwe.h"

#define KEY_FILE_MAX 8192u
#define MAX_RETIRED 16u

struct token_signer {
	pthread_mutex_t lock; /* cjose objects are not documented as thread-safe */
	cjose_jwk_t *jwk;
	char kid[44];
	json_t *jwks; /* public key set */
};

int
token_jwk_thumbprint(const json_t *jwk, char out[44])
{
	json_t *t = NULL;
	char *canon = NULL;
	size_t clen;
	unsigned char md[32];
	unsigned n = 0;
	int r = -1;

	t = json_pack("{s:O, s:O, s:O, s:O}", "crv", json_object_get(jwk, "crv"), "kty",
		      json_object_get(jwk, "kty"), "x", json_object_get(jwk, "x"), "y",
		      json_object_get(jwk, "y"));
	if (t == NULL || jcs_serialize(t, &canon, &clen) != 0 ||
	    EVP_Digest(canon, clen, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
		goto out;
	b64url_encode(md, 32, out);
	r = 0;
out:
	free(canon);
	json_decref(t);
	return r;
}

int
token_check_tee_pubkey(const json_t *jwk, char *why, size_t whylen)
{
	static const char *const members[] = { "kty", "crv", "x", "y" };
	unsigned char b[40];
	EVP_PKEY *pk = NULL;
	size_t i;
	const char *s;

	if (!json_is_object(jwk)) {
		(void)snprintf(why, whylen, "tee_pubkey must be a JWK object");
		return -1;
	}
	for (i = 0; i < 4; i++) {
		if (!json_is_string(json_object_get(jwk, members[i]))) {
			(void)snprintf(why, whylen, "tee_pubkey.%s: missing or not a string", members[i]);
			return -1;
		}
	}
	if (json_object_get(jwk, "d") != NULL) {
		(void)snprintf(why, whylen, "tee_pubkey carries a private key (\"d\"): refused");
		return -1;
	}
	if (strcmp(json_string_value(json_object_get(jwk, "kty")), "EC") != 0 ||
	    strcmp(json_string_value(json_object_get(jwk, "crv")), "P-256") != 0) {
		(void)snprintf(why, whylen, "tee_pubkey must be kty EC, crv P-256");
		return -1;
	}
	for (i = 2; i < 4; i++) {
		s = json_string_value(json_object_get(jwk, members[i]));
		if (b64url_decode(s, strlen(s), b, sizeof(b)) != 32) {
			(void)snprintf(why, whylen, "tee_pubkey.%s: not 32 bytes of base64url",
				       members[i]);
			return -1;
		}
	}
	/* The point check with common/jwe's P-256 template, kept for the life
	 * of the process: a cjose import built a new EC group (20-40 us in
	 * OpenSSL 3.0) per request on the event loop.  OpenSSL's point decoding
	 * refuses a coordinate at or above the field prime and a point off the
	 * curve. */
	if (jwe_p256_from_jwk(jwk, &pk) != 0) {
		(void)snprintf(why, whylen, "tee_pubkey: not a point on P-256");
		return -1;
	}
	EVP_PKEY_free(pk);
	return 0;
}

static json_t *
public_jwk(const json_t *priv, const char *kid)
{
	return json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:s}", "kty", json_object_get(priv, "kty"),
			 "crv", json_object_get(priv, "crv"), "x", json_object_get(priv, "x"), "y",
			 json_object_get(priv, "y"), "kid", kid, "alg", "ES256", "use", "sig");
}

static void
add_retired(token_signer *s, json_t *keys, const char *state_dir, unsigned keep)
{
	struct stat st;
	time_t now = time(NULL);
	char dir[1200], path[1500];
	DIR *d;
	struct dirent *de;
	size_t n = 0;
	json_t *k;
	char kid[44];

	(void)snprintf(dir, sizeof(dir), "%s/retired-keys", state_dir);
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL && n < MAX_RETIRED) {
		size_t l = strlen(de->d_name);

		if (l < 5 || strcmp(de->d_name + l - 4, ".jwk") != 0)
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (now - st.st_mtime > (time_t)keep) {
			(void)unlink(path); /* every token it signed has expired */
			continue;
		}
		if ((k = json_load_file(path, 0, NULL)) == NULL)
			continue;
		if (token_jwk_thumbprint(k, kid) == 0 && strcmp(kid, s->kid) != 0) {
			(void)json_array_append_new(keys, public_jwk(k, kid));
			n++;
		}
		json_decref(k);
	}
	closedir(d);
}

int
token_signer_open(const char *state_dir, unsigned keep_retired, token_signer **out, char *err,
		  size_t errlen)
{
	token_signer *s = NULL;
	char path[1200];
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text = NULL;
	json_t *priv = NULL, *keys = NULL;
	cjose_err ce;
	int r = -1, fr;

	if ((s = calloc(1, sizeof(*s))) == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		(void)snprintf(err, errlen, "out of memory");
		return -1;
	}
	(void)snprintf(path, sizeof(path), "%s/signing-key.jwk", state_dir);
	fr = file_read_all(path, KEY_FILE_MAX, &buf, &len);
	if (fr == -ENOENT) {
		if ((s->jwk = cjose_jwk_create_EC_random(CJOSE_JWK_EC_P_256, &ce)) == NULL ||
		    (text = cjose_jwk_to_json(s->jwk, true, &ce)) == NULL ||
		    (priv = json_loads(text, 0, NULL)) == NULL) {
			(void)snprintf(err, errlen, "cannot create a signing key: %s", ce.message);
			goto out;
		}
		if (token_jwk_thumbprint(priv, s->kid) != 0 ||
		    json_object_set_new(priv, "kid", json_string(s->kid)) != 0) {
			(void)snprintf(err, errlen, "cannot compute the key id");
			goto out;
		}
		OPENSSL_clear_free(text, strlen(text));
		if ((text = json_dumps(priv, JSON_COMPACT)) == NULL ||
		    (fr = atomic_write_file(path, (const uint8_t *)text, strlen(text), 0600)) != 0) {
			(void)snprintf(err, errlen, "%s: cannot write: %s", path,
				       text ? strerror(-fr) : "out of memory");
			goto out;
		}
	} else if (fr != 0) {
		(void)snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-fr));
		goto out;
	} else {
		if ((priv = json_loadb((const char *)buf, len, 0, NULL)) == NULL ||
		    (s->jwk = cjose_jwk_import((const char *)buf, len, &ce)) == NULL ||
		    !json_is_string(json_object_get(priv, "d")) ||
		    token_jwk_thumbprint(priv, s->kid) != 0) {
			(void)snprintf(err, errlen, "%s: not a private EC P-256 JWK", path);
			goto out;
		}
	}
	if (!cjose_jwk_set_kid(s->jwk, s->kid, strlen(s->kid), &ce)) {
		(void)snprintf(err, errlen, "cannot set the key id");
		goto out;
	}
	if ((keys = json_array()) == NULL ||
	    json_array_append_new(keys, public_jwk(priv, s->kid)) != 0) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	add_retired(s, keys, state_dir, keep_retired);
	if ((s->jwks = json_pack("{s:o}", "keys", keys)) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	keys = NULL;
	*out = s;
	s = NULL;
	r = 0;
out:
	if (text != NULL)
		OPENSSL_clear_free(text, strlen(text));
	if (buf != NULL)
		OPENSSL_clear_free(buf, len);
	json_decref(priv); /* jansson does not wipe: the private scalar is short-lived here */
	json_decref(keys);
	token_signer_free(s);
	return r;
}

void
token_signer_free(token_signer *s)
{
	if (s == NULL)
		return;
	cjose_jwk_release(s->jwk);
	json_decref(s->jwks);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

const char *
token_signer_kid(const token_signer *s)
{
	return s->kid;
}

json_t *
token_signer_jwks(const token_signer *s)
{
	return json_deep_copy(s->jwks);
}

int
token_issue(token_signer *s, const token_params *p, char **jwt, char jti[TOKEN_JTI_LEN + 1])
{
	unsigned char rnd[TOKEN_JTI_LEN / 2];
	json_t *claims = NULL, *cpu0 = NULL, *ev = NULL;
	cjose_header_t *hdr = NULL;
	cjose_jws_t *jws = NULL;
	cjose_err ce;
	const char *ser = NULL;
	char *payload = NULL, *copy = NULL;
	size_t payload_len = 0;
	int r = -1;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	hex_encode(rnd, sizeof(rnd), jti);
	ev = appraisal_report_claims(p->appraisal);
	cpu0 = json_pack("{s:s, s:s}", "ear.status", ear_status_name(p->appraisal->status),
			 "ear.appraisal-policy-id", p->appraisal->policy_digest);
	if (cpu0 == NULL || ev == NULL)
		goto out;
	(void)json_object_set_new(cpu0, "ear.veraison.annotated-evidence", ev);
	ev = NULL;
	(void)json_object_set_new(cpu0, "nitride.evidence-digest",
				  json_string(p->appraisal->evidence_digest));
	claims = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:{s:s, s:s}, s:{s:O}, s:{s:O}}", "iss",
			   p->issuer, "iat", (json_int_t)p->now, "nbf", (json_int_t)p->now, "exp",
			   (json_int_t)(p->now + (time_t)p->lifetime), "jti", jti, "eat_profile",
			   TOKEN_EAT_PROFILE, "ear.verifier-id", "developer", "nitride", "build",
			   "attestd 0.1.0", "submods", "cpu0", cpu0, "cnf", "jwk", p->tee_pubkey);
	if (claims == NULL)
		goto out;
	if (p->nonce != NULL)
		(void)json_object_set_new(claims, "eat_nonce", json_string(p->nonce));
	/* Canonical JSON: deterministic like JSON_SORT_KEYS, and half the cost of
	 * json_dumps (which escapes a character at a time) on this ≈ 1.9 KB. */
	if (jcs_serialize(claims, &payload, &payload_len) != 0)
		goto out;
	if ((hdr = cjose_header_new(&ce)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &ce) ||
	    !cjose_header_set(hdr, CJOSE_HDR_KID, s->kid, &ce) ||
	    !cjose_header_set(hdr, "typ", "JWT", &ce))
		goto out;
	(void)pthread_mutex_lock(&s->lock);
	jws = cjose_jws_sign(s->jwk, hdr, (const uint8_t *)payload, payload_len, &ce);
	if (jws != NULL && cjose_jws_export(jws, &ser, &ce) && ser != NULL)
		copy = strdup(ser);
	(void)pthread_mutex_unlock(&s->lock);
	if (copy == NULL)
		goto out;
	*jwt = copy;
	r = 0;
out:
	cjose_jws_release(jws);
	cjose_header_release(hdr);
	free(payload);
	json_decref(claims);
	json_decref(cpu0);
	json_decref(ev);
	return r;
}

int
token_signer_retire(const char *state_dir, char *err, size_t errlen)
{
	char path[1200], dir[1200], out[1300], kid[44];
	uint8_t *buf = NULL;
	size_t len = 0;
	json_t *priv = NULL, *pub = NULL;
	char *text = NULL;
	int r = -1, fr;

	(void)snprintf(path, sizeof(path), "%s/signing-key.jwk", state_dir);
	(void)snprintf(dir, sizeof(dir), "%s/retired-keys", state_dir);
	if ((fr = file_read_all(path, KEY_FILE_MAX, &buf, &len)) != 0) {
		(void)snprintf(err, errlen, "%s: %s", path, strerror(-fr));
		goto out;
	}
	if ((priv = json_loadb((const char *)buf, len, 0, NULL)) == NULL ||
	    token_jwk_thumbprint(priv, kid) != 0 || (pub = public_jwk(priv, kid)) == NULL ||
	    (text = json_dumps(pub, JSON_COMPACT)) == NULL) {
		(void)snprintf(err, errlen, "%s: not a private EC P-256 JWK", path);
		goto out;
	}
	(void)snprintf(out, sizeof(out), "%s/%s.jwk", dir, kid);
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) ||
	    (fr = atomic_write_file(out, (const uint8_t *)text, strlen(text), 0600)) != 0) {
		(void)snprintf(err, errlen, "%s: cannot write", out);
		goto out;
	}
	if (unlink(path) != 0) {
		(void)snprintf(err, errlen, "%s: cannot remove: %s", path, strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (buf != NULL)
		OPENSSL_clear_free(buf, len);
	free(text);
	json_decref(priv);
	json_decref(pub);
	return r;
}
