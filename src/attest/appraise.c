/*
 * Appraisal (contract in appraise.h).
 */
#include "attest/appraise.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/hex.h"

const char *
ear_status_name(ear_status s)
{
	switch (s) {
	case EAR_AFFIRMING: return "affirming";
	case EAR_WARNING: return "warning";
	case EAR_CONTRAINDICATED: return "contraindicated";
	}
	return "contraindicated";
}

/* Copy a string, truncated to fit (always NUL-terminated). */
static void
copy_trunc(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

__attribute__((format(printf, 4, 5))) static void
check(appraisal *a, const char *name, bool ok, const char *fmt, ...)
{
	appraisal_check *c;
	char both[2 * APPRAISE_VALUE_MAX + 2], *bar;
	va_list ap;

	if (a->n_checks >= APPRAISE_MAX_CHECKS)
		return;
	c = &a->checks[a->n_checks++];
	(void)snprintf(c->name, sizeof(c->name), "%s", name);
	c->ok = ok;
	/* fmt yields "expected|actual" */
	va_start(ap, fmt);
	(void)vsnprintf(both, sizeof(both), fmt, ap);
	va_end(ap);
	if ((bar = strchr(both, '|')) != NULL) {
		*bar = '\0';
		copy_trunc(c->actual, sizeof(c->actual), bar + 1);
	}
	copy_trunc(c->expected, sizeof(c->expected), both);
	if (!ok)
		a->n_failed++;
}

static void
hexs(const uint8_t *p, size_t n, char *out)
{
	hex_encode(p, n, out);
}

static bool
in_list(const uint8_t *list, size_t count, size_t n, const uint8_t *v)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (memcmp(list + i * n, v, n) == 0)
			return true;
	return false;
}

static void
list_rule(appraisal *a, const char *name, const uint8_t *list, size_t count, size_t n,
	  const uint8_t *v)
{
	char h[2 * SNP_MEASUREMENT_LEN + 1];

	if (count == 0)
		return;
	hexs(v, n, h);
	check(a, name, in_list(list, count, n, v), "one of %zu allowed value%s|%s", count,
	      count == 1 ? "" : "s", h);
}

