/*
 * AMD SEV-SNP certificates: ARK, ASK, ASVK, VCEK, VLEK.
 *
 * snp_cert_parse() turns one DER or PEM certificate into an snp_cert: the
 * OpenSSL X509, its DER bytes, the role (from the subject CN), the product
 * and AMD's extensions under 1.3.6.1.4.1.3704.1 decoded with OpenSSL's ASN.1
 * decoders.  Nothing here decides whether a certificate is trusted; that is
 * trust.c's job.  Layouts: docs/snp-certs.md and reference/snp-format.md §6–7.
 */
#include "snp/internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."

/* AMD extension slots, in the order of the `seen` bitmask. */
enum amd_ext {
	AMD_EXT_STRUCT_VERSION = 0,
	AMD_EXT_PRODUCT_NAME,
	AMD_EXT_SPL_FIRST, /* .3.1 … .3.9 occupy SNP_CERT_SPL_COUNT slots */
	AMD_EXT_HWID = AMD_EXT_SPL_FIRST + SNP_CERT_SPL_COUNT,
	AMD_EXT_CSP_ID,
	AMD_EXT_COUNT
};

static const char *const spl_names[SNP_CERT_SPL_COUNT] = {
	"blSPL", "teeSPL", "snpSPL", "spl_4", "spl_5", "spl_6", "spl_7", "ucodeSPL", "fmcSPL",
};

/* AMD's product spellings in certificate names, exact case. */
static const struct {
	const char *name;
	snp_product product;
} cn_products[] = {
	{ "Milan", SNP_PRODUCT_MILAN },
	{ "Genoa", SNP_PRODUCT_GENOA },
	{ "Turin", SNP_PRODUCT_TURIN },
};

static snp_product
cn_product(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(cn_products) / sizeof(cn_products[0]); i++) {
		if (strcmp(s, cn_products[i].name) == 0)
			return cn_products[i].product;
	}
	return SNP_PRODUCT_UNKNOWN;
}

/*
 * Role and product from the subject CN.  A subject with no CN, several CNs or
 * a CN we do not recognise gives SNP_ROLE_UNKNOWN / SNP_PRODUCT_UNKNOWN; that is
 * not an error here.  Returns SNP_E_NOMEM only.
 */
static int
role_from_subject(X509 *x, snp_cert_role *role, snp_product *product)
{
	const X509_NAME *subj = X509_get_subject_name(x);
	const X509_NAME_ENTRY *ne;
	unsigned char *cn = NULL;
	int idx, n, r = SNP_OK;

	*role = SNP_ROLE_UNKNOWN;
	*product = SNP_PRODUCT_UNKNOWN;
	if (subj == NULL)
		goto out;
	idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (idx < 0 || X509_NAME_get_index_by_NID(subj, NID_commonName, idx) >= 0)
		goto out;
	if ((ne = X509_NAME_get_entry(subj, idx)) == NULL)
		goto out;
	if ((n = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(ne))) < 0) {
		ERR_clear_error();
		goto out; /* undecodable CN: unknown role */
	}
	if ((size_t)n != strlen((const char *)cn))
		goto out; /* embedded NUL */

	if (strncmp((const char *)cn, "ARK-", 4) == 0) {
		if ((*product = cn_product((const char *)cn + 4)) != SNP_PRODUCT_UNKNOWN)
			*role = SNP_ROLE_ARK;
	} else if (strcmp((const char *)cn, "SEV-VCEK") == 0) {
		*role = SNP_ROLE_VCEK;
	} else if (strcmp((const char *)cn, "SEV-VLEK") == 0) {
		*role = SNP_ROLE_VLEK;
	} else if (strncmp((const char *)cn, "SEV-VLEK-", 9) == 0) {
		if ((*product = cn_product((const char *)cn + 9)) != SNP_PRODUCT_UNKNOWN)
			*role = SNP_ROLE_ASVK;
	} else if (strncmp((const char *)cn, "SEV-", 4) == 0) {
		if ((*product = cn_product((const char *)cn + 4)) != SNP_PRODUCT_UNKNOWN)
			*role = SNP_ROLE_ASK;
	}
out:
	OPENSSL_free(cn);
	return r;
}

