/*
 * The trust store: pinned ARK keys, the accepted ARK/ASK/ASVK of each product,
 * one CRL per product, and a cache of signers whose chain verified.
 *
 * Rules (docs/snp-certs.md):
 *  - Every AMD certificate and CRL signature must be RSASSA-PSS with SHA-384,
 *    MGF1-SHA-384, salt length 48 (trailer 1).  Anything else — including a
 *    correct PKCS#1 v1.5 signature by the right key — is SNP_E_CHAIN, like
 *    any other signature of the chain that does not verify.
 *  - A parent must be a CA (basicConstraints CA:TRUE, keyCertSign if keyUsage
 *    is present) and its subject must equal the child's issuer.
 *  - A CRL is accepted only when signed by an accepted ARK (AMD's practice).
 *    Revocation semantics are documented at check_revocation().
 *
 * Concurrency: everything but the cache is written only during setup
 * (snp_trust_new, _pin, _clear_pins, _add_cert, _add_crl, _load_dir) and read-only afterwards; the
 * cache is guarded by `lock`, so snp_trust_check_signer() may run in several
 * threads at once.
 */
#include "snp/internal.h"

#include "common/fileio.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TRUST_MAX_PINS 8u        /* per product */
#define TRUST_CACHE_SIZE 256u    /* signers remembered; the oldest is evicted */
#define TRUST_CRL_MAX_SIZE (1024u * 1024u)
#define AMD_PSS_SALT_LEN 48

struct pin {
	uint8_t spki_sha256[32];
	bool builtin; /* an AMD pin from snp_trust_new(), dropped by clear_pins */
};

/* One revoked entry of an accepted CRL. */
struct revoked {
	const ASN1_INTEGER *serial; /* borrowed from the CRL */
	X509_NAME *issuer;          /* owned; the certificate issuer it applies to */
	bool issuer_unusable;       /* certificateIssuer named no directoryName */
};

struct product_store {
	struct pin pins[TRUST_MAX_PINS];
	size_t npins;
	snp_cert *ark, *ask, *asvk; /* owned copies, or NULL */
	X509_CRL *crl;              /* accepted CRL (signed by ark), or NULL */
	struct revoked *revoked;
	size_t nrevoked;
	time_t crl_this_update, crl_next_update;
	bool crl_has_next_update;
};

struct cache_entry {
	uint8_t signer_fp[32];
	uint8_t inter_fp[32]; /* the ASK/ASVK it chained through */
	uint8_t ark_fp[32];
	snp_product product;
};

struct snp_trust {
	struct product_store prod[SNP_PRODUCT_COUNT];
	pthread_mutex_t lock; /* guards the cache below */
	struct cache_entry cache[TRUST_CACHE_SIZE];
	size_t cache_used, cache_next;
};

/* SHA-256 of AMD's genuine ARK SubjectPublicKeyInfo (DER), per product. */
static const uint8_t amd_ark_pins[SNP_PRODUCT_COUNT][32] = {
	/* 9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9 */
	[SNP_PRODUCT_MILAN] = {
		0x9f, 0x05, 0x6b, 0xee, 0x44, 0x37, 0x7e, 0x29,
		0x30, 0x8c, 0xb5, 0xff, 0xa8, 0x95, 0xbd, 0xfb,
		0x62, 0xd1, 0x88, 0x81, 0xfa, 0x6b, 0xed, 0x8d,
		0x6f, 0x07, 0x5b, 0x02, 0x04, 0x08, 0x9c, 0xb9,
	},
	/* 429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831 */
	[SNP_PRODUCT_GENOA] = {
		0x42, 0x9a, 0x69, 0xc9, 0x42, 0x2a, 0xa2, 0x58,
		0xee, 0x4d, 0x8d, 0xb5, 0xfc, 0xda, 0x9c, 0x64,
		0x70, 0xef, 0x15, 0xf8, 0xcd, 0x5a, 0x9c, 0xeb,
		0xd6, 0xcb, 0xc7, 0xd9, 0x0b, 0x86, 0x38, 0x31,
	},
	/* 4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08 */
	[SNP_PRODUCT_TURIN] = {
		0x4f, 0x12, 0x54, 0x10, 0x56, 0x3a, 0x2a, 0xb9,
		0xa5, 0x03, 0x56, 0xf9, 0x24, 0x3f, 0x6f, 0xe0,
		0xb6, 0xf7, 0x3d, 0xe9, 0x86, 0x03, 0xf5, 0x3f,
		0x90, 0x33, 0x9c, 0x70, 0xe9, 0xd7, 0xad, 0x08,
	},
};

static bool
product_valid(snp_product p)
{
	return p > SNP_PRODUCT_UNKNOWN && (unsigned)p < SNP_PRODUCT_COUNT;
}

