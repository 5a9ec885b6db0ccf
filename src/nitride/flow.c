#include "nitride/flow.h"

#include "common/jcs.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NONCE_B64URL_LEN 43 /* 32 bytes, base64url without padding */
#define NONCE_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

const char *
flow_step_name(enum flow_step s)
{
	switch (s) {
	case FLOW_OK: return "ok";
	case FLOW_CHALLENGE: return "challenge";
	case FLOW_REPORT: return "report";
	case FLOW_ATTEST: return "attestation";
	case FLOW_RELEASE: return "release";
	case FLOW_INPUT: return "input";
	}
	return "unknown";
}

static enum flow_step __attribute__((format(printf, 4, 5)))
fail(enum flow_step step, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return step;
}

/* The reason a service gave: RFC 7807 "detail", else the status line. */
static void
problem_detail(const struct http_response *r, char *out, size_t outlen)
{
	json_t *doc = r->body != NULL ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	const char *detail = doc != NULL ? json_string_value(json_object_get(doc, "detail")) : NULL;

	if (detail != NULL)
		(void)snprintf(out, outlen, "%s (HTTP %ld)", detail, r->status);
	else
		(void)snprintf(out, outlen, "HTTP %ld", r->status);
	json_decref(doc);
}

static char *
base64(const uint8_t *p, size_t n)
{
	char *out;

	if (n > (SIZE_MAX / 4) * 3 - 3 || (out = malloc(4 * ((n + 2) / 3) + 1)) == NULL)
		return NULL;
	(void)EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	return out;
}

/* REPORT_DATA = SHA-384(JCS({"nonce": nonce, "tee-pubkey": jwk})) ‖ 16 zero bytes. */
static int
binding(const char *nonce, json_t *jwk, uint8_t report_data[SNP_REPORT_DATA_LEN])
{
	json_t *obj = json_pack("{s:s,s:O}", "nonce", nonce, "tee-pubkey", jwk);
	unsigned int n = 0;
	char *canon = NULL;
	size_t len = 0;
	int r = -1;

	if (obj == NULL || jcs_serialize(obj, &canon, &len) != 0)
		goto out;
	memset(report_data, 0, SNP_REPORT_DATA_LEN);
	if (EVP_Digest(canon, len, report_data, &n, EVP_sha384(), NULL) != 1 || n != 48)
		goto out;
	r = 0;
out:
	free(canon);
	json_decref(obj);
	return r;
}

static bool
member_is(json_t *o, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL && strcmp(v, want) == 0;
}

/* A public EC P-256 JWK, nothing private. */
static json_t *
load_transfer_key(const char *text, char *err, size_t errlen)
{
	json_t *jwk = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

	if (jwk == NULL || !json_is_object(jwk) ||
	    !json_is_string(json_object_get(jwk, "x")) || !json_is_string(json_object_get(jwk, "y")) ||
	    json_object_get(jwk, "d") != NULL ||
	    !member_is(jwk, "kty", "EC") || !member_is(jwk, "crv", "P-256")) {
		(void)snprintf(err, errlen, "the transfer key must be a public EC P-256 JWK");
		json_decref(jwk);
		return NULL;
	}
	return jwk;
}

/*
 * The attest request {"nonce", "report", "certs"?, "tee_pubkey"}, written
 * directly: base64 and a base64url nonce need no JSON escaping, and
 * jansson's dump went through the ≈ 6 KB body a character at a time on
 * every flow.  The nonce comes from the network, so its alphabet is checked
 * again here (flow_run refuses a challenge whose nonce is not 43 base64url
 * characters).  NULL when out of memory or when the nonce is not base64url.
 */
static char *
attest_body(const char *nonce, const char *report_b64, const char *certs_b64, const json_t *jwk)
{
	char *key = NULL, *out = NULL;
	size_t n;

	if (strspn(nonce, NONCE_ALPHABET) != strlen(nonce) ||
	    (key = json_dumps(jwk, JSON_COMPACT)) == NULL)
		return NULL;
	n = strlen(nonce) + strlen(report_b64) + (certs_b64 ? strlen(certs_b64) : 0) + strlen(key) +
	    64;
	if ((out = malloc(n)) != NULL)
		(void)snprintf(out, n, "{\"nonce\":\"%s\",\"report\":\"%s\",%s%s%s\"tee_pubkey\":%s}",
			       nonce, report_b64, certs_b64 ? "\"certs\":\"" : "",
			       certs_b64 ? certs_b64 : "", certs_b64 ? "\"," : "", key);
	free(key);
	return out;
}

