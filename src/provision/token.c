/*
 * EAR token verification (contract in token.h).
 */
#include "provision/token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <openssl/evp.h>

#include "common/jwe.h"
#include "common/timefmt.h"
#include "provision/util.h"

struct prov_jwks {
	size_t n;
	char **kid;
	cjose_jwk_t **jwk;
};

void
prov_jwks_free(prov_jwks *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++) {
		free(k->kid[i]);
		cjose_jwk_release(k->jwk[i]);
	}
	free(k->kid);
	free(k->jwk);
	free(k);
}

int
prov_p256_public_key(const json_t *jwk, EVP_PKEY **key, char *why, size_t whylen)
{
	const char *kty = json_string_value(json_object_get(jwk, "kty"));
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *x = json_string_value(json_object_get(jwk, "x"));
	const char *y = json_string_value(json_object_get(jwk, "y"));
	uint8_t *xb = NULL, *yb = NULL;
	size_t xl = 0, yl = 0;
	EVP_PKEY *pk = NULL;
	int r = -1;

	if (!json_is_object(jwk)) {
		(void)snprintf(why, whylen, "not a JWK object");
		return -1;
	}
	if (kty == NULL || strcmp(kty, "EC") != 0 || crv == NULL || strcmp(crv, "P-256") != 0) {
		(void)snprintf(why, whylen, "must be an EC P-256 key (kty EC, crv P-256)");
		return -1;
	}
	if (json_object_get(jwk, "d") != NULL) {
		(void)snprintf(why, whylen, "must be a public key (has \"d\")");
		return -1;
	}
	if (x == NULL || y == NULL ||
	    prov_b64url_decode(x, strlen(x), 32, &xb, &xl) != 0 || xl != 32 ||
	    prov_b64url_decode(y, strlen(y), 32, &yb, &yl) != 0 || yl != 32) {
		(void)snprintf(why, whylen, "\"x\" and \"y\" must be 32 bytes in base64url");
		goto out;
	}
	/* The point check with a P-256 group kept by common/jwe (building a group
	 * per call was ≈ 25 us of every release). */
	if (jwe_p256_from_jwk(jwk, &pk) != 0) {
		(void)snprintf(why, whylen, "the point is not on P-256");
		goto out;
	}
	*key = pk;
	pk = NULL;
	r = 0;
out:
	EVP_PKEY_free(pk);
	free(xb);
	free(yb);
	return r;
}

int
prov_check_p256_public(const json_t *jwk, char *why, size_t whylen)
{
	EVP_PKEY *pk = NULL;
	int r = prov_p256_public_key(jwk, &pk, why, whylen);

	EVP_PKEY_free(pk);
	return r;
}

int
prov_jwks_load(const char *path, prov_jwks **out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je), *keys, *k;
	prov_jwks *s = NULL;
	char why[128], *text = NULL;
	const char *kid;
	cjose_err ce;
	size_t i, n;
	int r = -1;

	if (root == NULL) {
		(void)snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
		return -1;
	}
	keys = json_object_get(root, "keys");
	n = json_array_size(keys);
	if (!json_is_array(keys) || n == 0 || n > 64) {
		(void)snprintf(err, errlen, "%s: key \"keys\": must be an array of 1..64 JWKs", path);
		goto out;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL || (s->kid = calloc(n, sizeof(char *))) == NULL ||
	    (s->jwk = calloc(n, sizeof(cjose_jwk_t *))) == NULL) {
		(void)snprintf(err, errlen, "out of memory");
		goto out;
	}
	json_array_foreach(keys, i, k) {
		kid = json_string_value(json_object_get(k, "kid"));
		if (prov_check_p256_public(k, why, sizeof(why)) != 0) {
			(void)snprintf(err, errlen, "%s: keys[%zu]: %s", path, i, why);
			goto out;
		}
		if (kid == NULL && n > 1) {
			(void)snprintf(err, errlen, "%s: keys[%zu]: \"kid\" required", path, i);
			goto out;
		}
		text = json_dumps(k, JSON_COMPACT);
		s->n = i + 1;
		if (text == NULL || (s->kid[i] = strdup(kid ? kid : "")) == NULL ||
		    (s->jwk[i] = cjose_jwk_import(text, strlen(text), &ce)) == NULL) {
			(void)snprintf(err, errlen, "%s: keys[%zu]: not importable", path, i);
			goto out;
		}
		free(text);
		text = NULL;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	free(text);
	prov_jwks_free(s);
	json_decref(root);
	return r;
}