/* "2026-01-02T03:04:05Z" into buf (at least 32 bytes). */
static const char *
fmt_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(buf, len, "@%lld", (long long)t);
	return buf;
}

/* "vcek milan" — how error details name a certificate. */
static const char *
cert_label(const snp_cert *c, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%s %s", snp_cert_role_name(c->role),
		       snp_product_name(c->product));
	return buf;
}

/* A distinguished name as one short line for error details. */
static const char *
name_line(const X509_NAME *n, char *buf, int len)
{
	if (n == NULL || X509_NAME_oneline(n, buf, len) == NULL)
		(void)snprintf(buf, (size_t)len, "?");
	return buf;
}

/*
 * True when `alg` is exactly AMD's signature algorithm: RSASSA-PSS with
 * hashAlgorithm SHA-384, maskGenAlgorithm MGF1 with SHA-384, saltLength 48
 * and trailerField absent or 1.  The parameters are decoded with OpenSSL's
 * RSA_PSS_PARAMS and X509_ALGOR decoders.
 */
static bool
is_amd_pss(const X509_ALGOR *alg)
{
	const ASN1_OBJECT *oid = NULL, *hoid = NULL;
	const void *pval = NULL;
	const unsigned char *p;
	RSA_PSS_PARAMS *pss = NULL;
	X509_ALGOR *mgf_md = NULL;
	const ASN1_STRING *seq;
	int ptype = 0, hptype = 0;
	bool ok = false;

	if (alg == NULL)
		goto out;
	X509_ALGOR_get0(&oid, &ptype, &pval, alg);
	if (OBJ_obj2nid(oid) != NID_rsassaPss || ptype != V_ASN1_SEQUENCE || pval == NULL)
		goto out;
	seq = pval;
	p = ASN1_STRING_get0_data(seq);
	if ((pss = d2i_RSA_PSS_PARAMS(NULL, &p, ASN1_STRING_length(seq))) == NULL ||
	    p != ASN1_STRING_get0_data(seq) + ASN1_STRING_length(seq))
		goto out;
	/* hashAlgorithm: SHA-384, parameters absent or NULL. */
	if (pss->hashAlgorithm == NULL)
		goto out;
	X509_ALGOR_get0(&hoid, &hptype, NULL, pss->hashAlgorithm);
	if (OBJ_obj2nid(hoid) != NID_sha384 || (hptype != V_ASN1_UNDEF && hptype != V_ASN1_NULL))
		goto out;
	/* maskGenAlgorithm: MGF1 whose parameter is the SHA-384 AlgorithmIdentifier. */
	if (pss->maskGenAlgorithm == NULL)
		goto out;
	X509_ALGOR_get0(&hoid, &hptype, &pval, pss->maskGenAlgorithm);
	if (OBJ_obj2nid(hoid) != NID_mgf1 || hptype != V_ASN1_SEQUENCE || pval == NULL)
		goto out;
	seq = pval;
	p = ASN1_STRING_get0_data(seq);
	if ((mgf_md = d2i_X509_ALGOR(NULL, &p, ASN1_STRING_length(seq))) == NULL ||
	    p != ASN1_STRING_get0_data(seq) + ASN1_STRING_length(seq))
		goto out;
	X509_ALGOR_get0(&hoid, &hptype, NULL, mgf_md);
	if (OBJ_obj2nid(hoid) != NID_sha384 || (hptype != V_ASN1_UNDEF && hptype != V_ASN1_NULL))
		goto out;
	/* saltLength: explicitly 48 (the default would be 20). */
	if (pss->saltLength == NULL || ASN1_INTEGER_get(pss->saltLength) != AMD_PSS_SALT_LEN)
		goto out;
	/* trailerField: absent (default 1) or 1. */
	if (pss->trailerField != NULL && ASN1_INTEGER_get(pss->trailerField) != 1)
		goto out;
	ok = true;
out:
	RSA_PSS_PARAMS_free(pss);
	X509_ALGOR_free(mgf_md);
	ERR_clear_error();
	return ok;
}

/* True when `c` may sign certificates: basicConstraints CA:TRUE, valid extensions,
 * and keyCertSign (or, with want_crl, cRLSign) when keyUsage is present. */
static bool
is_ca(const snp_cert *c, bool want_crl)
{
	uint32_t flags = X509_get_extension_flags(c->x509);
	uint32_t ku = X509_get_key_usage(c->x509);

	ERR_clear_error();
	if (flags & EXFLAG_INVALID)
		return false;
	if (!(flags & EXFLAG_BCONS) || !(flags & EXFLAG_CA))
		return false;
	if (!(ku & (want_crl ? KU_CRL_SIGN : KU_KEY_CERT_SIGN)))
		return false;
	return true;
}