/* Map a dotted OID to its AMD extension slot; -1 when it is not one we know. */
static int
amd_ext_slot(const char *oid)
{
	const char *s;

	if (strncmp(oid, AMD_OID_PREFIX, strlen(AMD_OID_PREFIX)) != 0)
		return -1;
	s = oid + strlen(AMD_OID_PREFIX);
	if (strcmp(s, "1") == 0)
		return AMD_EXT_STRUCT_VERSION;
	if (strcmp(s, "2") == 0)
		return AMD_EXT_PRODUCT_NAME;
	if (strcmp(s, "4") == 0)
		return AMD_EXT_HWID;
	if (strcmp(s, "5") == 0)
		return AMD_EXT_CSP_ID;
	if (s[0] == '3' && s[1] == '.' && s[2] >= '1' && s[2] <= '9' && s[3] == '\0')
		return AMD_EXT_SPL_FIRST + (s[2] - '1');
	return -1;
}

/*
 * Decode extnValue bytes as exactly one DER INTEGER and return it in *v.
 * SNP_E_FORMAT (naming `oid`) when it is not an INTEGER, has trailing bytes or
 * lies outside [lo, hi].
 */
static int
decode_integer(const uint8_t *data, int len, const char *oid, const char *what, int64_t lo,
	       int64_t hi, int64_t *v, snp_error *err)
{
	const unsigned char *p = data;
	ASN1_INTEGER *ai = NULL;
	int r = SNP_OK;

	if ((ai = d2i_ASN1_INTEGER(NULL, &p, len)) == NULL) {
		r = snp_fail(err, SNP_E_FORMAT, "extension %s (%s): not a DER INTEGER", oid, what);
		snp_fail_append_openssl(err);
		goto out;
	}
	if (p != data + len) {
		r = snp_fail(err, SNP_E_FORMAT, "extension %s (%s): %ld trailing bytes after INTEGER",
			     oid, what, (long)(data + len - p));
		goto out;
	}
	if (ASN1_INTEGER_get_int64(v, ai) != 1) {
		ERR_clear_error();
		r = snp_fail(err, SNP_E_FORMAT, "extension %s (%s): INTEGER does not fit 64 bits",
			     oid, what);
		goto out;
	}
	if (*v < lo || *v > hi) {
		r = snp_fail(err, SNP_E_FORMAT, "extension %s (%s): INTEGER %lld outside %lld..%lld",
			     oid, what, (long long)*v, (long long)lo, (long long)hi);
		goto out;
	}
out:
	ASN1_INTEGER_free(ai);
	return r;
}

/*
 * Decode extnValue bytes as exactly one DER IA5String of printable ASCII.  If
 * `dst` is not NULL the string (at most dstlen - 1 characters) is copied there.
 */
static int
decode_ia5(const uint8_t *data, int len, const char *oid, const char *what, char *dst,
	   size_t dstlen, snp_error *err)
{
	const unsigned char *p = data;
	ASN1_IA5STRING *s = NULL;
	const unsigned char *sd;
	int i, n, r = SNP_OK;

	if ((s = d2i_ASN1_IA5STRING(NULL, &p, len)) == NULL) {
		r = snp_fail(err, SNP_E_FORMAT, "extension %s (%s): not a DER IA5String", oid, what);
		snp_fail_append_openssl(err);
		goto out;
	}
	if (p != data + len) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "extension %s (%s): %ld trailing bytes after IA5String", oid, what,
			     (long)(data + len - p));
		goto out;
	}
	sd = ASN1_STRING_get0_data(s);
	n = ASN1_STRING_length(s);
	for (i = 0; i < n; i++) {
		if (sd[i] < 0x20 || sd[i] > 0x7e) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "extension %s (%s): byte 0x%02x at %d is not printable ASCII",
				     oid, what, sd[i], i);
			goto out;
		}
	}
	if (dst != NULL) {
		if ((size_t)n >= dstlen) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "extension %s (%s): %d characters, at most %zu allowed", oid,
				     what, n, dstlen - 1);
			goto out;
		}
		memcpy(dst, sd, (size_t)n);
		dst[n] = '\0';
	}
out:
	ASN1_IA5STRING_free(s);
	return r;
}

