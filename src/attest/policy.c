/*
 * Appraisal policy parsing (contract in policy.h).
 */
#include "attest/policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "common/jcs.h"

struct pctx {
	const char *name;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int
perr(struct pctx *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, c->errlen, "%s: ", c->name);
	if (n < 0 || (size_t)n >= c->errlen)
		return -1;
	va_start(ap, fmt);
	(void)vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int
get_bool(struct pctx *c, json_t *o, const char *key, const char *path, bool *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return perr(c, "key \"%s\": expected true or false", path);
	*out = json_is_true(v);
	return 0;
}

static int
get_int(struct pctx *c, json_t *o, const char *key, const char *path, long long lo, long long hi,
	int *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return perr(c, "key \"%s\": expected an integer %lld..%lld", path, lo, hi);
	*out = (int)json_integer_value(v);
	return 0;
}

/* A list of lowercase/uppercase hex strings of exactly n bytes each. */
static int
get_hex_list(struct pctx *c, json_t *o, const char *key, size_t n, size_t *count, void *outp)
{
	json_t *v = json_object_get(o, key), *e;
	uint8_t **out = outp;
	uint8_t *arr = NULL;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v) || json_array_size(v) > POLICY_MAX_LIST)
		return perr(c, "key \"%s\": expected an array of at most %u hex strings", key,
			    POLICY_MAX_LIST);
	if (json_array_size(v) > 0 && (arr = calloc(json_array_size(v), n)) == NULL)
		return perr(c, "out of memory");
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || json_string_length(e) != 2 * n ||
		    hex_decode(json_string_value(e), arr + i * n, n) != 0) {
			free(arr);
			return perr(c, "key \"%s[%zu]\": expected %zu hex digits", key, i, 2 * n);
		}
	}
	*out = arr;
	*count = json_array_size(v);
	return 0;
}

static int
get_hex(struct pctx *c, json_t *o, const char *key, size_t n, bool *has, uint8_t *out)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) != 2 * n ||
	    hex_decode(json_string_value(v), out, n) != 0)
		return perr(c, "key \"%s\": expected %zu hex digits", key, 2 * n);
	*has = true;
	return 0;
}

/* "0x…" or an integer */
static int
get_u64(struct pctx *c, json_t *o, const char *key, const char *path, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	const char *s;
	char *end = NULL;
	unsigned long long x;

	if (v == NULL)
		return 0;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v) || strncmp((s = json_string_value(v)), "0x", 2) != 0 || s[2] == '\0')
		return perr(c, "key \"%s\": expected \"0x<hex>\" or a non-negative integer", path);
	errno = 0;
	x = strtoull(s + 2, &end, 16);
	if (errno != 0 || *end != '\0')
		return perr(c, "key \"%s\": expected \"0x<hex>\" (64 bits)", path);
	*out = x;
	return 0;
}

static int
check_keys(struct pctx *c, json_t *o, const char *path, const char *const *allowed)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach(o, k, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			return perr(c, "unknown key \"%s%s%s\"", path, *path ? "." : "", k);
	}
	return 0;
}

static int
get_name_set(struct pctx *c, json_t *o, const char *key, const char *const *names, unsigned *out)
{
	json_t *v = json_object_get(o, key), *e;
	unsigned mask = 0;
	size_t i, j;

	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return perr(c, "key \"%s\": expected an array of names", key);
	json_array_foreach(v, i, e) {
		for (j = 0; names[j] != NULL; j++)
			if (json_is_string(e) && names[j][0] != '\0' &&
			    strcmp(json_string_value(e), names[j]) == 0)
				break;
		if (names[j] == NULL)
			return perr(c, "key \"%s[%zu]\": not one of the allowed names", key, i);
		mask |= 1u << j;
	}
	*out = mask;
	return 0;
}

static int
get_int_set(struct pctx *c, json_t *o, const char *key, int lo, int hi, unsigned *out)
{
	json_t *v = json_object_get(o, key), *e;
	unsigned mask = 0;
	size_t i;

	if (v == NULL)
		return 0;
	if (!json_is_array(v))
		return perr(c, "key \"%s\": expected an array of integers", key);
	json_array_foreach(v, i, e) {
		if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > hi)
			return perr(c, "key \"%s[%zu]\": expected an integer %d..%d", key, i, lo, hi);
		mask |= 1u << json_integer_value(e);
	}
	*out = mask;
	return 0;
}