/*
 * Check that `parent` issued `child`: the child's issuer equals the parent's
 * subject, the parent is a CA, the signature algorithm is AMD's RSASSA-PSS and
 * the signature verifies with the parent's key.  SNP_E_CHAIN otherwise.
 */
static int
check_issued(const snp_cert *child, const snp_cert *parent, snp_error *err)
{
	char cl[40], pl[40], n1[160], n2[160];
	const X509_ALGOR *alg = NULL;

	cert_label(child, cl, sizeof(cl));
	cert_label(parent, pl, sizeof(pl));
	if (X509_NAME_cmp(X509_get_issuer_name(child->x509),
			  X509_get_subject_name(parent->x509)) != 0) {
		return snp_fail(err, SNP_E_CHAIN, "%s: issuer %s is not the %s subject %s", cl,
				name_line(X509_get_issuer_name(child->x509), n1, sizeof(n1)), pl,
				name_line(X509_get_subject_name(parent->x509), n2, sizeof(n2)));
	}
	if (!is_ca(parent, false))
		return snp_fail(err, SNP_E_CHAIN, "%s: issuer %s is not a CA allowed to sign certificates",
				cl, pl);
	X509_get0_signature(NULL, &alg, child->x509);
	if (!is_amd_pss(alg) || X509_ALGOR_cmp(alg, X509_get0_tbs_sigalg(child->x509)) != 0)
		return snp_fail(err, SNP_E_CHAIN,
				"%s: signature algorithm is not RSASSA-PSS SHA-384/MGF1-SHA-384/salt 48",
				cl);
	if (X509_verify(child->x509, parent->pkey) != 1) {
		ERR_clear_error();
		return snp_fail(err, SNP_E_CHAIN, "%s: signature by %s does not verify", cl, pl);
	}
	return SNP_OK;
}

/* Fail with SNP_E_EXPIRED unless not_before <= at <= not_after. */
static int
check_validity(const snp_cert *c, time_t at, snp_error *err)
{
	char l[40], a[32], nb[32], na[32];

	if (at >= c->not_before && at <= c->not_after)
		return SNP_OK;
	return snp_fail(err, SNP_E_EXPIRED, "%s %s at %s: notBefore %s, notAfter %s",
			cert_label(c, l, sizeof(l)),
			at < c->not_before ? "not yet valid" : "expired", fmt_time(at, a, sizeof(a)),
			fmt_time(c->not_before, nb, sizeof(nb)), fmt_time(c->not_after, na, sizeof(na)));
}

static bool
is_pinned(const struct product_store *ps, const uint8_t spki[32])
{
	size_t i;

	for (i = 0; i < ps->npins; i++) {
		if (memcmp(ps->pins[i].spki_sha256, spki, 32) == 0)
			return true;
	}
	return false;
}

static void
crl_clear(struct product_store *ps)
{
	size_t i;

	for (i = 0; i < ps->nrevoked; i++)
		X509_NAME_free(ps->revoked[i].issuer);
	free(ps->revoked);
	ps->revoked = NULL;
	ps->nrevoked = 0;
	X509_CRL_free(ps->crl);
	ps->crl = NULL;
	ps->crl_has_next_update = false;
}

int
snp_trust_new(snp_trust **out)
{
	snp_trust *t = NULL;
	int p, r = SNP_OK;

	if (out == NULL)
		return SNP_E_ARGUMENT;
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		r = SNP_E_NOMEM;
		goto out;
	}
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		t = NULL;
		r = SNP_E_INTERNAL;
		goto out;
	}
	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		memcpy(t->prod[p].pins[0].spki_sha256, amd_ark_pins[p], 32);
		t->prod[p].pins[0].builtin = true;
		t->prod[p].npins = 1;
	}
	*out = t;
	t = NULL;
out:
	snp_trust_free(t);
	return r;
}