/*
 * hwID: AMD writes the raw bytes (64, or 8 on Turin) as the extnValue and has
 * announced a switch to a DER OCTET STRING.  Rule: a value of exactly
 * 04 40 <64 bytes> or 04 08 <8 bytes> is unwrapped (through the OpenSSL
 * decoder); otherwise a value of 64 or 8 bytes is taken raw; anything else is
 * a format error.  (A raw 64-byte ID cannot be 66 bytes long, so the two
 * readings never compete.)
 */
static int
decode_hwid(const uint8_t *data, int len, const char *oid, snp_cert *c, snp_error *err)
{
	const unsigned char *p = data;
	ASN1_OCTET_STRING *os = NULL;
	int r = SNP_OK;

	if ((len == 66 && data[0] == 0x04 && data[1] == 0x40) ||
	    (len == 10 && data[0] == 0x04 && data[1] == 0x08)) {
		if ((os = d2i_ASN1_OCTET_STRING(NULL, &p, len)) == NULL || p != data + len ||
		    ASN1_STRING_length(os) != len - 2) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "extension %s (hwID): malformed DER OCTET STRING", oid);
			snp_fail_append_openssl(err);
			goto out;
		}
		c->hwid_len = (size_t)ASN1_STRING_length(os);
		memcpy(c->hwid, ASN1_STRING_get0_data(os), c->hwid_len);
	} else if (len == (int)SNP_HWID_LEN_LEGACY || len == (int)SNP_HWID_LEN_TURIN) {
		c->hwid_len = (size_t)len;
		memcpy(c->hwid, data, c->hwid_len);
	} else {
		r = snp_fail(err, SNP_E_FORMAT,
			     "extension %s (hwID): %d bytes, expected 64 or 8 (raw or DER OCTET STRING)",
			     oid, len);
	}
out:
	ASN1_OCTET_STRING_free(os);
	return r;
}

/* Decode every AMD extension of c->x509 into c.  Any malformed or duplicated
 * AMD extension is SNP_E_FORMAT; extensions outside AMD's arc, and AMD OIDs we
 * do not know, are ignored. */
static int
decode_amd_extensions(snp_cert *c, snp_error *err)
{
	char oid[80];
	unsigned seen = 0;
	int i, n, slot, len, r = SNP_OK;
	int64_t v;

	n = X509_get_ext_count(c->x509);
	for (i = 0; i < n; i++) {
		X509_EXTENSION *ext = X509_get_ext(c->x509, i);
		const ASN1_OCTET_STRING *val;
		const uint8_t *data;

		if (ext == NULL)
			continue;
		len = OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
		if (len <= 0 || (size_t)len >= sizeof(oid))
			continue; /* not an OID of ours (they are all short) */
		if ((slot = amd_ext_slot(oid)) < 0)
			continue;
		if (seen & (1u << slot)) {
			r = snp_fail(err, SNP_E_FORMAT, "extension %s appears more than once", oid);
			goto out;
		}
		seen |= 1u << slot;
		val = X509_EXTENSION_get_data(ext);
		data = ASN1_STRING_get0_data(val);
		len = ASN1_STRING_length(val);
		if (data == NULL || len <= 0) {
			r = snp_fail(err, SNP_E_FORMAT, "extension %s: empty value", oid);
			goto out;
		}
		if (slot == AMD_EXT_STRUCT_VERSION) {
			if ((r = decode_integer(data, len, oid, "structVersion", 0, INT_MAX, &v,
						err)) != SNP_OK)
				goto out;
			c->struct_version = (int)v;
		} else if (slot == AMD_EXT_PRODUCT_NAME) {
			if ((r = decode_ia5(data, len, oid, "productName", c->product_name,
					    sizeof(c->product_name), err)) != SNP_OK)
				goto out;
		} else if (slot == AMD_EXT_HWID) {
			if ((r = decode_hwid(data, len, oid, c, err)) != SNP_OK)
				goto out;
		} else if (slot == AMD_EXT_CSP_ID) {
			/* Validated, not kept: nothing downstream reads it. */
			if ((r = decode_ia5(data, len, oid, "csp_id", NULL, 0, err)) != SNP_OK)
				goto out;
		} else {
			int k = slot - AMD_EXT_SPL_FIRST;

			if ((r = decode_integer(data, len, oid, spl_names[k], 0, 255, &v, err)) !=
			    SNP_OK)
				goto out;
			c->spl[k] = (uint8_t)v;
			c->spl_present[k] = true;
		}
	}
	if ((seen & (1u << AMD_EXT_HWID)) && (seen & (1u << AMD_EXT_CSP_ID))) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "certificate carries both hwID (" AMD_OID_PREFIX "4) and csp_id ("
			     AMD_OID_PREFIX "5)");
		goto out;
	}
