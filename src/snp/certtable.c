/*
 * Extended-report certificate table (GHCB MSG_REPORT_REQ certificate blob,
 * the SNP_GET_EXT_REPORT / configfs auxblob buffer).
 *
 * Wire layout (all little-endian, offsets from the table start):
 *
 *     entry[0] … entry[n-1]    24 bytes each: GUID[16], u32 offset, u32 length
 *     terminator               24 zero bytes
 *     blobs                    anywhere after the terminator, inside the buffer
 *
 * The table comes from the (untrusted) host.  Every byte is read through an
 * rbuf; the rules and the reasons for them are in docs/snp-certtable-kds.md.
 */
#include "snp/internal.h"

#include "common/rbuf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CT_ENTRY_SIZE 24u
#define CT_GUID_LEN 16u

/* GUIDs in RFC 4122 string byte order (the order every implementation writes). */
static const struct {
	snp_cert_kind kind;
	const char *name;
	uint8_t guid[CT_GUID_LEN];
} known_guids[] = {
	{ SNP_CERT_KIND_VCEK, "VCEK",
	  { 0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64,
	    0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd } },
	{ SNP_CERT_KIND_VLEK, "VLEK",
	  { 0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e,
	    0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1 } },
	{ SNP_CERT_KIND_ASK, "ASK",
	  { 0x4a, 0xb7, 0xb3, 0x79, 0xbb, 0xac, 0x4f, 0xe4,
	    0xa0, 0x2f, 0x05, 0xae, 0xf3, 0x27, 0xc7, 0x82 } },
	{ SNP_CERT_KIND_ARK, "ARK",
	  { 0xc0, 0xb4, 0x06, 0xa4, 0xa8, 0x03, 0x49, 0x52,
	    0x97, 0x43, 0x3f, 0xb6, 0x01, 0x4c, 0xd0, 0xae } },
	{ SNP_CERT_KIND_CRL, "CRL",
	  { 0x92, 0xf8, 0x1b, 0xc3, 0x58, 0x11, 0x4d, 0x3d,
	    0x97, 0xff, 0xd1, 0x9f, 0x88, 0xdc, 0x67, 0xea } },
};

#define KNOWN_GUID_COUNT (sizeof(known_guids) / sizeof(known_guids[0]))

struct snp_certtable_entry {
	snp_cert_kind kind;
	uint8_t guid[CT_GUID_LEN];
	uint8_t *blob; /* owned, len > 0 */
	size_t len;
};

struct snp_certtable {
	struct snp_certtable_entry entries[SNP_CERTTABLE_MAX_ENTRIES];
	size_t count;
	/* Sum of the blob lengths: with count, gives the encoded size without
	 * walking the entries.  Kept <= SNP_CERTTABLE_MAX_SIZE by parse and add. */
	size_t blob_total;
};

/* Kind of a GUID; SNP_CERT_KIND_OTHER when it is none of the known ones. */
static snp_cert_kind
kind_of_guid(const uint8_t guid[CT_GUID_LEN])
{
	size_t i;

	for (i = 0; i < KNOWN_GUID_COUNT; i++) {
		if (memcmp(guid, known_guids[i].guid, CT_GUID_LEN) == 0)
			return known_guids[i].kind;
	}
	return SNP_CERT_KIND_OTHER;
}

/* GUID of a known kind; NULL for SNP_CERT_KIND_OTHER or a value outside the enum. */
static const uint8_t *
guid_of_kind(snp_cert_kind kind)
{
	size_t i;

	for (i = 0; i < KNOWN_GUID_COUNT; i++) {
		if (known_guids[i].kind == kind)
			return known_guids[i].guid;
	}
	return NULL;
}

static const char *
kind_name(snp_cert_kind kind)
{
	size_t i;

	for (i = 0; i < KNOWN_GUID_COUNT; i++) {
		if (known_guids[i].kind == kind)
			return known_guids[i].name;
	}
	return "other";
}

static bool
kind_is_valid(snp_cert_kind kind)
{
	return (unsigned)kind <= (unsigned)SNP_CERT_KIND_CRL;
}

/* Encoded size of a table with `count` entries and `blob_total` blob bytes.  The
 * callers keep count <= SNP_CERTTABLE_MAX_ENTRIES and blob_total <= SNP_CERTTABLE_MAX_SIZE,
 * so this cannot overflow. */
static size_t
encoded_size(size_t count, size_t blob_total)
{
	return (count + 1) * CT_ENTRY_SIZE + blob_total;
}

int
snp_certtable_new(snp_certtable **out)
{
	snp_certtable *t = NULL;

	if (out == NULL)
		return SNP_E_ARGUMENT;
	if ((t = calloc(1, sizeof(*t))) == NULL)
		return SNP_E_NOMEM;
	*out = t;
	return SNP_OK;
}

void
snp_certtable_free(snp_certtable *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->count; i++)
		free(t->entries[i].blob);
	free(t);
}