void
snp_trust_free(snp_trust *t)
{
	int p;

	if (t == NULL)
		return;
	for (p = 0; p < SNP_PRODUCT_COUNT; p++) {
		snp_cert_free(t->prod[p].ark);
		snp_cert_free(t->prod[p].ask);
		snp_cert_free(t->prod[p].asvk);
		crl_clear(&t->prod[p]);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int
snp_trust_pin(snp_trust *t, snp_product product, const uint8_t spki_sha256[32])
{
	struct product_store *ps;

	if (t == NULL || spki_sha256 == NULL || !product_valid(product))
		return SNP_E_ARGUMENT;
	ps = &t->prod[product];
	if (is_pinned(ps, spki_sha256))
		return SNP_OK;
	if (ps->npins >= TRUST_MAX_PINS)
		return SNP_E_ARGUMENT;
	memcpy(ps->pins[ps->npins].spki_sha256, spki_sha256, 32);
	ps->pins[ps->npins].builtin = false;
	ps->npins++;
	return SNP_OK;
}

/* Drops only the built-in AMD pins; keys pinned with snp_trust_pin() stay.  An ARK
 * already added whose key is no longer pinned stops anchoring chains: the pin is
 * re-checked at every snp_trust_check_signer(). */
void
snp_trust_clear_pins(snp_trust *t)
{
	size_t i, j;
	int p;

	if (t == NULL)
		return;
	for (p = 0; p < SNP_PRODUCT_COUNT; p++) {
		struct product_store *ps = &t->prod[p];

		for (i = 0, j = 0; i < ps->npins; i++) {
			if (!ps->pins[i].builtin)
				ps->pins[j++] = ps->pins[i];
		}
		ps->npins = j;
	}
}

/* The CRL verified by `ark`: issuer name, CA with cRLSign, AMD's PSS, signature. */
static bool
crl_signed_by(X509_CRL *crl, const snp_cert *ark)
{
	const X509_ALGOR *alg = NULL;
	bool ok;

	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ark->x509)) != 0)
		return false;
	if (!is_ca(ark, true))
		return false;
	X509_CRL_get0_signature(crl, NULL, &alg);
	if (!is_amd_pss(alg))
		return false;
	ok = X509_CRL_verify(crl, ark->pkey) == 1;
	ERR_clear_error();
	return ok;
}

/* After the ARK of `ps` changed: drop the ASK, ASVK and CRL it does not sign. */
static void
revalidate_below_ark(struct product_store *ps)
{
	if (ps->ask != NULL && check_issued(ps->ask, ps->ark, NULL) != SNP_OK) {
		snp_cert_free(ps->ask);
		ps->ask = NULL;
	}
	if (ps->asvk != NULL && check_issued(ps->asvk, ps->ark, NULL) != SNP_OK) {
		snp_cert_free(ps->asvk);
		ps->asvk = NULL;
	}
	if (ps->crl != NULL && !crl_signed_by(ps->crl, ps->ark))
		crl_clear(ps);
}

int
snp_trust_add_cert(snp_trust *t, const snp_cert *c, snp_error *err)
{
	struct product_store *ps;
	snp_cert *copy = NULL;
	char l[40], hex[65];
	int i, r = SNP_OK;

	if (t == NULL || c == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_trust_add_cert: NULL argument");
		goto out;
	}
	cert_label(c, l, sizeof(l));
	if (c->role != SNP_ROLE_ARK && c->role != SNP_ROLE_ASK && c->role != SNP_ROLE_ASVK) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: only an ARK, ASK or ASVK can be added to the trust store",
			     l);
		goto out;
	}
	if (!product_valid(c->product)) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: unknown product", l);
		goto out;
	}
	ps = &t->prod[c->product];
	if (c->role == SNP_ROLE_ARK) {
		if (!is_pinned(ps, c->spki_sha256)) {
			for (i = 0; i < 32; i++)
				(void)snprintf(hex + 2 * i, 3, "%02x", c->spki_sha256[i]);
			r = snp_fail(err, SNP_E_CHAIN, "%s: key (SPKI SHA-256 %s) is not pinned for %s", l,
				     hex, snp_product_name(c->product));
			goto out;
		}
		if ((r = check_issued(c, c, err)) != SNP_OK)
			goto out;
	} else {
		if (ps->ark == NULL) {
			r = snp_fail(err, SNP_E_CHAIN, "%s: no ARK for %s in the trust store", l,
				     snp_product_name(c->product));
			goto out;
		}
		if ((r = check_issued(c, ps->ark, err)) != SNP_OK)
			goto out;
		if (!is_ca(c, false)) {
			r = snp_fail(err, SNP_E_CHAIN, "%s: not a CA allowed to sign certificates", l);
			goto out;
		}
	}
	/* Keep our own copy: the caller's certificate may be freed. */
	if ((r = snp_cert_parse(c->der, c->der_len, &copy, err)) != SNP_OK)
		goto out;
	if (c->role == SNP_ROLE_ARK) {
		snp_cert_free(ps->ark);
		ps->ark = copy;
		copy = NULL;
		revalidate_below_ark(ps);
	} else if (c->role == SNP_ROLE_ASK) {
		snp_cert_free(ps->ask);
		ps->ask = copy;
		copy = NULL;
	} else {
		snp_cert_free(ps->asvk);
		ps->asvk = copy;
		copy = NULL;
	}
out:
	snp_cert_free(copy);
	return r;
}

/* Read `dir`/`base` and add it; expects `role` of `product`.  A missing file is
 * skipped (SNP_OK); any other problem is an error naming the file. */
