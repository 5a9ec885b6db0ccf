/*
 * OVMF firmware images: the GUID table at the end of the image and the SEV
 * metadata ("ASEV") section list it points to.
 *
 * Layout (edk2 OvmfPkg/ResetVector, docs/measure.md):
 *   … [entry data][u16 size][GUID] … [table footer: u16 size][footer GUID] [32 bytes reset vector]
 * Every entry's size counts its data and its 18-byte header; the footer's size
 * counts the whole table including the footer.  Entries are read backwards
 * from the footer.  Every read goes through an rbuf over the image.
 */
#include "snp/internal.h"

#include <nitride/snp_measure.h>

#include "common/rbuf.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define FOUR_GIB 0x100000000ull
#define ENTRY_HDR_LEN 18u      /* u16 size + GUID */
#define RESET_VECTOR_LEN 32u   /* the table ends this far before the end of the image */
#define ASEV_HDR_LEN 16u
#define ASEV_DESC_LEN 12u

/* GUIDs as stored (EFI_GUID: first three fields little-endian). */
static const uint8_t guid_table_footer[16] = { 0xde, 0x82, 0xb5, 0x96, 0xb2, 0x1f, 0xf7, 0x45,
					       0xba, 0xea, 0xa3, 0x66, 0xc5, 0x5a, 0x08, 0x2d };
static const uint8_t guid_reset_block[16] = { 0xde, 0x71, 0xf7, 0x00, 0x7e, 0x1a, 0xcb, 0x4f,
					      0x89, 0x0e, 0x68, 0xc7, 0x7e, 0x2f, 0xb4, 0x4e };
static const uint8_t guid_sev_metadata[16] = { 0x66, 0x65, 0x88, 0xdc, 0x4a, 0x98, 0x98, 0x47,
					       0xa7, 0x5e, 0x55, 0x85, 0xa7, 0xbf, 0x67, 0xcc };
static const uint8_t guid_hash_table_rv[16] = { 0x1f, 0x37, 0x55, 0x72, 0x3b, 0x3a, 0x04, 0x4b,
						0x92, 0x7b, 0x1d, 0xa6, 0xef, 0xa8, 0xd4, 0x54 };

struct table_entry {
	uint8_t guid[16];
	size_t off; /* of the entry data in the image */
	size_t len;
};

struct snp_ovmf {
	const uint8_t *data; /* the image: `owned`, or borrowed from the caller */
	uint8_t *owned;
	size_t len;
	struct table_entry entries[SNP_OVMF_MAX_TABLE_ENTRIES]; /* in reading order (backwards) */
	size_t nentries;
	snp_ovmf_section sections[SNP_OVMF_MAX_SECTIONS];       /* in image order */
	size_t nsections;
};

const char *
snp_section_type_name(uint32_t type)
{
	switch (type) {
	case SNP_SECTION_SEC_MEM: return "SNP_SEC_MEM";
	case SNP_SECTION_SECRETS: return "SNP_SECRETS";
	case SNP_SECTION_CPUID: return "CPUID";
	case SNP_SECTION_SVSM_CAA: return "SVSM_CAA";
	case SNP_SECTION_KERNEL_HASHES: return "SNP_KERNEL_HASHES";
	default: return NULL;
	}
}

static int
get_u16le(struct rbuf *b, uint16_t *v)
{
	uint8_t p[2];

	if (rbuf_get_bytes(b, p, sizeof(p)) != 0)
		return -1;
	*v = (uint16_t)(p[0] | p[1] << 8);
	return 0;
}

/* Entry lookup: the last one stored, i.e. the one nearest the start of the image. */
static const struct table_entry *
find_entry(const snp_ovmf *o, const uint8_t guid[16])
{
	size_t i;

	for (i = o->nentries; i > 0; i--)
		if (memcmp(o->entries[i - 1].guid, guid, 16) == 0)
			return &o->entries[i - 1];
	return NULL;
}

/*
 * The GUID table.  A missing footer GUID is not an error (the table is then
 * empty); everything else that does not fit is.
 */
