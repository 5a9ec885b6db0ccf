/*
 * Guest side of libsnp: one snp_guest object in front of three backends
 * (guest_sevguest.c, guest_tsm.c, guest_sim.c), backend selection, and the
 * helpers they share.  docs/guest-backends.md is the reference.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* secure_getenv */
#endif

#include "snp/guest_internal.h"

#include "common/rbuf.h"
#include "snp/internal.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define CT_ENTRY_SIZE 24u

static const char unavailable_hint[] =
	"to develop without SNP hardware run snpsimd and set NITRIDE_SNP=sim:/path/to/snpsim.sock";

/* Copy `src` into path[PATH_MAX]; SNP_E_ARGUMENT when it does not fit or is empty. */
static int
set_path(char path[PATH_MAX], const char *src, const char *what, snp_error *err)
{
	size_t n = strlen(src);

	if (n == 0)
		return snp_fail(err, SNP_E_ARGUMENT, "backend spec: empty %s", what);
	if (n >= PATH_MAX)
		return snp_fail(err, SNP_E_ARGUMENT, "backend spec: %s longer than %d bytes", what,
				PATH_MAX - 1);
	memcpy(path, src, n + 1);
	return SNP_OK;
}

/* "NAME" or "NAME:ARG": returns the ARG (may be "") when spec starts with
 * NAME followed by ':' , "" for exactly NAME, NULL otherwise. */
static const char *
spec_arg(const char *spec, const char *name, bool *has_arg)
{
	size_t n = strlen(name);

	if (strncmp(spec, name, n) != 0)
		return NULL;
	if (spec[n] == '\0') {
		*has_arg = false;
		return spec + n;
	}
	if (spec[n] != ':')
		return NULL;
	*has_arg = true;
	return spec + n + 1;
}

static int
select_auto(const char *tsm_root, const char *device, snp_guest_kind *kind, char path[PATH_MAX],
	    snp_error *err)
{
	struct stat st;

	/* configfs-tsm first: the kernel's preferred interface.  Its provider is
	 * a per-entry attribute, so it is checked when a report entry exists
	 * (guest_tsm.c), not here. */
	if (stat(tsm_root, &st) == 0 && S_ISDIR(st.st_mode)) {
		*kind = SNP_GUEST_TSM;
		return set_path(path, tsm_root, "configfs-tsm root", err);
	}
	if (stat(device, &st) == 0) {
		*kind = SNP_GUEST_SEV_GUEST;
		return set_path(path, device, "device", err);
	}
	return snp_fail(err, SNP_E_UNAVAILABLE,
			"not an SEV-SNP guest: neither %s nor %s exists; %s", tsm_root, device,
			unavailable_hint);
}

int
guest_select(const char *spec, const char *tsm_root, const char *device, snp_guest_kind *kind,
	     char path[PATH_MAX], snp_error *err)
{
	const char *arg;
	bool has_arg = false;

	if (spec == NULL || spec[0] == '\0') {
		const char *env = secure_getenv("NITRIDE_SNP");

		if (env == NULL || env[0] == '\0')
			return select_auto(tsm_root, device, kind, path, err);
		spec = env;
	}
	if ((arg = spec_arg(spec, "sev-guest", &has_arg)) != NULL) {
		*kind = SNP_GUEST_SEV_GUEST;
		return set_path(path, has_arg ? arg : SNP_DEFAULT_SEV_GUEST_DEVICE, "device", err);
	}
	if ((arg = spec_arg(spec, "tsm", &has_arg)) != NULL) {
		*kind = SNP_GUEST_TSM;
		return set_path(path, has_arg ? arg : SNP_DEFAULT_TSM_ROOT, "configfs-tsm root",
				err);
	}
	if ((arg = spec_arg(spec, "sim", &has_arg)) != NULL) {
		if (!has_arg || arg[0] == '\0')
			return snp_fail(err, SNP_E_ARGUMENT,
					"backend spec \"sim\" needs the snpsimd socket: sim:SOCKET");
		*kind = SNP_GUEST_SIM;
		return set_path(path, arg, "simulator socket", err);
	}
	return snp_fail(err, SNP_E_ARGUMENT,
			"unknown SNP backend \"%.64s\": expected sev-guest[:DEVICE], tsm[:ROOT] or "
			"sim:SOCKET",
			spec);
}

static const char *
kind_name(snp_guest_kind kind)
{
	switch (kind) {
	case SNP_GUEST_SEV_GUEST: return "sev-guest";
	case SNP_GUEST_TSM: return "tsm";
	case SNP_GUEST_SIM: return "sim";
	default: return "unknown";
	}
}