static int
load_one(snp_trust *t, const char *dir, const char *prefix, snp_product product,
	 snp_cert_role role, snp_error *err)
{
	char path[PATH_MAX];
	uint8_t *buf = NULL;
	size_t len = 0;
	snp_cert *c = NULL;
	snp_error e;
	int n, rc, r = SNP_OK;

	memset(&e, 0, sizeof(e));
	n = snprintf(path, sizeof(path), "%s/%s_%s.pem", dir, prefix, snp_product_name(product));
	if (n < 0 || (size_t)n >= sizeof(path)) {
		r = snp_fail(err, SNP_E_IO, "trust directory path too long: %.200s", dir);
		goto out;
	}
	if ((rc = file_read_all(path, SNP_CERT_MAX_SIZE, &buf, &len)) != 0) {
		if (rc == -ENOENT)
			goto out; /* product not provided: skip */
		if (rc == -EFBIG)
			r = snp_fail(err, SNP_E_FORMAT, "%s: larger than %u bytes", path,
				     SNP_CERT_MAX_SIZE);
		else
			r = snp_fail(err, SNP_E_IO, "%s: %s", path, strerror(-rc));
		goto out;
	}
	if ((r = snp_cert_parse(buf, len, &c, &e)) != SNP_OK) {
		r = snp_fail(err, r, "%s: %s", path, e.detail);
		goto out;
	}
	if (c->role != role || c->product != product) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: holds a %s certificate for %s, expected %s %s",
			     path, snp_cert_role_name(c->role), snp_product_name(c->product),
			     snp_cert_role_name(role), snp_product_name(product));
		goto out;
	}
	if ((r = snp_trust_add_cert(t, c, &e)) != SNP_OK) {
		r = snp_fail(err, r, "%s: %s", path, e.detail);
		goto out;
	}
out:
	snp_cert_free(c);
	free(buf);
	return r;
}

int
snp_trust_load_dir(snp_trust *t, const char *dir, snp_error *err)
{
	int p, r = SNP_OK;

	if (t == NULL || dir == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_trust_load_dir: NULL argument");
		goto out;
	}
	for (p = SNP_PRODUCT_MILAN; p < SNP_PRODUCT_COUNT; p++) {
		if ((r = load_one(t, dir, "ark", (snp_product)p, SNP_ROLE_ARK, err)) != SNP_OK ||
		    (r = load_one(t, dir, "ask", (snp_product)p, SNP_ROLE_ASK, err)) != SNP_OK ||
		    (r = load_one(t, dir, "asvk", (snp_product)p, SNP_ROLE_ASVK, err)) != SNP_OK)
			goto out;
	}
out:
	return r;
}

/*
 * Decode exactly one PEM "X509 CRL" block starting at buf[0] (only whitespace
 * may follow it) into *der (OPENSSL_free) — the CRL counterpart of cert.c's
 * PEM handling.
 */
static int
crl_pem_unwrap(const uint8_t *buf, size_t len, unsigned char **der, long *der_len,
	       snp_error *err)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long data_len = 0;
	size_t rest, i;
	int r = SNP_OK;

	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "CRL: out of memory");
		goto out;
	}
	if (PEM_read_bio(bio, &name, &header, &data, &data_len) != 1) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: malformed PEM");
		snp_fail_append_openssl(err);
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509_CRL) != 0 || (header != NULL && header[0] != '\0')) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: PEM block \"%.64s\" is not a plain \"%s\"",
			     name, PEM_STRING_X509_CRL);
		goto out;
	}
	rest = (size_t)BIO_ctrl_pending(bio);
	for (i = len - (rest <= len ? rest : len); i < len; i++) {
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\n') {
			r = snp_fail(err, SNP_E_FORMAT, "CRL: trailing data after the PEM block");
			goto out;
		}
	}
	*der = data;
	*der_len = data_len;
	data = NULL;
out:
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(data);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

/*
 * Build the revoked entries of `crl` into *out and *nout.  Each entry's
 * issuer is the certificateIssuer entry extension if present, else the one of
 * the previous entry, else NULL (= the CRL issuer), as RFC 5280 §5.3.3 says.
 * Unknown critical CRL or entry extensions, and delta CRLs, are SNP_E_FORMAT.
 */