out:
	return r;
}

/* SHA-256 of buf into out; SNP_E_INTERNAL if OpenSSL fails. */
static int
sha256(const uint8_t *buf, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32) {
		ERR_clear_error();
		return SNP_E_INTERNAL;
	}
	return SNP_OK;
}

/* True when buf[off..len) holds only ASCII whitespace. */
static bool
only_space(const uint8_t *buf, size_t off, size_t len)
{
	for (; off < len; off++) {
		if (buf[off] != ' ' && buf[off] != '\t' && buf[off] != '\r' && buf[off] != '\n')
			return false;
	}
	return true;
}

/* Length of the leading ASCII whitespace of buf[0..len). */
static size_t
leading_space(const uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
		i++;
	return i;
}

/*
 * Decode exactly one PEM "CERTIFICATE" block (no headers) that starts at
 * buf[0] ("-----BEGIN"); only whitespace may follow it.  On success *der (OPENSSL_malloc'ed, caller frees
 * with OPENSSL_free) and *der_len are set.
 */
static int
pem_unwrap(const uint8_t *buf, size_t len, unsigned char **der, long *der_len, snp_error *err)
{
	BIO *bio = NULL;
	char *name = NULL, *header = NULL;
	unsigned char *data = NULL;
	long data_len = 0;
	size_t rest, start;
	int r = SNP_OK;

	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "certificate: out of memory");
		goto out;
	}
	if (PEM_read_bio(bio, &name, &header, &data, &data_len) != 1) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: malformed PEM");
		snp_fail_append_openssl(err);
		goto out;
	}
	if (strcmp(name, PEM_STRING_X509) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: PEM block is \"%.64s\", not \"%s\"",
			     name, PEM_STRING_X509);
		goto out;
	}
	if (header != NULL && header[0] != '\0') {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: PEM block has headers");
		goto out;
	}
	rest = (size_t)BIO_ctrl_pending(bio);
	if (rest > len) {
		r = snp_fail(err, SNP_E_INTERNAL, "certificate: PEM reader overran its input");
		goto out;
	}
	start = len - rest;
	if (!only_space(buf, start, len)) {
		size_t skip = leading_space(buf + start, rest);

		if (rest - skip >= 10 && memcmp(buf + start + skip, "-----BEGIN", 10) == 0)
			r = snp_fail(err, SNP_E_FORMAT,
				     "certificate: more than one PEM block (second at byte %zu)",
				     start + skip);
		else
			r = snp_fail(err, SNP_E_FORMAT,
				     "certificate: %zu bytes of trailing data after the PEM block",
				     rest);
		goto out;
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

/* For VCEK/VLEK: the subject key must be EC on P-384 with a named curve. */
static int
check_leaf_key(const snp_cert *c, snp_error *err)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_get_base_id(c->pkey) != EVP_PKEY_EC) {
		return snp_fail(err, SNP_E_FORMAT, "%s key: type %s, expected EC P-384",
				snp_cert_role_name(c->role), OBJ_nid2sn(EVP_PKEY_get_base_id(c->pkey)));
	}
	if (EVP_PKEY_get_group_name(c->pkey, group, sizeof(group), &glen) != 1) {
		ERR_clear_error();
		return snp_fail(err, SNP_E_FORMAT, "%s key: EC key without a named curve",
				snp_cert_role_name(c->role));
	}
	if (strcmp(group, SN_secp384r1) != 0) {
		return snp_fail(err, SNP_E_FORMAT, "%s key: curve %s, expected %s",
				snp_cert_role_name(c->role), group, SN_secp384r1);
	}
	return SNP_OK;
}