int
snp_guest_open(const char *spec, snp_guest **out, snp_error *err)
{
	struct snp_guest *g = NULL;
	int r;

	if (out == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_guest_open: out is NULL");
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return snp_fail(err, SNP_E_NOMEM, "out of memory");
	g->fd = -1;
	if ((r = guest_select(spec, SNP_DEFAULT_TSM_ROOT, SNP_DEFAULT_SEV_GUEST_DEVICE, &g->kind,
			      g->path, err)) != SNP_OK)
		goto out;
	(void)snprintf(g->spec, sizeof(g->spec), "%s:%s", kind_name(g->kind), g->path);
	switch (g->kind) {
	case SNP_GUEST_SEV_GUEST: r = guest_sevguest_open(g, err); break;
	case SNP_GUEST_TSM: r = guest_tsm_open(g, err); break;
	case SNP_GUEST_SIM: r = guest_sim_open(g, err); break;
	default: r = snp_fail(err, SNP_E_INTERNAL, "unknown backend kind %d", (int)g->kind); break;
	}
	if (r != SNP_OK)
		goto out;
	*out = g;
	g = NULL;
out:
	snp_guest_close(g);
	return r;
}

void
snp_guest_close(snp_guest *g)
{
	if (g == NULL)
		return;
	if (g->ops != NULL && g->ops->close != NULL)
		g->ops->close(g);
	free(g);
}

snp_guest_kind
snp_guest_get_kind(const snp_guest *g)
{
	return g != NULL ? g->kind : (snp_guest_kind)0;
}

const char *
snp_guest_spec(const snp_guest *g)
{
	return g != NULL ? g->spec : "";
}

int
snp_guest_get_report(snp_guest *g, const uint8_t report_data[SNP_REPORT_DATA_LEN], uint32_t vmpl,
		     uint8_t **report, size_t *report_len, uint8_t **certs, size_t *certs_len,
		     snp_error *err)
{
	uint8_t buf[SNP_REPORT_SIZE];
	uint8_t *copy = NULL, *table = NULL;
	size_t table_len = 0;
	int r;

	if (g == NULL || g->ops == NULL || report_data == NULL || report == NULL ||
	    report_len == NULL || (certs == NULL) != (certs_len == NULL))
		return snp_fail(err, SNP_E_ARGUMENT,
				"snp_guest_get_report: NULL argument (certs and certs_len go together)");
	if ((r = g->ops->get_report(g, report_data, vmpl, buf,
				    certs != NULL ? &table : NULL, &table_len, err)) != SNP_OK)
		goto out;
	if ((copy = malloc(SNP_REPORT_SIZE)) == NULL) {
		r = snp_fail(err, SNP_E_NOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, buf, SNP_REPORT_SIZE);
	*report = copy;
	*report_len = SNP_REPORT_SIZE;
	copy = NULL;
	if (certs != NULL) {
		*certs = table;
		*certs_len = table_len;
		table = NULL;
	}
out:
	free(copy);
	free(table);
	return r;
}

int
snp_guest_derive_key(snp_guest *g, const snp_key_request *req, uint8_t key[SNP_DERIVED_KEY_LEN],
		     snp_error *err)
{
	uint8_t buf[SNP_DERIVED_KEY_LEN];
	int r;

	if (g == NULL || g->ops == NULL || req == NULL || key == NULL)
		return snp_fail(err, SNP_E_ARGUMENT, "snp_guest_derive_key: NULL argument");
	if (g->ops->derive_key == NULL)
		return snp_fail(err, SNP_E_UNAVAILABLE, "%s: no derived keys", g->spec);
	if ((r = g->ops->derive_key(g, req, buf, err)) == SNP_OK)
		memcpy(key, buf, SNP_DERIVED_KEY_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

size_t
guest_certs_trim(const uint8_t *buf, size_t len)
{
	struct rbuf b;
	size_t end = 0, i;

	if (buf == NULL)
		return 0;
	rbuf_init(&b, buf, len);
	for (i = 0; i <= SNP_CERTTABLE_MAX_ENTRIES; i++) {
		const uint8_t *guid;
		uint32_t off, blen;

		if (rbuf_get_direct(&b, &guid, 16) != 0 || rbuf_get_u32le(&b, &off) != 0 ||
		    rbuf_get_u32le(&b, &blen) != 0)
			return len; /* no terminator inside the buffer */
		if (snp_all_zero(guid, 16) && off == 0 && blen == 0) {
			if (i == 0)
				return 0; /* an empty table: no certificates */
			/* The entry area ends after the terminator. */
			return end > rbuf_offset(&b) ? end : rbuf_offset(&b);
		}
		if (off > len || len - off < blen)
			return len; /* a blob outside the buffer: let the verifier say so */
		if ((size_t)off + blen > end)
			end = (size_t)off + blen;
	}
	return len; /* too many entries: keep everything for the verifier */
}

void
guest_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *
guest_errno_name(int e, char *buf, size_t buflen)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EINVAL: return "EINVAL";
	case ENOTTY: return "ENOTTY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EPIPE: return "EPIPE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EPROTO: return "EPROTO";
	case EMSGSIZE: return "EMSGSIZE";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	default:
		(void)snprintf(buf, buflen, "errno %d", e);
		return buf;
	}
}