static int
crl_entries(X509_CRL *crl, struct revoked **out, size_t *nout, snp_error *err)
{
	STACK_OF(X509_REVOKED) *revs = X509_CRL_get_REVOKED(crl);
	struct revoked *v = NULL;
	const X509_NAME *cur = NULL; /* borrowed from an earlier v[k].issuer */
	bool cur_unusable = false;
	GENERAL_NAMES *gens = NULL;
	int i, j, k, n, crit, r = SNP_OK;

	for (i = 0; i < X509_CRL_get_ext_count(crl); i++) {
		X509_EXTENSION *ext = X509_CRL_get_ext(crl, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));

		if (nid == NID_delta_crl) {
			r = snp_fail(err, SNP_E_FORMAT, "CRL: delta CRLs are not supported");
			goto out;
		}
		if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point &&
		    nid != NID_crl_number && nid != NID_authority_key_identifier) {
			r = snp_fail(err, SNP_E_FORMAT, "CRL: unsupported critical extension %s",
				     OBJ_nid2sn(nid));
			goto out;
		}
	}
	n = revs != NULL ? sk_X509_REVOKED_num(revs) : 0;
	if (n > 0 && (v = calloc((size_t)n, sizeof(*v))) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "CRL: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		X509_REVOKED *rev = sk_X509_REVOKED_value(revs, i);

		for (j = 0; j < X509_REVOKED_get_ext_count(rev); j++) {
			X509_EXTENSION *ext = X509_REVOKED_get_ext(rev, j);
			int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));

			if (X509_EXTENSION_get_critical(ext) && nid != NID_certificate_issuer) {
				r = snp_fail(err, SNP_E_FORMAT,
					     "CRL: entry %d has unsupported critical extension %s", i,
					     OBJ_nid2sn(nid));
				goto out;
			}
		}
		v[i].serial = X509_REVOKED_get0_serialNumber(rev);
		crit = -1;
		gens = X509_REVOKED_get_ext_d2i(rev, NID_certificate_issuer, &crit, NULL);
		if (gens == NULL && crit != -1) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "CRL: entry %d has a malformed or repeated certificateIssuer", i);
			goto out;
		}
		if (gens != NULL) {
			cur = NULL;
			cur_unusable = true;
			for (k = 0; k < sk_GENERAL_NAME_num(gens); k++) {
				GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);

				if (g->type == GEN_DIRNAME) {
					cur_unusable = false;
					if ((v[i].issuer = X509_NAME_dup(g->d.directoryName)) == NULL) {
						r = snp_fail(err, SNP_E_NOMEM, "CRL: out of memory");
						goto out;
					}
					cur = v[i].issuer;
					break;
				}
			}
			GENERAL_NAMES_free(gens);
			gens = NULL;
		} else if (cur != NULL) {
			if ((v[i].issuer = X509_NAME_dup(cur)) == NULL) {
				r = snp_fail(err, SNP_E_NOMEM, "CRL: out of memory");
				goto out;
			}
		}
		v[i].issuer_unusable = cur_unusable;
	}
	*out = v;
	*nout = (size_t)n;
	v = NULL;
out:
	GENERAL_NAMES_free(gens);
	if (v != NULL) {
		for (i = 0; i < n; i++)
			X509_NAME_free(v[i].issuer);
		free(v);
	}
	ERR_clear_error();
	return r;
}

int
snp_trust_add_crl(snp_trust *t, const uint8_t *buf, size_t len, snp_error *err)
{
	unsigned char *pem_der = NULL, *reenc = NULL;
	const unsigned char *der, *p;
	long der_len = 0;
	X509_CRL *crl = NULL;
	struct revoked *revoked = NULL;
	size_t nrevoked = 0, i, skip = 0;
	struct product_store *ps = NULL;
	time_t this_update = 0, next_update = 0;
	bool has_next;
	char n1[160];
	int pr, r = SNP_OK;

	if (t == NULL || buf == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_trust_add_crl: NULL argument");
		goto out;
	}
	if (len == 0 || len > TRUST_CRL_MAX_SIZE) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: %zu bytes, expected 1..%u", len,
			     TRUST_CRL_MAX_SIZE);
		goto out;
	}
	while (skip < len && (buf[skip] == ' ' || buf[skip] == '\t' || buf[skip] == '\r' ||
			      buf[skip] == '\n'))
		skip++;
	if (len - skip >= 10 && memcmp(buf + skip, "-----BEGIN", 10) == 0) {
		if ((r = crl_pem_unwrap(buf + skip, len - skip, &pem_der, &der_len, err)) !=
		    SNP_OK)
			goto out;
		der = pem_der;
	} else {
		der = buf;
		der_len = (long)len;
	}
	p = der;
	if (der_len <= 0 || (crl = d2i_X509_CRL(NULL, &p, der_len)) == NULL) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: not a DER X.509 CRL");
		snp_fail_append_openssl(err);
		goto out;
	}
	if (p != der + der_len) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: %ld bytes of trailing data",
			     (long)(der + der_len - p));
		goto out;
	}
	if (i2d_X509_CRL(crl, &reenc) != der_len || memcmp(reenc, der, (size_t)der_len) != 0) {
		ERR_clear_error();
		r = snp_fail(err, SNP_E_FORMAT, "CRL: encoding is not DER");
		goto out;
	}
	if (snp_asn1_time(X509_CRL_get0_lastUpdate(crl), &this_update) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: thisUpdate cannot be decoded");
		goto out;
	}
	has_next = X509_CRL_get0_nextUpdate(crl) != NULL;
	if (has_next && snp_asn1_time(X509_CRL_get0_nextUpdate(crl), &next_update) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "CRL: nextUpdate cannot be decoded");
		goto out;
	}
	if ((r = crl_entries(crl, &revoked, &nrevoked, err)) != SNP_OK)
		goto out;
	/* The issuer: an accepted (pinned, self-signed) ARK whose name and key match. */
	for (pr = SNP_PRODUCT_MILAN; pr < SNP_PRODUCT_COUNT; pr++) {
		if (t->prod[pr].ark != NULL && crl_signed_by(crl, t->prod[pr].ark)) {
			ps = &t->prod[pr];
			break;
		}
	}
	if (ps == NULL) {
		r = snp_fail(err, SNP_E_CHAIN,
			     "CRL: issuer %s is not an accepted ARK, or its RSASSA-PSS signature does not verify",
			     name_line(X509_CRL_get_issuer(crl), n1, sizeof(n1)));
		goto out;
	}
	/* Keep the newest: an older CRL never replaces a newer one. */
	if (ps->crl != NULL && this_update < ps->crl_this_update)
		goto out;
	crl_clear(ps);
	ps->crl = crl;
	crl = NULL;
	ps->revoked = revoked;
	ps->nrevoked = nrevoked;
	revoked = NULL;
	nrevoked = 0;
	ps->crl_this_update = this_update;
	ps->crl_next_update = next_update;
	ps->crl_has_next_update = has_next;