void
prov_token_free(prov_token *t)
{
	if (t == NULL)
		return;
	json_decref(t->claims);
	EVP_PKEY_free(t->cnf_key);
	free(t);
}

static const char *
str_or_empty(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* A NumericDate claim: absent (1), present (0, *v set), malformed (-1). */
static int
num_claim(const json_t *claims, const char *key, long long *v)
{
	json_t *j = json_object_get(claims, key);

	if (j == NULL)
		return 1;
	if (json_is_integer(j)) {
		*v = json_integer_value(j);
		return 0;
	}
	if (json_is_real(j) && json_real_value(j) > -9.0e18 && json_real_value(j) < 9.0e18) {
		*v = (long long)json_real_value(j);
		return 0;
	}
	return -1;
}

static void
fmt_time(long long t, char out[RFC3339_LEN])
{
	rfc3339_format((time_t)t, out);
}

int
prov_token_verify(const prov_jwks *keys, const char *issuer, unsigned skew, time_t now,
		  const char *compact, size_t len, prov_token **out, char *why, size_t whylen)
{
	const char *dot1, *dot2, *alg, *kid, *iss;
	uint8_t *hdr_bytes = NULL, *payload = NULL;
	size_t hlen = 0, plen = 0, i;
	json_t *hdr = NULL, *claims = NULL, *cnf, *cpu0, *st;
	EVP_PKEY *cnf_key = NULL;
	const cjose_jwk_t *key = NULL;
	cjose_jws_t *jws = NULL;
	cjose_err ce;
	prov_token *t = NULL;
	long long exp = 0, nbf = 0, iat = 0;
	char tb[RFC3339_LEN], kw[128];
	int r = -1, e;

	if (len == 0 || len > TOKEN_MAX_LEN || memchr(compact, '\0', len) != NULL) {
		(void)snprintf(why, whylen, "token empty or larger than %u bytes", TOKEN_MAX_LEN);
		goto out;
	}
	dot1 = memchr(compact, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - compact)) : NULL;
	if (dot1 == NULL || dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - compact)) != NULL) {
		(void)snprintf(why, whylen, "not a compact JWS (three dot-separated parts)");
		goto out;
	}
	if (prov_b64url_decode(compact, (size_t)(dot1 - compact), 4096, &hdr_bytes, &hlen) != 0 ||
	    (hdr = json_loadb((const char *)hdr_bytes, hlen, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
	    !json_is_object(hdr)) {
		(void)snprintf(why, whylen, "protected header is not base64url JSON");
		goto out;
	}
	/* The algorithm first: nothing else is looked at for none, HS256, RS256, … */
	alg = json_string_value(json_object_get(hdr, "alg"));
	if (alg == NULL || strcmp(alg, "ES256") != 0) {
		(void)snprintf(why, whylen, "alg %.32s not accepted (ES256 only)",
			       alg ? alg : "(missing)");
		goto out;
	}
	if (json_object_get(hdr, "crit") != NULL) {
		(void)snprintf(why, whylen, "header \"crit\" not supported");
		goto out;
	}
	kid = json_string_value(json_object_get(hdr, "kid"));
	if (kid == NULL && json_object_get(hdr, "kid") != NULL) {
		(void)snprintf(why, whylen, "header \"kid\" must be a string");
		goto out;
	}
	for (i = 0; i < keys->n; i++)
		if (kid != NULL ? strcmp(keys->kid[i], kid) == 0 : keys->n == 1)
			key = keys->jwk[i];
	if (key == NULL) {
		if (kid != NULL)
			(void)snprintf(kw, sizeof(kw), "%.64s", kid);
		(void)snprintf(why, whylen, "signing key %s%s%s not in the trusted key set",
			       kid ? "\"" : "", kid ? kw : "(no kid)", kid ? "\"" : "");
		goto out;
	}
	if ((jws = cjose_jws_import(compact, len, &ce)) == NULL) {
		(void)snprintf(why, whylen, "not a compact JWS");
		goto out;
	}
	if (!cjose_jws_verify(jws, key, &ce)) {
		(void)snprintf(why, whylen, "signature invalid");
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &payload, &plen, &ce) ||
	    (claims = json_loadb((const char *)payload, plen, JSON_REJECT_DUPLICATES, NULL)) ==
		    NULL ||
	    !json_is_object(claims)) {
		(void)snprintf(why, whylen, "claims are not a JSON object");
		goto out;
	}
	iss = json_string_value(json_object_get(claims, "iss"));
	if (iss == NULL || strcmp(iss, issuer) != 0) {
		(void)snprintf(why, whylen, "issuer %.100s%s%s not trusted", iss ? "\"" : "",
			       iss ? iss : "(missing)", iss ? "\"" : "");
		goto out;
	}
	if ((e = num_claim(claims, "exp", &exp)) != 0) {
		(void)snprintf(why, whylen, "claim \"exp\" %s", e > 0 ? "missing" : "malformed");
		goto out;
	}
	if ((long long)now > exp + (long long)skew) {
		fmt_time(exp, tb);
		(void)snprintf(why, whylen, "expired at %s", tb);
		goto out;
	}
	if ((e = num_claim(claims, "nbf", &nbf)) < 0 ||
	    (e == 0 && (long long)now + (long long)skew < nbf)) {
		fmt_time(nbf, tb);
		(void)snprintf(why, whylen, e < 0 ? "claim \"nbf\" malformed" : "not valid before %s",
			       tb);
		goto out;
	}
	if ((e = num_claim(claims, "iat", &iat)) < 0 ||
	    (e == 0 && (long long)now + (long long)skew < iat)) {
		(void)snprintf(why, whylen, e < 0 ? "claim \"iat\" malformed" : "issued in the future");
		goto out;
	}
	cnf = json_object_get(json_object_get(claims, "cnf"), "jwk");
	if (cnf == NULL) {
		(void)snprintf(why, whylen, "claim \"cnf.jwk\" missing (no transfer key)");
		goto out;
	}
	/* Imported once: the release encrypts to this very key (secret_jwe). */
	if (prov_p256_public_key(cnf, &cnf_key, kw, sizeof(kw)) != 0) {
		(void)snprintf(why, whylen, "claim \"cnf.jwk\": %s", kw);
		goto out;
	}
	cpu0 = json_object_get(json_object_get(claims, "submods"), "cpu0");
	st = json_object_get(cpu0, "ear.status");
	if (!json_is_object(cpu0) || !json_is_string(st)) {
		(void)snprintf(why, whylen, "claim \"submods.cpu0.ear.status\" missing");
		goto out;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		(void)snprintf(why, whylen, "out of memory");
		goto out;
	}
	t->claims = claims;
	claims = NULL;
	t->cnf_jwk = cnf;
	t->cnf_key = cnf_key;
	cnf_key = NULL;
	t->cpu0 = cpu0;
	t->jti = str_or_empty(t->claims, "jti");
	t->ear_status = json_string_value(st);
	t->evidence_digest = str_or_empty(cpu0, "nitride.evidence-digest");
	t->policy_id = str_or_empty(cpu0, "ear.appraisal-policy-id");
	*out = t;
	r = 0;
out:
	EVP_PKEY_free(cnf_key);
	cjose_jws_release(jws);
	json_decref(claims);
	json_decref(hdr);
	free(hdr_bytes);
	return r;
}

int
prov_jwk_thumbprint(const json_t *jwk, char out[44])
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *x = json_string_value(json_object_get(jwk, "x"));
	const char *y = json_string_value(json_object_get(jwk, "y"));
	char buf[512], *b;
	unsigned char md[32];
	unsigned mdlen = 0;
	int n;

	if (crv == NULL || x == NULL || y == NULL)
		return -1;
	/* RFC 7638 §3.2: required members in lexicographic order, no whitespace. */
	n = snprintf(buf, sizeof(buf), "{\"crv\":\"%s\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		     crv, x, y);
	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    (b = prov_b64url_encode(md, mdlen)) == NULL)
		return -1;
	memcpy(out, b, 44);
	out[43] = '\0';
	free(b);
	return 0;
}