int
snp_cert_parse(const uint8_t *buf, size_t len, snp_cert **out, snp_error *err)
{
	snp_cert *c = NULL;
	unsigned char *pem_der = NULL;
	unsigned char *reenc = NULL;
	const unsigned char *der, *p;
	long der_len = 0;
	unsigned char *spki = NULL;
	int spki_len, reenc_len, r = SNP_OK;
	snp_product cn_prod = SNP_PRODUCT_UNKNOWN, name_prod;
	size_t skip;

	if (buf == NULL || out == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_cert_parse: NULL argument");
		goto out;
	}
	if (len == 0) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: empty input");
		goto out;
	}
	if (len > SNP_CERT_MAX_SIZE) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: %zu bytes, at most %u allowed", len,
			     SNP_CERT_MAX_SIZE);
		goto out;
	}
	skip = leading_space(buf, len);
	if (len - skip >= 10 && memcmp(buf + skip, "-----BEGIN", 10) == 0) {
		if ((r = pem_unwrap(buf + skip, len - skip, &pem_der, &der_len, err)) != SNP_OK)
			goto out;
		der = pem_der;
	} else {
		der = buf;
		der_len = (long)len;
	}
	if (der_len <= 0) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: empty DER");
		goto out;
	}

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "certificate: out of memory");
		goto out;
	}
	c->struct_version = -1;
	p = der;
	if ((c->x509 = d2i_X509(NULL, &p, der_len)) == NULL) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: not a DER X.509 certificate (%ld bytes)",
			     der_len);
		snp_fail_append_openssl(err);
		goto out;
	}
	if (p != der + der_len) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "certificate: %ld bytes of trailing data after the DER certificate",
			     (long)(der + der_len - p));
		goto out;
	}
	/* Reject BER-only encodings: what we hash and hand out must be the DER that
	 * signatures cover. */
	if ((reenc_len = i2d_X509(c->x509, &reenc)) != der_len ||
	    memcmp(reenc, der, (size_t)der_len) != 0) {
		ERR_clear_error();
		r = snp_fail(err, SNP_E_FORMAT, "certificate: encoding is not DER");
		goto out;
	}
	if ((c->der = malloc((size_t)der_len)) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "certificate: out of memory");
		goto out;
	}
	memcpy(c->der, der, (size_t)der_len);
	c->der_len = (size_t)der_len;

	if ((c->pkey = X509_get0_pubkey(c->x509)) == NULL) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: public key cannot be decoded");
		snp_fail_append_openssl(err);
		goto out;
	}
	if ((spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(c->x509), &spki)) <= 0) {
		r = snp_fail(err, SNP_E_INTERNAL, "certificate: cannot encode SubjectPublicKeyInfo");
		snp_fail_append_openssl(err);
		goto out;
	}
	if ((r = sha256(spki, (size_t)spki_len, c->spki_sha256)) != SNP_OK ||
	    (r = sha256(c->der, c->der_len, c->fingerprint)) != SNP_OK) {
		r = snp_fail(err, r, "certificate: SHA-256 failed");
		goto out;
	}
	if (snp_asn1_time(X509_get0_notBefore(c->x509), &c->not_before) != 0 ||
	    snp_asn1_time(X509_get0_notAfter(c->x509), &c->not_after) != 0) {
		r = snp_fail(err, SNP_E_FORMAT, "certificate: validity times cannot be decoded");
		goto out;
	}

	if ((r = role_from_subject(c->x509, &c->role, &cn_prod)) != SNP_OK) {
		r = snp_fail(err, r, "certificate: out of memory");
		goto out;
	}
	if ((r = decode_amd_extensions(c, err)) != SNP_OK)
		goto out;

	/* Product: productName when it names one we know, else the CN suffix.  The two
	 * must not contradict each other. */
	name_prod = snp_product_from_name(c->product_name[0] != '\0' ? c->product_name : NULL);
	if (name_prod != SNP_PRODUCT_UNKNOWN && cn_prod != SNP_PRODUCT_UNKNOWN &&
	    name_prod != cn_prod) {
		r = snp_fail(err, SNP_E_FORMAT,
			     "%s certificate: productName \"%s\" contradicts the subject CN (%s)",
			     snp_cert_role_name(c->role), c->product_name, snp_product_name(cn_prod));
		goto out;
	}
	c->product = name_prod != SNP_PRODUCT_UNKNOWN ? name_prod : cn_prod;

	if (c->hwid_len != 0 && c->product != SNP_PRODUCT_UNKNOWN) {
		size_t want = c->product == SNP_PRODUCT_TURIN ? SNP_HWID_LEN_TURIN
							      : SNP_HWID_LEN_LEGACY;

		if (c->hwid_len != want) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "extension " AMD_OID_PREFIX "4 (hwID): %zu bytes, %s uses %zu",
				     c->hwid_len, snp_product_name(c->product), want);
			goto out;
		}
	}
	if (c->role == SNP_ROLE_VCEK || c->role == SNP_ROLE_VLEK) {
		if ((r = check_leaf_key(c, err)) != SNP_OK)
			goto out;
	}

	*out = c;
	c = NULL;