/*
 * Append an entry that has already been validated: copies `len` (> 0) bytes of
 * `blob`.  Returns SNP_OK or SNP_E_NOMEM; on failure `t` is unchanged.
 */
static int
append_entry(snp_certtable *t, snp_cert_kind kind, const uint8_t guid[CT_GUID_LEN],
	     const uint8_t *blob, size_t len)
{
	struct snp_certtable_entry *e = &t->entries[t->count];
	uint8_t *copy = NULL;

	if ((copy = malloc(len)) == NULL)
		return SNP_E_NOMEM;
	memcpy(copy, blob, len);
	e->kind = kind;
	memcpy(e->guid, guid, CT_GUID_LEN);
	e->blob = copy;
	e->len = len;
	t->count++;
	t->blob_total += len;
	return SNP_OK;
}

/* A raw entry as read from the wire, before its blob is checked. */
struct raw_entry {
	const uint8_t *guid; /* borrowed from the input */
	uint32_t offset;
	uint32_t length;
};

int
snp_certtable_parse(const uint8_t *buf, size_t len, snp_certtable **out, snp_error *err)
{
	struct raw_entry raw[SNP_CERTTABLE_MAX_ENTRIES];
	snp_certtable *t = NULL;
	struct rbuf rb;
	const uint8_t *guid = NULL;
	const uint8_t *blob = NULL;
	size_t n = 0, i, j, entry_area, blob_total = 0;
	uint32_t offset, length;
	snp_cert_kind kind;
	bool terminated = false;
	int r;

	if ((buf == NULL && len != 0) || out == NULL) {
		r = snp_fail(err, SNP_E_ARGUMENT, "certtable: NULL %s", out == NULL ? "out" : "buf");
		goto out;
	}
	if (len > SNP_CERTTABLE_MAX_SIZE) {
		r = snp_fail(err, SNP_E_FORMAT, "certtable: size %zu exceeds the limit %u", len,
			     SNP_CERTTABLE_MAX_SIZE);
		goto out;
	}
	rbuf_init(&rb, buf, len);

	/* Entry area: up to SNP_CERTTABLE_MAX_ENTRIES entries, then the all-zero terminator. */
	for (i = 0; !terminated; i++) {
		if (rbuf_get_direct(&rb, &guid, CT_GUID_LEN) != 0 ||
		    rbuf_get_u32le(&rb, &offset) != 0 || rbuf_get_u32le(&rb, &length) != 0) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu: truncated at offset %zu of %zu bytes "
				     "(no all-zero terminator)",
				     i, i * CT_ENTRY_SIZE, len);
			goto out;
		}
		if (snp_all_zero(guid, CT_GUID_LEN)) {
			if (offset != 0 || length != 0) {
				r = snp_fail(err, SNP_E_FORMAT,
					     "certtable: entry %zu: zero GUID with offset %" PRIu32
					     " length %" PRIu32 " (the terminator must be all zero)",
					     i, offset, length);
				goto out;
			}
			terminated = true;
			continue;
		}
		if (i >= SNP_CERTTABLE_MAX_ENTRIES) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu: more than %u entries", i,
				     SNP_CERTTABLE_MAX_ENTRIES);
			goto out;
		}
		raw[i].guid = guid;
		raw[i].offset = offset;
		raw[i].length = length;
		n = i + 1;
	}
	entry_area = rbuf_offset(&rb); /* (n + 1) * 24 */

	/* Blobs: after the terminator, inside the buffer, non-empty, and (overlaps being
	 * allowed) no more bytes in total than a table may hold. */
	for (i = 0; i < n; i++) {
		kind = kind_of_guid(raw[i].guid);
		if (raw[i].length == 0) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu (%s): length 0 with a non-zero GUID", i,
				     kind_name(kind));
			goto out;
		}
		if (raw[i].offset < entry_area) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu (%s): offset %" PRIu32
				     " is inside the entry area (ends at %zu)",
				     i, kind_name(kind), raw[i].offset, entry_area);
			goto out;
		}
		/* offset >= entry_area > 0 and len <= 64 KiB: subtraction only, no overflow. */
		if (raw[i].offset > len || raw[i].length > len - raw[i].offset) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu (%s): offset %" PRIu32 " + length %" PRIu32
				     " exceeds the table size %zu",
				     i, kind_name(kind), raw[i].offset, raw[i].length, len);
			goto out;
		}
		if (raw[i].length > SNP_CERTTABLE_MAX_SIZE - entry_area - blob_total) {
			r = snp_fail(err, SNP_E_FORMAT,
				     "certtable: entry %zu (%s): blobs total %zu + %" PRIu32
				     " bytes exceed the limit %zu (overlapping blobs)",
				     i, kind_name(kind), blob_total, raw[i].length,
				     (size_t)SNP_CERTTABLE_MAX_SIZE - entry_area);
			goto out;
		}
		blob_total += raw[i].length;
		if (kind != SNP_CERT_KIND_OTHER) {
			for (j = 0; j < i; j++) {
				if (kind_of_guid(raw[j].guid) == kind) {
					r = snp_fail(err, SNP_E_FORMAT,
						     "certtable: entry %zu: second %s entry (first is "
						     "entry %zu)",
						     i, kind_name(kind), j);
					goto out;
				}
			}
		}
	}

	if ((r = snp_certtable_new(&t)) != SNP_OK) {
		r = snp_fail(err, r, "certtable: out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (rbuf_seek(&rb, raw[i].offset) != 0 ||
		    rbuf_get_direct(&rb, &blob, raw[i].length) != 0) {
			/* Excluded by the checks above. */
			r = snp_fail(err, SNP_E_INTERNAL, "certtable: entry %zu: blob bounds", i);
			goto out;
		}
		if ((r = append_entry(t, kind_of_guid(raw[i].guid), raw[i].guid, blob,
				      raw[i].length)) != SNP_OK) {
			r = snp_fail(err, r, "certtable: entry %zu: out of memory", i);
			goto out;
		}
	}

	*out = t;
	t = NULL;
	r = SNP_OK;