out:
	for (i = 0; i < nrevoked; i++)
		X509_NAME_free(revoked[i].issuer);
	free(revoked);
	X509_CRL_free(crl);
	OPENSSL_free(pem_der);
	OPENSSL_free(reenc);
	return r;
}

static bool
serial_is_zero(const ASN1_INTEGER *s)
{
	return ASN1_STRING_length(s) == 0 ||
	       snp_all_zero(ASN1_STRING_get0_data(s), (size_t)ASN1_STRING_length(s));
}

/*
 * Revocation of the chain `signer` → `inter` (ASK/ASVK) by the product's CRL.
 *
 * The CRL (if any) must be current at `at`: thisUpdate <= at and nextUpdate
 * absent or >= at; otherwise SNP_E_EXPIRED.  Without a CRL, require_crl gives
 * SNP_E_REVOKED ("no CRL"), else the chain counts as not revoked.
 *
 * An entry applies to the issuer named by its certificateIssuer extension (or
 * the previous entry's), else to the CRL issuer, i.e. the ARK.  Then:
 *  - the ASK/ASVK is revoked when its serial is listed for its issuer (the ARK);
 *  - the VCEK/VLEK is revoked when its serial is NON-ZERO and listed, either
 *    without certificateIssuer (AMD's flat, ARK-signed CRL) or with a
 *    certificateIssuer equal to the leaf's issuer (the ASK/ASVK).  AMD issues
 *    every VCEK/VLEK with serial 0, so such leaves cannot be revoked by serial;
 *    AMD retires them through TCB versions instead.
 */
static int
check_revocation(const struct product_store *ps, const snp_cert *inter, const snp_cert *signer,
		 snp_product product, time_t at, bool require_crl, snp_error *err)
{
	const ASN1_INTEGER *inter_serial = X509_get0_serialNumber(inter->x509);
	const ASN1_INTEGER *leaf_serial = X509_get0_serialNumber(signer->x509);
	const X509_NAME *crl_issuer;
	bool leaf_revocable = !serial_is_zero(leaf_serial);
	char l[40], a[32], b[32];
	size_t i;

	if (ps->crl == NULL) {
		if (require_crl)
			return snp_fail(err, SNP_E_REVOKED, "no CRL for %s (a CRL is required)",
					snp_product_name(product));
		return SNP_OK;
	}
	if (at < ps->crl_this_update)
		return snp_fail(err, SNP_E_EXPIRED, "CRL for %s not yet valid at %s: thisUpdate %s",
				snp_product_name(product), fmt_time(at, a, sizeof(a)),
				fmt_time(ps->crl_this_update, b, sizeof(b)));
	if (ps->crl_has_next_update && at > ps->crl_next_update)
		return snp_fail(err, SNP_E_EXPIRED, "CRL for %s is stale at %s: nextUpdate %s",
				snp_product_name(product), fmt_time(at, a, sizeof(a)),
				fmt_time(ps->crl_next_update, b, sizeof(b)));
	crl_issuer = X509_CRL_get_issuer(ps->crl);
	for (i = 0; i < ps->nrevoked; i++) {
		const struct revoked *e = &ps->revoked[i];
		const X509_NAME *issuer = e->issuer != NULL ? e->issuer : crl_issuer;

		if (e->issuer_unusable)
			continue;
		if (ASN1_INTEGER_cmp(e->serial, inter_serial) == 0 &&
		    X509_NAME_cmp(issuer, X509_get_issuer_name(inter->x509)) == 0)
			return snp_fail(err, SNP_E_REVOKED, "%s (serial %lld) is listed on the %s CRL",
					cert_label(inter, l, sizeof(l)),
					(long long)ASN1_INTEGER_get(inter_serial),
					snp_product_name(product));
		if (leaf_revocable && ASN1_INTEGER_cmp(e->serial, leaf_serial) == 0 &&
		    (e->issuer == NULL ||
		     X509_NAME_cmp(issuer, X509_get_issuer_name(signer->x509)) == 0))
			return snp_fail(err, SNP_E_REVOKED, "%s (serial %lld) is listed on the %s CRL",
					cert_label(signer, l, sizeof(l)),
					(long long)ASN1_INTEGER_get(leaf_serial),
					snp_product_name(product));
	}
	ERR_clear_error();
	return SNP_OK;
}