out:
	snp_cert_free(c);
	OPENSSL_free(pem_der);
	OPENSSL_free(reenc);
	OPENSSL_free(spki);
	return r;
}

void
snp_cert_free(snp_cert *c)
{
	if (c == NULL)
		return;
	X509_free(c->x509); /* also releases the borrowed pkey */
	free(c->der);
	free(c);
}

snp_cert_role
snp_cert_get_role(const snp_cert *c)
{
	return c != NULL ? c->role : SNP_ROLE_UNKNOWN;
}

const char *
snp_cert_role_name(snp_cert_role role)
{
	switch (role) {
	case SNP_ROLE_ARK: return "ark";
	case SNP_ROLE_ASK: return "ask";
	case SNP_ROLE_ASVK: return "asvk";
	case SNP_ROLE_VCEK: return "vcek";
	case SNP_ROLE_VLEK: return "vlek";
	case SNP_ROLE_UNKNOWN:
	default: return "unknown";
	}
}

snp_product
snp_cert_product(const snp_cert *c)
{
	return c != NULL ? c->product : SNP_PRODUCT_UNKNOWN;
}

const char *
snp_cert_product_name(const snp_cert *c)
{
	if (c == NULL || c->product_name[0] == '\0')
		return NULL;
	return c->product_name;
}

int
snp_cert_struct_version(const snp_cert *c)
{
	return c != NULL ? c->struct_version : -1;
}

/* Indices into snp_cert.spl (extension .3.(i+1)). */
#define SPL_BL 0
#define SPL_TEE 1
#define SPL_SNP 2
#define SPL_UCODE 7
#define SPL_FMC 8

int
snp_cert_tcb(const snp_cert *c, snp_tcb *out)
{
	snp_tcb tcb;

	if (c == NULL || out == NULL)
		return SNP_E_ARGUMENT;
	if (!c->spl_present[SPL_BL] || !c->spl_present[SPL_TEE] || !c->spl_present[SPL_SNP] ||
	    !c->spl_present[SPL_UCODE])
		return SNP_E_NOT_FOUND;
	/* A Turin TCB is incomplete without its FMC SPL. */
	if (c->product == SNP_PRODUCT_TURIN && !c->spl_present[SPL_FMC])
		return SNP_E_NOT_FOUND;
	memset(&tcb, 0, sizeof(tcb));
	tcb.bootloader = c->spl[SPL_BL];
	tcb.tee = c->spl[SPL_TEE];
	tcb.snp = c->spl[SPL_SNP];
	tcb.microcode = c->spl[SPL_UCODE];
	if (c->product == SNP_PRODUCT_TURIN) {
		tcb.has_fmc = true;
		tcb.fmc = c->spl[SPL_FMC];
	}
	tcb.raw = snp_tcb_encode(&tcb, c->product);
	*out = tcb;
	return SNP_OK;
}

const uint8_t *
snp_cert_hwid(const snp_cert *c, size_t *len)
{
	if (c == NULL || c->hwid_len == 0) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = c->hwid_len;
	return c->hwid;
}

void
snp_cert_spki_sha256(const snp_cert *c, uint8_t out[32])
{
	if (c == NULL)
		memset(out, 0, 32);
	else
		memcpy(out, c->spki_sha256, 32);
}

void
snp_cert_fingerprint(const snp_cert *c, uint8_t out[32])
{
	if (c == NULL)
		memset(out, 0, 32);
	else
		memcpy(out, c->fingerprint, 32);
}

time_t
snp_cert_not_before(const snp_cert *c)
{
	return c != NULL ? c->not_before : 0;
}

time_t
snp_cert_not_after(const snp_cert *c)
{
	return c != NULL ? c->not_after : 0;
}

const uint8_t *
snp_cert_der(const snp_cert *c, size_t *len)
{
	if (c == NULL) {
		if (len != NULL)
			*len = 0;
		return NULL;
	}
	if (len != NULL)
		*len = c->der_len;
	return c->der;
}