static bool
valid_name(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > 128)
		return false;
	for (i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return name[0] != '.';
}

/* The flow; attest_only (name NULL) stops after step 3 and hands out the token. */
static unsigned long
mono_us(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long)ts.tv_sec * 1000000ul + (unsigned long)ts.tv_nsec / 1000ul;
}

/* Close step s (0-based) of the flow in *st; *t0 becomes the next step's start. */
static void
step_done(struct flow_stats *st, unsigned s, unsigned long *t0)
{
	unsigned long t = mono_us();

	st->step_us[s] = t - *t0;
	*t0 = t;
}

/* One request of the flow, counted in *st. */
static int
request(const struct flow_config *cfg, const char *url, const char *bearer, const char *body,
	struct http_response *resp, struct flow_stats *st, char *err, size_t errlen)
{
	int r = http_request(&cfg->http, url, bearer, body, resp, err, errlen);

	st->requests += resp->attempts;
	st->connects += resp->connects;
	return r;
}

static enum flow_step
flow_run(const struct flow_config *cfg, const char *name, unsigned long version,
	 const char *tee_pubkey_json, bool attest_only, char **jwe_out, struct flow_stats *st,
	 char *err, size_t errlen)
{
	struct http_response resp = { 0 };
	uint8_t report_data[SNP_REPORT_DATA_LEN];
	uint8_t *report = NULL, *certs = NULL;
	size_t report_len = 0, certs_len = 0;
	char *report_b64 = NULL, *certs_b64 = NULL, *body = NULL, *nonce = NULL, *token = NULL;
	char url[2048], why[FLOW_ERR_MAX], herr[HTTP_ERR_MAX] = "";
	json_t *jwk = NULL, *doc = NULL;
	snp_error serr = { 0 };
	snp_guest *guest = NULL;
	unsigned long t0;
	enum flow_step ret;

	if (!attest_only && !valid_name(name))
		return fail(FLOW_INPUT, err, errlen, "'%s' is not a secret name ([A-Za-z0-9._-], 1-128)", name);
	if ((jwk = load_transfer_key(tee_pubkey_json, err, errlen)) == NULL)
		return FLOW_INPUT;

	/* 1. A fresh, single-use nonce. */
	t0 = mono_us();
	(void)snprintf(url, sizeof(url), "%s/v1/challenge", cfg->attestd_url);
	if (request(cfg, url, NULL, "{}", &resp, st, herr, sizeof(herr)) != 0) {
		ret = fail(FLOW_CHALLENGE, err, errlen, "attestation service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || (doc = json_loadb(resp.body, resp.body_len, 0, NULL)) == NULL ||
	    json_string_length(json_object_get(doc, "nonce")) != NONCE_B64URL_LEN ||
	    strspn(json_string_value(json_object_get(doc, "nonce")), NONCE_ALPHABET) !=
		    NONCE_B64URL_LEN) {
		problem_detail(&resp, why, sizeof(why));
		ret = fail(FLOW_CHALLENGE, err, errlen, "no challenge from the attestation service: %s", why);
		goto out;
	}
	nonce = strdup(json_string_value(json_object_get(doc, "nonce")));
	json_decref(doc);
	doc = NULL;
	http_response_free(&resp);
	step_done(st, 0, &t0);

	/* 2. Evidence binding that nonce and the transfer key. */
	if (nonce == NULL || binding(nonce, jwk, report_data) != 0) {
		ret = fail(FLOW_REPORT, err, errlen, "cannot compute the REPORT_DATA binding");
		goto out;
	}
	if (cfg->guests != NULL ? guest_pool_report(cfg->guests, report_data, 0, &report, &report_len,
						    &certs, &certs_len, NULL, &serr) != SNP_OK
				: (snp_guest_open(cfg->snp_spec, &guest, &serr) != SNP_OK ||
				   snp_guest_get_report(guest, report_data, 0, &report, &report_len,
							&certs, &certs_len, &serr) != SNP_OK)) {
		ret = fail(FLOW_REPORT, err, errlen, "no attestation report: %s", serr.detail);
		goto out;
	}
	if ((report_b64 = base64(report, report_len)) == NULL ||
	    (certs_len > 0 && (certs_b64 = base64(certs, certs_len)) == NULL) ||
	    (body = attest_body(nonce, report_b64, certs_b64, jwk)) == NULL) {
		ret = fail(FLOW_REPORT, err, errlen, "cannot build the attest request (out of memory, "
						   "or the nonce is not base64url)");
		goto out;
	}
	step_done(st, 1, &t0);

	/* 3. Appraisal: a token, or the reason there is none. */
	(void)snprintf(url, sizeof(url), "%s/v1/attest", cfg->attestd_url);
	if (request(cfg, url, NULL, body, &resp, st, herr, sizeof(herr)) != 0) {
		ret = fail(FLOW_ATTEST, err, errlen, "attestation service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || (doc = json_loadb(resp.body, resp.body_len, 0, NULL)) == NULL ||
	    !json_is_string(json_object_get(doc, "token"))) {
		problem_detail(&resp, why, sizeof(why));
		ret = fail(FLOW_ATTEST, err, errlen, "attestation rejected: %s", why);
		goto out;
	}
	token = strdup(json_string_value(json_object_get(doc, "token")));
	http_response_free(&resp);
	step_done(st, 2, &t0);
	if (attest_only) {
		if (token == NULL) {
			ret = fail(FLOW_ATTEST, err, errlen, "out of memory");
			goto out;
		}
		*jwe_out = token;
		token = NULL;
		ret = FLOW_OK;
		goto out;
	}

	/* 4. Release: the secret, encrypted to the transfer key. */
	if (version > 0)
		(void)snprintf(url, sizeof(url), "%s/v1/secrets/%s?version=%lu", cfg->provd_url, name, version);
	else
		(void)snprintf(url, sizeof(url), "%s/v1/secrets/%s", cfg->provd_url, name);
	if (token == NULL || request(cfg, url, token, NULL, &resp, st, herr, sizeof(herr)) != 0) {
		ret = fail(FLOW_RELEASE, err, errlen, "provisioning service unreachable: %s", herr);
		goto out;
	}
	if (resp.status != 200 || resp.body == NULL || resp.body_len == 0 ||
	    strspn(resp.body, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") != resp.body_len) {
		problem_detail(&resp, why, sizeof(why));
		ret = fail(FLOW_RELEASE, err, errlen, "release refused: %s", why);
		goto out;
	}
	*jwe_out = resp.body;
	resp.body = NULL;
	step_done(st, 3, &t0);
	ret = FLOW_OK;
out:
	if (token != NULL)
		OPENSSL_cleanse(token, strlen(token)); /* a bearer credential until it expires */
	free(token);
	free(nonce);
	free(body);
	free(report_b64);
	free(certs_b64);
	free(report);
	free(certs);
	json_decref(doc);
	json_decref(jwk);
	http_response_free(&resp);
	snp_guest_close(guest);
	return ret;
}

enum flow_step
flow_provision(const struct flow_config *cfg, const char *name, unsigned long version,
	       const char *tee_pubkey_json, char **jwe_out, struct flow_stats *stats, char *err,
	       size_t errlen)
{
	struct flow_stats st = { 0 };
	enum flow_step r = flow_run(cfg, name, version, tee_pubkey_json, false, jwe_out, &st, err, errlen);

	if (stats != NULL)
		*stats = st;
	return r;
}

enum flow_step
flow_attest(const struct flow_config *cfg, const char *tee_pubkey_json, char **token_out,
	    struct flow_stats *stats, char *err, size_t errlen)
{
	struct flow_stats st = { 0 };
	enum flow_step r = flow_run(cfg, NULL, 0, tee_pubkey_json, true, token_out, &st, err, errlen);

	if (stats != NULL)
		*stats = st;
	return r;
}