static int
parse_doc(struct pctx *c, json_t *root, policy *p)
{
	static const char *const top[] = {
		"measurements", "host_data", "id_key_digests", "author_key_digests", "family_id",
		"image_id", "min_guest_svn", "vmpls", "guest_policy", "min_tcb", "tcb_apply",
		"min_firmware", "platform_info", "signing_keys", "products", "report_versions",
		"require_crl", "warn_rules", "comment", NULL
	};
	static const char *const gp_keys[] = { "allow_debug", "allow_migration_agent", "allow_smt",
					       "require_single_socket", "min_abi_major",
					       "min_abi_minor", NULL };
	static const char *const tcb_keys[] = { "fmc", "bootloader", "tee", "snp", "microcode", NULL };
	static const char *const fw_keys[] = { "major", "minor", "build", NULL };
	static const char *const pi_keys[] = { "required", "forbidden", NULL };
	static const char *const key_names[] = { "vcek", "vlek", NULL };
	static const char *const prod_names[] = { "", "milan", "genoa", "turin", NULL };
	static const char *const apply_names[] = { "reported", "committed", "launch", "current", NULL };
	json_t *v, *e, *t;
	const char *k;
	char path[96];
	size_t i;
	int svn = 0;

	if (!json_is_object(root))
		return perr(c, "the policy must be a JSON object");
	if (check_keys(c, root, "", top) != 0)
		return -1;
	if (get_hex_list(c, root, "measurements", SNP_MEASUREMENT_LEN, &p->n_measurements,
			 &p->measurements) != 0 ||
	    get_hex_list(c, root, "host_data", SNP_HOST_DATA_LEN, &p->n_host_data, &p->host_data) != 0 ||
	    get_hex_list(c, root, "id_key_digests", SNP_KEY_DIGEST_LEN, &p->n_id_key_digests,
			 &p->id_key_digests) != 0 ||
	    get_hex_list(c, root, "author_key_digests", SNP_KEY_DIGEST_LEN, &p->n_author_key_digests,
			 &p->author_key_digests) != 0 ||
	    get_hex(c, root, "family_id", SNP_ID_LEN, &p->has_family_id, p->family_id) != 0 ||
	    get_hex(c, root, "image_id", SNP_ID_LEN, &p->has_image_id, p->image_id) != 0 ||
	    get_int(c, root, "min_guest_svn", "min_guest_svn", 0, 0x7FFFFFFFLL, &svn) != 0 ||
	    get_int_set(c, root, "vmpls", 0, 3, &p->vmpls) != 0 ||
	    get_name_set(c, root, "signing_keys", key_names, &p->signing_keys) != 0 ||
	    get_name_set(c, root, "products", prod_names, &p->products) != 0 ||
	    get_int_set(c, root, "report_versions", 2, 5, &p->report_versions) != 0 ||
	    get_name_set(c, root, "tcb_apply", apply_names, &p->tcb_apply) != 0 ||
	    get_bool(c, root, "require_crl", "require_crl", &p->require_crl) != 0)
		return -1;
	p->min_guest_svn = (uint32_t)svn;
	if (p->n_measurements == 0)
		return perr(c, "key \"measurements\": required, with at least one allowed measurement");
	if (json_object_get(root, "vmpls") && p->vmpls == 0)
		return perr(c, "key \"vmpls\": must allow at least one VMPL");
	if (json_object_get(root, "signing_keys") && p->signing_keys == 0)
		return perr(c, "key \"signing_keys\": must allow vcek and/or vlek");
	if (json_object_get(root, "products") && p->products == 0)
		return perr(c, "key \"products\": must allow at least one product");
	if (json_object_get(root, "report_versions") && p->report_versions == 0)
		return perr(c, "key \"report_versions\": must allow at least one version");
	if ((v = json_object_get(root, "guest_policy")) != NULL) {
		if (!json_is_object(v))
			return perr(c, "key \"guest_policy\": expected an object");
		if (check_keys(c, v, "guest_policy", gp_keys) != 0 ||
		    get_bool(c, v, "allow_debug", "guest_policy.allow_debug", &p->allow_debug) != 0 ||
		    get_bool(c, v, "allow_migration_agent", "guest_policy.allow_migration_agent",
			     &p->allow_migration_agent) != 0 ||
		    get_bool(c, v, "allow_smt", "guest_policy.allow_smt", &p->allow_smt) != 0 ||
		    get_bool(c, v, "require_single_socket", "guest_policy.require_single_socket",
			     &p->require_single_socket) != 0 ||
		    get_int(c, v, "min_abi_major", "guest_policy.min_abi_major", 0, 255,
			    &p->min_abi_major) != 0 ||
		    get_int(c, v, "min_abi_minor", "guest_policy.min_abi_minor", 0, 255,
			    &p->min_abi_minor) != 0)
			return -1;
	}
	if ((v = json_object_get(root, "min_tcb")) != NULL) {
		if (!json_is_object(v))
			return perr(c, "key \"min_tcb\": expected an object keyed by product");
		json_object_foreach(v, k, t) {
			snp_product pr = snp_product_from_name(k);
			policy_min_tcb *m;

			(void)snprintf(path, sizeof(path), "min_tcb.%.40s", k);
			if (pr == SNP_PRODUCT_UNKNOWN || strcmp(k, snp_product_name(pr)) != 0)
				return perr(c, "key \"%s\": not a product (milan, genoa, turin)", path);
			if (!json_is_object(t) || check_keys(c, t, path, tcb_keys) != 0)
				return json_is_object(t) ? -1
							  : perr(c, "key \"%s\": expected an object", path);
			m = &p->min_tcb[pr];
			m->set = true;
			m->fmc = m->bootloader = m->tee = m->snp = m->microcode = -1;
			if (json_object_get(t, "fmc") && pr != SNP_PRODUCT_TURIN)
				return perr(c, "key \"%s.fmc\": only Turin has an FMC SPL", path);
#define TCB_FIELD(f)                                                                   \
	do {                                                                           \
		char fp[128];                                                          \
		(void)snprintf(fp, sizeof(fp), "%s." #f, path);                        \
		if (get_int(c, t, #f, fp, 0, 255, &m->f) != 0)                         \
			return -1;                                                     \
	} while (0)
			TCB_FIELD(fmc);
			TCB_FIELD(bootloader);
			TCB_FIELD(tee);
			TCB_FIELD(snp);
			TCB_FIELD(microcode);
#undef TCB_FIELD
		}
	}
	if ((v = json_object_get(root, "min_firmware")) != NULL) {
		if (!json_is_object(v) || check_keys(c, v, "min_firmware", fw_keys) != 0)
			return json_is_object(v) ? -1 : perr(c, "key \"min_firmware\": expected an object");
		p->has_min_firmware = true;
		if (get_int(c, v, "major", "min_firmware.major", 0, 255, &p->fw_major) != 0 ||
		    get_int(c, v, "minor", "min_firmware.minor", 0, 255, &p->fw_minor) != 0 ||
		    get_int(c, v, "build", "min_firmware.build", 0, 255, &p->fw_build) != 0)
			return -1;
	}
	if ((v = json_object_get(root, "platform_info")) != NULL) {
		if (!json_is_object(v) || check_keys(c, v, "platform_info", pi_keys) != 0)
			return json_is_object(v) ? -1 : perr(c, "key \"platform_info\": expected an object");
		if (get_u64(c, v, "required", "platform_info.required", &p->platform_info_required) != 0 ||
		    get_u64(c, v, "forbidden", "platform_info.forbidden",
			    &p->platform_info_forbidden) != 0)
			return -1;
		if (p->platform_info_required & p->platform_info_forbidden)
			return perr(c, "key \"platform_info\": a bit is both required and forbidden");
	}
	if ((v = json_object_get(root, "warn_rules")) != NULL) {
		if (!json_is_array(v) || json_array_size(v) > 64)
			return perr(c, "key \"warn_rules\": expected an array of at most 64 rule names");
		if (json_array_size(v) > 0 &&
		    (p->warn_rules = calloc(json_array_size(v), sizeof(char *))) == NULL)
			return perr(c, "out of memory");
		json_array_foreach(v, i, e) {
			if (!json_is_string(e) || json_string_length(e) == 0 ||
			    json_string_length(e) > 64)
				return perr(c, "key \"warn_rules[%zu]\": expected a rule name", i);
			if ((p->warn_rules[i] = strdup(json_string_value(e))) == NULL)
				return perr(c, "out of memory");
			p->n_warn = i + 1;
		}
	}
	return 0;
}

int
policy_parse(const char *text, size_t len, const char *name, policy **out, char *err,
	     size_t errlen)
{
	struct pctx c = { name ? name : "policy", err, errlen };
	json_error_t je;
	json_t *root = NULL;
	policy *p = NULL;
	char *canon = NULL;
	size_t clen;
	unsigned char md[32];
	unsigned mdlen = 0;
	int r = -1;

	if (len > POLICY_MAX_SIZE) {
		(void)perr(&c, "%zu bytes, larger than %u", len, POLICY_MAX_SIZE);
		goto out;
	}
	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		(void)perr(&c, "line %d column %d: %s", je.line, je.column, je.text);
		goto out;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		(void)perr(&c, "out of memory");
		goto out;
	}
	p->vmpls = 1u;
	p->allow_smt = true;
	p->tcb_apply = POLICY_TCB_REPORTED | POLICY_TCB_COMMITTED;
	p->signing_keys = 1u << SNP_SIGNING_KEY_VCEK;
	p->products = (1u << SNP_PRODUCT_MILAN) | (1u << SNP_PRODUCT_GENOA) | (1u << SNP_PRODUCT_TURIN);
	p->report_versions = (1u << 2) | (1u << 3) | (1u << 5);
	p->refs = 1;
	if (parse_doc(&c, root, p) != 0)
		goto out;
	if (jcs_serialize(root, &canon, &clen) != 0) {
		(void)perr(&c, "cannot canonicalise the policy (real numbers are not allowed)");
		goto out;
	}
	if (EVP_Digest(canon, clen, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		(void)perr(&c, "SHA-256 failed");
		goto out;
	}
	memcpy(p->digest, "sha256:", 7);
	hex_encode(md, 32, p->digest + 7);
	*out = p;
	p = NULL;
	r = 0;
out:
	policy_free(p);
	free(canon);
	json_decref(root);
	return r;
}

int
policy_load(const char *path, policy **out, char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = file_read_all(path, POLICY_MAX_SIZE, &buf, &len)) != 0) {
		(void)snprintf(err, errlen, "%s: %s", path,
			       r == -EFBIG ? "larger than the policy size cap" : strerror(-r));
		return -1;
	}
	r = policy_parse((const char *)buf, len, path, out, err, errlen);
	free(buf);
	return r;
}

void
policy_free(policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->measurements);
	free(p->host_data);
	free(p->id_key_digests);
	free(p->author_key_digests);
	for (i = 0; i < p->n_warn; i++)
		free(p->warn_rules[i]);
	free(p->warn_rules);
	free(p);
}