static void
tcb_rules(appraisal *a, const policy *p, const char *which, uint64_t raw)
{
	const policy_min_tcb *m = &p->min_tcb[a->product];
	snp_tcb t;
	char name[APPRAISE_NAME_MAX];

	snp_tcb_decode(raw, a->product, &t);
#define COMP(f)                                                                          \
	if (m->f >= 0) {                                                                 \
		(void)snprintf(name, sizeof(name), "tcb.%s." #f, which);                 \
		check(a, name, t.f >= m->f, ">= %d|%u (TCB 0x%016llx)", m->f, (unsigned)t.f, \
		      (unsigned long long)raw);                                          \
	}
	if (a->product == SNP_PRODUCT_TURIN)
		COMP(fmc)
	COMP(bootloader)
	COMP(tee)
	COMP(snp)
	COMP(microcode)
#undef COMP
}

static int
fw_cmp(int ma, int mi, int b, int pma, int pmi, int pb)
{
	if (ma != pma)
		return ma < pma ? -1 : 1;
	if (mi != pmi)
		return mi < pmi ? -1 : 1;
	return b < pb ? -1 : (b > pb);
}

static void
policy_rules(appraisal *a, const policy *p, const snp_report *r)
{
	uint64_t gp = snp_report_policy(r), pi = snp_report_platform_info(r);
	unsigned sk = snp_report_signing_key(r), v = snp_report_version(r);
	unsigned vm = snp_report_vmpl(r), abi_major = (gp >> 8) & 0xFF, abi_minor = gp & 0xFF;
	char h1[64], h2[64];

	check(a, "report_version", v <= 5 && (p->report_versions & (1u << v)) != 0,
	      "an allowed version|%u", v);
	check(a, "product", (p->products & (1u << a->product)) != 0, "an allowed product|%s",
	      snp_product_name(a->product));
	check(a, "signing_key", sk < 2 && (p->signing_keys & (1u << sk)) != 0, "%s|%s",
	      (p->signing_keys & 2u) ? ((p->signing_keys & 1u) ? "vcek or vlek" : "vlek") : "vcek",
	      sk == SNP_SIGNING_KEY_VCEK ? "vcek" : sk == SNP_SIGNING_KEY_VLEK ? "vlek" : "none");
	list_rule(a, "measurement", &p->measurements[0][0], p->n_measurements, SNP_MEASUREMENT_LEN,
		  snp_report_measurement(r));
	if (p->n_host_data)
		list_rule(a, "host_data", &p->host_data[0][0], p->n_host_data, SNP_HOST_DATA_LEN,
			  snp_report_host_data(r));
	if (p->n_id_key_digests)
		list_rule(a, "id_key_digest", &p->id_key_digests[0][0], p->n_id_key_digests,
			  SNP_KEY_DIGEST_LEN, snp_report_id_key_digest(r));
	if (p->n_author_key_digests)
		list_rule(a, "author_key_digest", &p->author_key_digests[0][0],
			  p->n_author_key_digests, SNP_KEY_DIGEST_LEN, snp_report_author_key_digest(r));
	if (p->has_family_id) {
		hexs(p->family_id, SNP_ID_LEN, h1);
		hexs(snp_report_family_id(r), SNP_ID_LEN, h2);
		check(a, "family_id", memcmp(p->family_id, snp_report_family_id(r), SNP_ID_LEN) == 0,
		      "%s|%s", h1, h2);
	}
	if (p->has_image_id) {
		hexs(p->image_id, SNP_ID_LEN, h1);
		hexs(snp_report_image_id(r), SNP_ID_LEN, h2);
		check(a, "image_id", memcmp(p->image_id, snp_report_image_id(r), SNP_ID_LEN) == 0,
		      "%s|%s", h1, h2);
	}
	check(a, "guest_svn", snp_report_guest_svn(r) >= p->min_guest_svn, ">= %u|%u",
	      p->min_guest_svn, snp_report_guest_svn(r));
	check(a, "vmpl", vm < 4 && (p->vmpls & (1u << vm)) != 0, "allowed mask 0x%x|%u", p->vmpls,
	      vm);
	check(a, "policy.debug", p->allow_debug || !(gp & SNP_POLICY_DEBUG),
	      "debug %s|POLICY 0x%llx (debug %s)", p->allow_debug ? "allowed" : "forbidden",
	      (unsigned long long)gp, (gp & SNP_POLICY_DEBUG) ? "on" : "off");
	check(a, "policy.migration_agent", p->allow_migration_agent || !(gp & SNP_POLICY_MIGRATE_MA),
	      "migration agent %s|POLICY 0x%llx (migrate_ma %s)",
	      p->allow_migration_agent ? "allowed" : "forbidden", (unsigned long long)gp,
	      (gp & SNP_POLICY_MIGRATE_MA) ? "on" : "off");
	check(a, "policy.smt", p->allow_smt || !(gp & SNP_POLICY_SMT),
	      "SMT %s|POLICY 0x%llx (smt %s)", p->allow_smt ? "allowed" : "forbidden",
	      (unsigned long long)gp, (gp & SNP_POLICY_SMT) ? "allowed" : "not allowed");
	check(a, "policy.single_socket", !p->require_single_socket || (gp & SNP_POLICY_SINGLE_SOCKET),
	      "single socket %s|POLICY 0x%llx (single_socket %s)",
	      p->require_single_socket ? "required" : "optional", (unsigned long long)gp,
	      (gp & SNP_POLICY_SINGLE_SOCKET) ? "on" : "off");
	check(a, "policy.abi",
	      abi_major > (unsigned)p->min_abi_major ||
		      (abi_major == (unsigned)p->min_abi_major && abi_minor >= (unsigned)p->min_abi_minor),
	      ">= %d.%d|%u.%u", p->min_abi_major, p->min_abi_minor, abi_major, abi_minor);
	if (p->min_tcb[a->product].set) {
		if (p->tcb_apply & POLICY_TCB_REPORTED)
			tcb_rules(a, p, "reported", snp_report_reported_tcb(r));
		if (p->tcb_apply & POLICY_TCB_COMMITTED)
			tcb_rules(a, p, "committed", snp_report_committed_tcb(r));
		if (p->tcb_apply & POLICY_TCB_LAUNCH)
			tcb_rules(a, p, "launch", snp_report_launch_tcb(r));
		if (p->tcb_apply & POLICY_TCB_CURRENT)
			tcb_rules(a, p, "current", snp_report_current_tcb(r));
	}
	if (p->has_min_firmware) {
		check(a, "firmware.current",
		      fw_cmp(snp_report_current_major(r), snp_report_current_minor(r),
			     snp_report_current_build(r), p->fw_major, p->fw_minor, p->fw_build) >= 0,
		      ">= %d.%d.%d|%u.%u.%u", p->fw_major, p->fw_minor, p->fw_build,
		      snp_report_current_major(r), snp_report_current_minor(r),
		      snp_report_current_build(r));
		check(a, "firmware.committed",
		      fw_cmp(snp_report_committed_major(r), snp_report_committed_minor(r),
			     snp_report_committed_build(r), p->fw_major, p->fw_minor, p->fw_build) >= 0,
		      ">= %d.%d.%d|%u.%u.%u", p->fw_major, p->fw_minor, p->fw_build,
		      snp_report_committed_major(r), snp_report_committed_minor(r),
		      snp_report_committed_build(r));
	}
	if (p->platform_info_required || p->platform_info_forbidden)
		check(a, "platform_info",
		      (pi & p->platform_info_required) == p->platform_info_required &&
			      (pi & p->platform_info_forbidden) == 0,
		      "required 0x%llx, forbidden 0x%llx|0x%llx",
		      (unsigned long long)p->platform_info_required,
		      (unsigned long long)p->platform_info_forbidden, (unsigned long long)pi);
}

static void
digest(const uint8_t *buf, size_t len, char out[72])
{
	unsigned char md[32];
	unsigned n = 0;

	memcpy(out, "sha256:", 8);
	if (EVP_Digest(buf, len, md, &n, EVP_sha256(), NULL) == 1 && n == 32)
		hex_encode(md, 32, out + 7);
}

int
appraise(collateral *coll, const policy *pol, const appraise_input *in, appraisal **out)
{
	appraisal *a;
	snp_certtable *table = NULL;
	snp_cert *signer = NULL;
	bool signer_owned = false;
	snp_error e = { 0 };
	snp_verify_opts vo = { 0 };
	const uint8_t *vcek_der = NULL;
	size_t vcek_len = 0;
	char detail[COLL_DETAIL_MAX];
	char h1[2 * SNP_REPORT_DATA_LEN + 1], h2[2 * SNP_REPORT_DATA_LEN + 1];
	size_t i;
	int r;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return -ENOMEM;
	memcpy(a->policy_digest, pol->digest, sizeof(a->policy_digest));
	digest(in->report, in->report_len, a->evidence_digest);
	a->status = EAR_CONTRAINDICATED;
	if (in->report_len != SNP_REPORT_SIZE) {
		check(a, "evidence.format", false, "%u bytes|%zu bytes", SNP_REPORT_SIZE,
		      in->report_len);
		goto verdict;
	}
	if (snp_report_parse(in->report, in->report_len, &a->report, &e) != SNP_OK) {
		check(a, "evidence.format", false, "a well-formed report|%s", e.detail);
		goto verdict;
	}
	check(a, "evidence.format", true, "a well-formed report|version %u",
	      snp_report_version(a->report));
	a->product = in->product != SNP_PRODUCT_UNKNOWN ? in->product
						       : snp_report_cpuid_product(a->report);
	if (in->certs != NULL && in->certs_len > 0 &&
	    snp_certtable_parse(in->certs, in->certs_len, &table, &e) != SNP_OK) {
		check(a, "evidence.certs", false, "a well-formed certificate table|%s", e.detail);
		goto rules;
	}
	if (a->product == SNP_PRODUCT_UNKNOWN && table != NULL) {
		/* Version 2: the product comes from the certificate. */
		const uint8_t *blob;
		size_t blen;
		snp_cert *c = NULL;

		if ((snp_certtable_find(table, SNP_CERT_KIND_VCEK, &blob, &blen) == SNP_OK ||
		     snp_certtable_find(table, SNP_CERT_KIND_VLEK, &blob, &blen) == SNP_OK) &&
		    snp_cert_parse(blob, blen, &c, &e) == SNP_OK)
			a->product = snp_cert_product(c);
		snp_cert_free(c);
	}
	if (a->product == SNP_PRODUCT_UNKNOWN) {
		check(a, "evidence.product", false,
		      "a known product (CPUID, or the certificate of a version 2 report)|unknown");
		goto rules_done;
	}
	r = collateral_signer(coll, a->report, a->product, table, pol->require_crl,
			      in->cached_only, &signer, &signer_owned, detail, sizeof(detail));
	if (r == COLL_UNAVAILABLE || r == COLL_INTERNAL || r == COLL_WOULD_FETCH) {
		a->unavailable = true;
		a->would_fetch = r == COLL_WOULD_FETCH;
		(void)snprintf(a->unavailable_detail, sizeof(a->unavailable_detail), "%s", detail);
		goto rules;
	}
	if (r != COLL_OK) {
		check(a, "evidence.chain", false, "a signer chaining to a pinned root|%s", detail);
		goto rules;
	}
	vo.product = a->product;
	vo.at = in->at;
	vo.require_crl = pol->require_crl;
	if ((r = collateral_verify(coll, a->report, signer, &vo, NULL, &e)) != SNP_OK) {
		char name[APPRAISE_NAME_MAX];

		(void)snprintf(name, sizeof(name), "evidence.%s", snp_status_class(r));
		check(a, name, false, "genuine, current AMD evidence|%s", e.detail);
	} else {
		check(a, "evidence.verify", true, "genuine, current AMD evidence|%s signed, chain ok",
		      snp_report_signing_key(a->report) == SNP_SIGNING_KEY_VLEK ? "VLEK" : "VCEK");
		if (table != NULL && snp_certtable_find(table, SNP_CERT_KIND_VCEK, &vcek_der,
							&vcek_len) == SNP_OK)
			collateral_note_verified_vcek(coll, a->report, a->product, signer,
						      vcek_der, vcek_len);
	}
rules:
	if (in->expected_report_data != NULL) {
		hexs(in->expected_report_data, SNP_REPORT_DATA_LEN, h1);
		hexs(snp_report_report_data(a->report), SNP_REPORT_DATA_LEN, h2);
		check(a, "binding.report_data",
		      CRYPTO_memcmp(in->expected_report_data, snp_report_report_data(a->report),
				    SNP_REPORT_DATA_LEN) == 0,
		      "%s|%s", h1, h2);
	}
	policy_rules(a, pol, a->report);
rules_done:
verdict:
	if (a->n_failed == 0) {
		a->status = EAR_AFFIRMING;
	} else {
		a->status = EAR_WARNING;
		for (i = 0; i < a->n_checks; i++) {
			appraisal_check *c = &a->checks[i];

			if (c->ok)
				continue;
			if (strncmp(c->name, "evidence.", 9) != 0 &&
			    strncmp(c->name, "binding.", 8) != 0 && policy_rule_warns(pol, c->name))
				c->warn_only = true;
			else
				a->status = EAR_CONTRAINDICATED;
		}
	}
	if (signer_owned)
		snp_cert_free(signer);
	snp_certtable_free(table);
	*out = a;
	return 0;
}

void
appraisal_free(appraisal *a)
{
	if (a == NULL)
		return;
	snp_report_free(a->report);
	free(a);
}

const appraisal_check *
appraisal_first_failure(const appraisal *a)
{
	size_t i;

	for (i = 0; i < a->n_checks; i++)
		if (!a->checks[i].ok && !a->checks[i].warn_only)
			return &a->checks[i];
	for (i = 0; i < a->n_checks; i++)
		if (!a->checks[i].ok)
			return &a->checks[i];
	return NULL;
}

json_t *
appraisal_to_json(const appraisal *a, bool all)
{
	json_t *o = json_object(), *failed = json_array(), *checks = json_array();
	size_t i;

	if (o == NULL || failed == NULL || checks == NULL) {
		json_decref(o);
		json_decref(failed);
		json_decref(checks);
		return NULL;
	}
	for (i = 0; i < a->n_checks; i++) {
		const appraisal_check *c = &a->checks[i];

		if (!c->ok)
			(void)json_array_append_new(failed, json_string(c->name));
		if (c->ok && !all)
			continue;
		(void)json_array_append_new(
			checks, json_pack("{s:s, s:s, s:s, s:s}", "name", c->name, "result",
					  c->ok ? "pass" : c->warn_only ? "warn" : "fail", "expected",
					  c->expected, "actual", c->actual));
	}
	(void)json_object_set_new(o, "status", json_string(ear_status_name(a->status)));
	(void)json_object_set_new(o, "policy_digest", json_string(a->policy_digest));
	(void)json_object_set_new(o, "evidence_digest", json_string(a->evidence_digest));
	(void)json_object_set_new(o, "failed", failed);
	(void)json_object_set_new(o, "checks", checks);
	return o;
}

static json_t *
hexj(const uint8_t *p, size_t n)
{
	char h[2 * SNP_CHIP_ID_LEN + 1];

	if (n > SNP_CHIP_ID_LEN)
		return NULL;
	hex_encode(p, n, h);
	/* Hex is ASCII: jansson's UTF-8 check (a character at a time) is skipped. */
	return json_stringn_nocheck(h, 2 * n);
}

static json_t *
tcbj(uint64_t raw, snp_product p)
{
	snp_tcb t;
	char h[24];
	json_t *o;

	snp_tcb_decode(raw, p, &t);
	(void)snprintf(h, sizeof(h), "0x%016llx", (unsigned long long)raw);
	o = json_pack("{s:s, s:i, s:i, s:i, s:i}", "raw", h, "bootloader", t.bootloader, "tee", t.tee,
		      "snp", t.snp, "microcode", t.microcode);
	if (o != NULL && t.has_fmc)
		(void)json_object_set_new(o, "fmc", json_integer(t.fmc));
	return o;
}

json_t *
appraisal_report_claims(const appraisal *a)
{
	const snp_report *r = a->report;
	char pol[24], pi[24], fw[24];
	unsigned sk;
	json_t *o;

	if (r == NULL)
		return NULL;
	sk = snp_report_signing_key(r);
	(void)snprintf(pol, sizeof(pol), "0x%llx", (unsigned long long)snp_report_policy(r));
	(void)snprintf(pi, sizeof(pi), "0x%llx", (unsigned long long)snp_report_platform_info(r));
	(void)snprintf(fw, sizeof(fw), "%u.%u.%u", snp_report_current_major(r),
		       snp_report_current_minor(r), snp_report_current_build(r));
	o = json_object();
	if (o == NULL)
		return NULL;
	(void)json_object_set_new(o, "version", json_integer(snp_report_version(r)));
	(void)json_object_set_new(o, "product", json_string(snp_product_name(a->product)));
	(void)json_object_set_new(o, "signing_key",
				  json_string(sk == SNP_SIGNING_KEY_VLEK ? "vlek" : "vcek"));
	(void)json_object_set_new(o, "measurement", hexj(snp_report_measurement(r), SNP_MEASUREMENT_LEN));
	(void)json_object_set_new(o, "host_data", hexj(snp_report_host_data(r), SNP_HOST_DATA_LEN));
	(void)json_object_set_new(o, "id_key_digest",
				  hexj(snp_report_id_key_digest(r), SNP_KEY_DIGEST_LEN));
	(void)json_object_set_new(o, "author_key_digest",
				  hexj(snp_report_author_key_digest(r), SNP_KEY_DIGEST_LEN));
	(void)json_object_set_new(o, "family_id", hexj(snp_report_family_id(r), SNP_ID_LEN));
	(void)json_object_set_new(o, "image_id", hexj(snp_report_image_id(r), SNP_ID_LEN));
	(void)json_object_set_new(o, "guest_svn", json_integer(snp_report_guest_svn(r)));
	(void)json_object_set_new(o, "policy", json_string(pol));
	(void)json_object_set_new(o, "vmpl", json_integer(snp_report_vmpl(r)));
	(void)json_object_set_new(o, "platform_info", json_string(pi));
	(void)json_object_set_new(o, "firmware", json_string(fw));
	(void)json_object_set_new(o, "reported_tcb", tcbj(snp_report_reported_tcb(r), a->product));
	(void)json_object_set_new(o, "committed_tcb", tcbj(snp_report_committed_tcb(r), a->product));
	(void)json_object_set_new(o, "launch_tcb", tcbj(snp_report_launch_tcb(r), a->product));
	(void)json_object_set_new(o, "current_tcb", tcbj(snp_report_current_tcb(r), a->product));
	(void)json_object_set_new(o, "chip_id", hexj(snp_report_chip_id(r), SNP_CHIP_ID_LEN));
	(void)json_object_set_new(o, "report_data",
				  hexj(snp_report_report_data(r), SNP_REPORT_DATA_LEN));
	return o;
}