static int
parse_table(snp_ovmf *o, snp_error *err)
{
	struct rbuf b;
	struct table_entry *e;
	uint8_t guid[16];
	uint16_t size;
	size_t footer_off, start, end;

	if (o->len < RESET_VECTOR_LEN + ENTRY_HDR_LEN)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: %zu bytes is too short for the GUID table footer "
				"(at least %u)", o->len, RESET_VECTOR_LEN + ENTRY_HDR_LEN);
	footer_off = o->len - RESET_VECTOR_LEN - ENTRY_HDR_LEN;
	rbuf_init(&b, o->data, o->len);
	if (rbuf_seek(&b, footer_off) != 0 || get_u16le(&b, &size) != 0 ||
	    rbuf_get_bytes(&b, guid, sizeof(guid)) != 0)
		return snp_fail(err, SNP_E_INTERNAL, "firmware: footer read failed");
	if (memcmp(guid, guid_table_footer, 16) != 0)
		return SNP_OK; /* no table */
	if (size < ENTRY_HDR_LEN)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: GUID table footer at offset 0x%zx: table size %u is smaller "
				"than the %u-byte footer", footer_off, size, ENTRY_HDR_LEN);
	if (size - ENTRY_HDR_LEN > footer_off)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: GUID table footer at offset 0x%zx: table size %u reaches "
				"before the start of the image", footer_off, size);
	start = footer_off - (size - ENTRY_HDR_LEN);
	end = footer_off;
	/* Walk backwards: the last 18 bytes of what remains are an entry header. */
	while (end - start >= ENTRY_HDR_LEN) {
		size_t hdr = end - ENTRY_HDR_LEN;

		if (rbuf_seek(&b, hdr) != 0 || get_u16le(&b, &size) != 0 ||
		    rbuf_get_bytes(&b, guid, sizeof(guid)) != 0)
			return snp_fail(err, SNP_E_INTERNAL, "firmware: table entry read failed");
		if (size < ENTRY_HDR_LEN)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: GUID table entry at offset 0x%zx: size %u is smaller "
					"than its %u-byte header", hdr, size, ENTRY_HDR_LEN);
		if (size > end - start)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: GUID table entry at offset 0x%zx: size %u exceeds the "
					"%zu table bytes before it", hdr, size, end - start);
		if (o->nentries == SNP_OVMF_MAX_TABLE_ENTRIES)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: GUID table has more than %u entries",
					SNP_OVMF_MAX_TABLE_ENTRIES);
		e = &o->entries[o->nentries++];
		memcpy(e->guid, guid, 16);
		e->off = end - size;
		e->len = size - ENTRY_HDR_LEN;
		end -= size;
	}
	return SNP_OK;
}

static bool
ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The bytes a section covers in guest memory: SECRETS and CPUID are one page
 * whatever the declared size; the others their size. */
static uint64_t
section_span(const snp_ovmf_section *s)
{
	if ((s->type == SNP_SECTION_SECRETS || s->type == SNP_SECTION_CPUID) &&
	    s->size < SNP_PAGE_SIZE)
		return SNP_PAGE_SIZE;
	return s->size;
}

static int
check_sections(const snp_ovmf *o, snp_error *err)
{
	uint64_t fw_gpa = FOUR_GIB - o->len;
	size_t i, j;

	for (i = 0; i < o->nsections; i++) {
		const snp_ovmf_section *s = &o->sections[i];
		uint64_t span = section_span(s);

		if (snp_section_type_name(s->type) == NULL)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV metadata section %zu (gpa 0x%x): unknown type 0x%x",
					i, s->gpa, s->type);
		if (s->gpa % SNP_PAGE_SIZE != 0)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV metadata section %zu (%s): gpa 0x%x is not "
					"page-aligned", i, snp_section_type_name(s->type), s->gpa);
		if (s->size % SNP_PAGE_SIZE != 0 && s->type != SNP_SECTION_SECRETS &&
		    s->type != SNP_SECTION_CPUID)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV metadata section %zu (%s): size 0x%x is not a "
					"multiple of 4096", i, snp_section_type_name(s->type), s->size);
		if ((uint64_t)s->gpa + span > FOUR_GIB)
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV metadata section %zu (%s): gpa 0x%x size 0x%" PRIx64
					" runs past 4 GiB", i, snp_section_type_name(s->type), s->gpa,
					span);
		if (ranges_overlap(s->gpa, span, fw_gpa, o->len))
			return snp_fail(err, SNP_E_FORMAT,
					"firmware: SEV metadata section %zu (%s): gpa 0x%x size 0x%" PRIx64
					" overlaps the firmware image at 0x%" PRIx64,
					i, snp_section_type_name(s->type), s->gpa, span, fw_gpa);
		for (j = 0; j < i; j++) {
			const snp_ovmf_section *t = &o->sections[j];

			if (ranges_overlap(s->gpa, span, t->gpa, section_span(t)))
				return snp_fail(err, SNP_E_FORMAT,
						"firmware: SEV metadata sections %zu (%s, gpa 0x%x) and %zu "
						"(%s, gpa 0x%x) overlap", j,
						snp_section_type_name(t->type), t->gpa, i,
						snp_section_type_name(s->type), s->gpa);
		}
	}
	return SNP_OK;
}