bool
policy_rule_warns(const policy *p, const char *rule)
{
	size_t i, n;

	for (i = 0; i < p->n_warn; i++) {
		n = strlen(p->warn_rules[i]);
		if (strcmp(p->warn_rules[i], rule) == 0 ||
		    (n > 0 && p->warn_rules[i][n - 1] == '.' && strncmp(p->warn_rules[i], rule, n) == 0))
			return true;
	}
	return false;
}

struct policy_holder {
	pthread_mutex_t lock;
	policy *cur;
};

int
policy_holder_new(policy *initial, policy_holder **out)
{
	policy_holder *h;

	if (initial == NULL || (h = calloc(1, sizeof(*h))) == NULL)
		return -ENOMEM;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return -ENOMEM;
	}
	h->cur = initial;
	*out = h;
	return 0;
}

static void
unref(policy *p)
{
	if (p != NULL && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0)
		policy_free(p);
}

void
policy_holder_free(policy_holder *h)
{
	if (h == NULL)
		return;
	unref(h->cur);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

const policy *
policy_holder_get(policy_holder *h)
{
	policy *p;

	(void)pthread_mutex_lock(&h->lock);
	p = h->cur;
	__atomic_add_fetch(&p->refs, 1, __ATOMIC_ACQ_REL);
	(void)pthread_mutex_unlock(&h->lock);
	return p;
}

void
policy_holder_put(policy_holder *h, const policy *p)
{
	(void)h;
	unref((policy *)(uintptr_t)p);
}

void
policy_holder_swap(policy_holder *h, policy *p)
{
	policy *old;

	(void)pthread_mutex_lock(&h->lock);
	old = h->cur;
	h->cur = p;
	(void)pthread_mutex_unlock(&h->lock);
	unref(old);
}