out:
	snp_certtable_free(t);
	return r;
}

int
snp_certtable_add(snp_certtable *t, snp_cert_kind kind, const uint8_t *blob, size_t len)
{
	const uint8_t *guid = NULL;
	size_t i, need;

	if (t == NULL || blob == NULL || len == 0)
		return SNP_E_ARGUMENT;
	if ((guid = guid_of_kind(kind)) == NULL)
		return SNP_E_ARGUMENT; /* OTHER has no GUID to write; or not a kind */
	/* The result must still be a table snp_certtable_parse accepts. */
	if (t->count >= SNP_CERTTABLE_MAX_ENTRIES)
		return SNP_E_FORMAT;
	need = encoded_size(t->count + 1, t->blob_total);
	if (need > SNP_CERTTABLE_MAX_SIZE || len > SNP_CERTTABLE_MAX_SIZE - need)
		return SNP_E_FORMAT;
	for (i = 0; i < t->count; i++) {
		if (t->entries[i].kind == kind)
			return SNP_E_FORMAT;
	}
	return append_entry(t, kind, guid, blob, len);
}

int
snp_certtable_serialize(const snp_certtable *t, uint8_t *out, size_t *len)
{
	size_t need, i, pos, blob_pos;

	if (t == NULL || len == NULL)
		return SNP_E_ARGUMENT;
	need = encoded_size(t->count, t->blob_total);
	if (out == NULL) {
		*len = need;
		return SNP_OK;
	}
	if (*len < need)
		return SNP_E_ARGUMENT;

	pos = 0;
	blob_pos = (t->count + 1) * CT_ENTRY_SIZE;
	for (i = 0; i < t->count; i++) {
		const struct snp_certtable_entry *e = &t->entries[i];

		memcpy(out + pos, e->guid, CT_GUID_LEN);
		/* blob_pos and e->len are bounded by SNP_CERTTABLE_MAX_SIZE (< 2^32). */
		put_u32le(out + pos + CT_GUID_LEN, (uint32_t)blob_pos);
		put_u32le(out + pos + CT_GUID_LEN + 4, (uint32_t)e->len);
		memcpy(out + blob_pos, e->blob, e->len);
		pos += CT_ENTRY_SIZE;
		blob_pos += e->len;
	}
	memset(out + pos, 0, CT_ENTRY_SIZE);
	*len = need;
	return SNP_OK;
}

size_t
snp_certtable_count(const snp_certtable *t)
{
	return t != NULL ? t->count : 0;
}

int
snp_certtable_entry(const snp_certtable *t, size_t i, snp_cert_kind *kind, const uint8_t **guid,
		    const uint8_t **blob, size_t *len)
{
	const struct snp_certtable_entry *e = NULL;

	if (t == NULL)
		return SNP_E_ARGUMENT;
	if (i >= t->count)
		return SNP_E_NOT_FOUND;
	e = &t->entries[i];
	if (kind != NULL)
		*kind = e->kind;
	if (guid != NULL)
		*guid = e->guid;
	if (blob != NULL)
		*blob = e->blob;
	if (len != NULL)
		*len = e->len;
	return SNP_OK;
}

int
snp_certtable_find(const snp_certtable *t, snp_cert_kind kind, const uint8_t **blob, size_t *len)
{
	size_t i;

	if (t == NULL || blob == NULL || len == NULL || !kind_is_valid(kind))
		return SNP_E_ARGUMENT;
	for (i = 0; i < t->count; i++) {
		if (t->entries[i].kind == kind) {
			*blob = t->entries[i].blob;
			*len = t->entries[i].len;
			return SNP_OK;
		}
	}
	return SNP_E_NOT_FOUND;
}