/* The "ASEV" metadata the table's SEV metadata entry points to (offset from the end). */
static int
parse_metadata(snp_ovmf *o, snp_error *err)
{
	const struct table_entry *e = find_entry(o, guid_sev_metadata);
	struct rbuf b;
	uint32_t back, size, version, count, i;
	uint8_t sig[4];
	size_t start;

	if (e == NULL)
		return SNP_OK;
	rbuf_init(&b, o->data, o->len);
	if (e->len < 4 || rbuf_seek(&b, e->off) != 0 || rbuf_get_u32le(&b, &back) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata table entry at offset 0x%zx: %zu data bytes, "
				"need 4", e->off, e->len);
	if (back > o->len || back < ASEV_HDR_LEN)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata offset 0x%x (from the end) is outside the "
				"%zu-byte image", back, o->len);
	start = o->len - back;
	if (rbuf_seek(&b, start) != 0 || rbuf_get_bytes(&b, sig, sizeof(sig)) != 0 ||
	    rbuf_get_u32le(&b, &size) != 0 || rbuf_get_u32le(&b, &version) != 0 ||
	    rbuf_get_u32le(&b, &count) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata header at offset 0x%zx is truncated", start);
	if (memcmp(sig, "ASEV", 4) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata at offset 0x%zx: signature %02x%02x%02x%02x is "
				"not \"ASEV\"", start, sig[0], sig[1], sig[2], sig[3]);
	if (version != 1)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata at offset 0x%zx: version %u, expected 1",
				start, version);
	if (size < ASEV_HDR_LEN || size > back)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata at offset 0x%zx: size %u is outside %u..%u "
				"(the header up to the end of the image)", start, size, ASEV_HDR_LEN,
				back);
	if (count > (size - ASEV_HDR_LEN) / ASEV_DESC_LEN)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata at offset 0x%zx: %u sections of %u bytes do not "
				"fit in its size %u", start, count, ASEV_DESC_LEN, size);
	if (count > SNP_OVMF_MAX_SECTIONS)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: SEV metadata at offset 0x%zx: %u sections, at most %u",
				start, count, SNP_OVMF_MAX_SECTIONS);
	for (i = 0; i < count; i++) {
		snp_ovmf_section *s = &o->sections[i];

		if (rbuf_get_u32le(&b, &s->gpa) != 0 || rbuf_get_u32le(&b, &s->size) != 0 ||
		    rbuf_get_u32le(&b, &s->type) != 0)
			return snp_fail(err, SNP_E_INTERNAL, "firmware: section read failed");
	}
	o->nsections = count;
	return check_sections(o, err);
}