static bool
cache_lookup(snp_trust *t, const snp_cert *signer, const snp_cert *inter, const snp_cert *ark,
	     snp_product product)
{
	bool hit = false;
	size_t i;

	if (pthread_mutex_lock(&t->lock) != 0)
		return false;
	for (i = 0; i < t->cache_used; i++) {
		const struct cache_entry *e = &t->cache[i];

		if (e->product == product && memcmp(e->signer_fp, signer->fingerprint, 32) == 0 &&
		    memcmp(e->inter_fp, inter->fingerprint, 32) == 0 &&
		    memcmp(e->ark_fp, ark->fingerprint, 32) == 0) {
			hit = true;
			break;
		}
	}
	(void)pthread_mutex_unlock(&t->lock);
	return hit;
}

static void
cache_insert(snp_trust *t, const snp_cert *signer, const snp_cert *inter, const snp_cert *ark,
	     snp_product product)
{
	struct cache_entry *e;

	if (pthread_mutex_lock(&t->lock) != 0)
		return;
	e = &t->cache[t->cache_next];
	memcpy(e->signer_fp, signer->fingerprint, 32);
	memcpy(e->inter_fp, inter->fingerprint, 32);
	memcpy(e->ark_fp, ark->fingerprint, 32);
	e->product = product;
	t->cache_next = (t->cache_next + 1) % TRUST_CACHE_SIZE;
	if (t->cache_used < TRUST_CACHE_SIZE)
		t->cache_used++;
	(void)pthread_mutex_unlock(&t->lock);
}

int
snp_trust_check_signer(snp_trust *t, const snp_cert *signer, snp_product product, time_t at,
		       bool require_crl, snp_error *err)
{
	const struct product_store *ps;
	const snp_cert *inter, *ark;
	const char *inter_role;
	char l[40];
	bool cached;
	int r = SNP_OK;

	if (t == NULL || signer == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_trust_check_signer: NULL argument");
		goto out;
	}
	if (at == 0)
		at = time(NULL);
	cert_label(signer, l, sizeof(l));
	if (!product_valid(product) || signer->product != product) {
		r = snp_fail(err, SNP_E_PRODUCT, "%s: certificate product %s, requested %s", l,
			     snp_product_name(signer->product), snp_product_name(product));
		goto out;
	}
	if (signer->role != SNP_ROLE_VCEK && signer->role != SNP_ROLE_VLEK) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: a signer must be a VCEK or VLEK", l);
		goto out;
	}
	ps = &t->prod[product];
	inter = signer->role == SNP_ROLE_VCEK ? ps->ask : ps->asvk;
	inter_role = signer->role == SNP_ROLE_VCEK ? "ASK" : "ASVK";
	if ((ark = ps->ark) == NULL || inter == NULL) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: no %s for %s in the trust store", l,
			     ark == NULL ? "ARK" : inter_role, snp_product_name(product));
		goto out;
	}
	if (!is_pinned(ps, ark->spki_sha256)) {
		r = snp_fail(err, SNP_E_CHAIN, "%s: the ark %s key is no longer pinned", l,
			     snp_product_name(product));
		goto out;
	}
	cached = cache_lookup(t, signer, inter, ark, product);
	if (!cached) {
		if ((r = check_issued(signer, inter, err)) != SNP_OK ||
		    (r = check_issued(inter, ark, err)) != SNP_OK)
			goto out;
	}
	if ((r = check_validity(signer, at, err)) != SNP_OK ||
	    (r = check_validity(inter, at, err)) != SNP_OK ||
	    (r = check_validity(ark, at, err)) != SNP_OK)
		goto out;
	if ((r = check_revocation(ps, inter, signer, product, at, require_crl, err)) != SNP_OK)
		goto out;
	if (!cached)
		cache_insert(t, signer, inter, ark, product);
out:
	return r;
}