static int
ovmf_parse(const uint8_t *buf, size_t len, bool copy, snp_ovmf **out, snp_error *err)
{
	snp_ovmf *o = NULL;
	int r;

	if (out == NULL || (buf == NULL && len > 0)) {
		r = snp_fail(err, SNP_E_ARGUMENT, "snp_ovmf_parse: NULL argument");
		goto out;
	}
	if (len > SNP_OVMF_MAX_SIZE) {
		r = snp_fail(err, SNP_E_FORMAT, "firmware: %zu bytes, at most %u", len,
			     SNP_OVMF_MAX_SIZE);
		goto out;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "out of memory");
		goto out;
	}
	o->len = len;
	if (copy) {
		if ((o->owned = malloc(len > 0 ? len : 1)) == NULL) {
			r = snp_fail(err, SNP_E_NOMEM, "out of memory for a %zu-byte image", len);
			goto out;
		}
		if (len > 0)
			memcpy(o->owned, buf, len);
		o->data = o->owned;
	} else {
		o->data = buf;
	}
	if ((r = parse_table(o, err)) != SNP_OK || (r = parse_metadata(o, err)) != SNP_OK)
		goto out;
	*out = o;
	o = NULL;
	r = SNP_OK;
out:
	snp_ovmf_free(o);
	return r;
}

int
snp_ovmf_parse(const uint8_t *buf, size_t len, snp_ovmf **out, snp_error *err)
{
	return ovmf_parse(buf, len, true, out, err);
}

int
snp_ovmf_parse_static(const uint8_t *buf, size_t len, snp_ovmf **out, snp_error *err)
{
	return ovmf_parse(buf, len, false, out, err);
}

void
snp_ovmf_free(snp_ovmf *o)
{
	if (o == NULL)
		return;
	free(o->owned);
	free(o);
}

const uint8_t *
snp_ovmf_data(const snp_ovmf *o)
{
	return o->data;
}

size_t
snp_ovmf_size(const snp_ovmf *o)
{
	return o->len;
}

uint64_t
snp_ovmf_gpa(const snp_ovmf *o)
{
	return FOUR_GIB - o->len;
}

size_t
snp_ovmf_table_count(const snp_ovmf *o)
{
	return o->nentries;
}

int
snp_ovmf_table_entry(const snp_ovmf *o, const uint8_t guid[16], const uint8_t **data, size_t *len)
{
	const struct table_entry *e;

	if (o == NULL || guid == NULL || data == NULL || len == NULL)
		return SNP_E_ARGUMENT;
	if ((e = find_entry(o, guid)) == NULL)
		return SNP_E_NOT_FOUND;
	*data = o->data + e->off;
	*len = e->len;
	return SNP_OK;
}

/* First u32 of the entry `guid`, named `what` in messages. */
static int
entry_u32(const snp_ovmf *o, const uint8_t guid[16], const char *what, uint32_t *v, snp_error *err)
{
	const struct table_entry *e = find_entry(o, guid);
	struct rbuf b;

	if (e == NULL)
		return snp_fail(err, SNP_E_NOT_FOUND, "Can't find %s entry in OVMF table", what);
	rbuf_init(&b, o->data + e->off, e->len);
	if (rbuf_get_u32le(&b, v) != 0)
		return snp_fail(err, SNP_E_FORMAT,
				"firmware: %s entry at offset 0x%zx has %zu data bytes, need 4",
				what, e->off, e->len);
	return SNP_OK;
}

int
snp_ovmf_reset_eip(const snp_ovmf *o, uint32_t *eip, snp_error *err)
{
	if (o == NULL || eip == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_ovmf_reset_eip: NULL argument");
	return entry_u32(o, guid_reset_block, "SEV_ES_RESET_BLOCK_GUID", eip, err);
}

int
snp_ovmf_hashes_table_gpa(const snp_ovmf *o, uint32_t *gpa, snp_error *err)
{
	if (o == NULL || gpa == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_ovmf_hashes_table_gpa: NULL argument");
	return entry_u32(o, guid_hash_table_rv, "SEV_HASH_TABLE_RV_GUID", gpa, err);
}

bool
snp_ovmf_sev_hashes_supported(const snp_ovmf *o)
{
	uint32_t gpa = 0;

	return o != NULL && snp_ovmf_hashes_table_gpa(o, &gpa, NULL) == SNP_OK && gpa != 0;
}

size_t
snp_ovmf_section_count(const snp_ovmf *o)
{
	return o->nsections;
}

int
snp_ovmf_get_section(const snp_ovmf *o, size_t i, snp_ovmf_section *out)
{
	if (o == NULL || out == NULL || i >= o->nsections)
		return SNP_E_ARGUMENT;
	*out = o->sections[i];
	return SNP_OK;
}
