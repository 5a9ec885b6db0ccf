/*
 * tsm backend: configfs-tsm reports (Documentation/ABI/testing/configfs-tsm-report).
 *
 * One report = one entry ROOT/nitride-<pid>-<n>, created, used and removed
 * by this call alone:
 *   mkdir entry; provider must read "sev_guest" (when the attribute exists);
 *   read generation (G0); write privlevel; write inblob (64 bytes);
 *   read outblob (exactly 1184 bytes); for an extended report read auxblob;
 *   read generation (G1); rmdir entry, on every path.
 *
 * Generation rule: the kernel increments `generation` once per accepted
 * write of privlevel and once per committed inblob (configfs commits a
 * binary attribute when the file is closed).  This call counts the writes it
 * made (`writes`: 1 for privlevel when written, 1 for inblob) and requires
 * G1 == G0 + writes; anything else means another writer touched the entry
 * between G0 and G1, so outblob may not match our inblob: SNP_E_CONFLICT.
 *
 * configfs-tsm has no derived keys: derive_key uses the sev-guest device
 * (SNP_DEFAULT_SEV_GUEST_DEVICE) when there is one.
 *
 * Only plain libc calls (mkdir, rmdir, open, read, write, close) touch
 * configfs, so that the LD_PRELOAD test shim can stand in for the kernel.
 */
#include "snp/guest_internal.h"

#include "common/fileio.h"
#include "snp/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TSM_ATTR_MAX 64u /* provider, generation, privlevel_floor: short text */
#define TSM_PROVIDER "sev_guest"
#define TSM_NAME_TRIES 8

static unsigned entry_counter;

/* ROOT/name[/attr] into out[PATH_MAX]; -1 when it does not fit. */
static int
join(char out[PATH_MAX], const char *root, const char *name, const char *attr)
{
	int n;

	if (attr != NULL)
		n = snprintf(out, PATH_MAX, "%s/%s/%s", root, name, attr);
	else
		n = snprintf(out, PATH_MAX, "%s/%s", root, name);
	return n < 0 || n >= PATH_MAX ? -1 : 0;
}

/* Map an errno from a configfs-tsm operation on `what` to a status and detail. */
static int
tsm_fail(const char *root, const char *what, int e, snp_error *err)
{
	char eb[24];
	const char *en = guest_errno_name(e, eb, sizeof(eb));

	switch (e) {
	case EAGAIN:
	case EBUSY:
		return snp_fail(err, SNP_E_BUSY, "tsm:%s %s: still busy after %d attempts (%s)", root,
				what, GUEST_BUSY_TRIES, en);
	case ENOTTY:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"tsm:%s %s: ENOTTY: the VMPCK is disabled (after a failed guest "
				"request the sev-guest driver refuses all further requests until the "
				"guest reboots)",
				root, what);
	case EINVAL:
		return snp_fail(err, SNP_E_FIRMWARE,
				"tsm:%s %s: EINVAL: the request was refused as invalid (inblob not 64 "
				"bytes, privlevel out of range, or firmware INVALID_KEY)",
				root, what);
	case ENXIO:
		return snp_fail(err, SNP_E_FIRMWARE,
				"tsm:%s %s: ENXIO: the firmware returned a non-zero status (configfs "
				"does not pass the code on; the sev-guest ioctl path shows it)",
				root, what);
	case EIO:
		return snp_fail(err, SNP_E_FIRMWARE,
				"tsm:%s %s: EIO: the firmware or the VMM failed the guest request",
				root, what);
	case EACCES:
	case EPERM:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"tsm:%s %s: permission denied: configfs-tsm reports need root", root,
				what);
	case ENOENT:
	case ENOTDIR:
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"tsm:%s %s: ENOENT: no configfs-tsm here (is configfs mounted on "
				"/sys/kernel/config and the sev-guest driver loaded?)",
				root, what);
	default:
		return snp_fail(err, SNP_E_IO, "tsm:%s %s: %s", root, what, en);
	}
}

/* Read a short text attribute (cap TSM_ATTR_MAX) and strip one trailing newline.
 * Returns 0 or -errno. */
static int
read_text(const char *path, char out[TSM_ATTR_MAX + 1])
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int r;

	if ((r = file_read_all(path, TSM_ATTR_MAX, &buf, &len)) != 0)
		return r;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	memcpy(out, buf, len);
	out[len] = '\0';
	free(buf);
	return 0;
}

/* Parse a decimal attribute ("17\n").  Returns 0, -errno on read, -EPROTO on bad text. */
static int
read_u64(const char *path, uint64_t *v)
{
	char text[TSM_ATTR_MAX + 1], *end = NULL;
	unsigned long long x;
	int r;

	if ((r = read_text(path, text)) != 0)
		return r;
	if (text[0] < '0' || text[0] > '9')
		return -EPROTO;
	errno = 0;
	x = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0')
		return -EPROTO;
	*v = x;
	return 0;
}

/* Write all of buf to path in one open/close (configfs commits at close).
 * Returns 0 or -errno. */
static int
write_attr(const char *path, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int fd, r = 0;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY)) < 0)
		return -errno;
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0) {
			r = -EIO;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) != 0 && r == 0)
		r = -errno;
	return r;
}

/* Read a binary attribute with a cap, retrying throttling.  Returns 0 or -errno. */
static int
read_blob(const char *path, size_t cap, uint8_t **out, size_t *len)
{
	unsigned delay = GUEST_BUSY_FIRST_MS;
	int r, tries;

	for (tries = 1;; tries++) {
		r = file_read_all(path, cap, out, len);
		if (!(r == -EAGAIN || r == -EBUSY) || tries >= GUEST_BUSY_TRIES)
			return r;
		guest_sleep_ms(delay);
		delay *= 2;
	}
}

static int
tsm_get_report(struct snp_guest *g, const uint8_t report_data[SNP_REPORT_DATA_LEN], uint32_t vmpl,
	       uint8_t report[SNP_REPORT_SIZE], uint8_t **certs, size_t *certs_len, snp_error *err)
{
	char name[64], entry[PATH_MAX], attr[PATH_MAX], text[TSM_ATTR_MAX + 1];
	uint8_t *out = NULL, *aux = NULL;
	size_t out_len = 0, aux_len = 0, used;
	uint64_t g0 = 0, g1 = 0, floor_level = 0, writes = 0;
	bool created = false;
	int r, e, i;

	/* A fresh entry of our own: pid and a process-wide counter. */
	for (i = 0; i < TSM_NAME_TRIES; i++) {
		unsigned n = __atomic_fetch_add(&entry_counter, 1u, __ATOMIC_RELAXED);

		(void)snprintf(name, sizeof(name), "nitride-%ld-%u", (long)getpid(), n);
		if (join(entry, g->path, name, NULL) != 0) {
			r = snp_fail(err, SNP_E_ARGUMENT, "tsm:%s: path too long", g->path);
			goto out;
		}
		if (mkdir(entry, 0700) == 0) {
			created = true;
			break;
		}
		if ((e = errno) != EEXIST) {
			r = tsm_fail(g->path, "mkdir", e, err);
			goto out;
		}
	}
	if (!created) {
		r = snp_fail(err, SNP_E_IO, "tsm:%s: no free entry name after %d tries", g->path,
			     TSM_NAME_TRIES);
		goto out;
	}

	/* provider: absent on kernels that predate it; otherwise it must be ours. */
	if (join(attr, g->path, name, "provider") != 0) {
		r = snp_fail(err, SNP_E_ARGUMENT, "tsm:%s: path too long", g->path);
		goto out;
	}
	if ((e = read_text(attr, text)) == 0) {
		if (strcmp(text, TSM_PROVIDER) != 0) {
			r = snp_fail(err, SNP_E_UNAVAILABLE,
				     "tsm:%s: the configfs-tsm provider is \"%.32s\", not \"%s\": "
				     "not an SEV-SNP guest",
				     g->path, text, TSM_PROVIDER);
			goto out;
		}
	} else if (e != -ENOENT) {
		r = tsm_fail(g->path, "provider", -e, err);
		goto out;
	}

	/* privlevel_floor (optional): the lowest VMPL this guest may ask for. */
	if (join(attr, g->path, name, "privlevel_floor") != 0 ||
	    ((e = read_u64(attr, &floor_level)) != 0 && e != -ENOENT)) {
		r = snp_fail(err, SNP_E_FORMAT, "tsm:%s: unreadable privlevel_floor", g->path);
		goto out;
	}
	if (e == 0 && vmpl < floor_level) {
		r = snp_fail(err, SNP_E_ARGUMENT,
			     "tsm:%s: VMPL %" PRIu32 " is below privlevel_floor %" PRIu64
			     " (this guest runs at VMPL %" PRIu64 ")",
			     g->path, vmpl, floor_level, floor_level);
		goto out;
	}

	if (join(attr, g->path, name, "generation") != 0 || (e = read_u64(attr, &g0)) != 0) {
		r = e == -EPROTO ? snp_fail(err, SNP_E_FORMAT, "tsm:%s: bad generation", g->path)
				 : tsm_fail(g->path, "generation", -e, err);
		goto out;
	}

	/* privlevel: written unless the attribute is absent and VMPL 0 is wanted. */
	(void)snprintf(text, sizeof(text), "%" PRIu32 "\n", vmpl);
	if (join(attr, g->path, name, "privlevel") != 0) {
		r = snp_fail(err, SNP_E_ARGUMENT, "tsm:%s: path too long", g->path);
		goto out;
	}
	if ((e = write_attr(attr, text, strlen(text))) == 0) {
		writes++;
	} else if (!(e == -ENOENT && vmpl == 0)) {
		r = e == -EINVAL ? snp_fail(err, SNP_E_ARGUMENT,
					    "tsm:%s: the kernel refused privlevel %" PRIu32
					    " (EINVAL: configfs-tsm accepts privlevel_floor..3)",
					    g->path, vmpl)
				 : tsm_fail(g->path, "privlevel", -e, err);
		goto out;
	}

	if (join(attr, g->path, name, "inblob") != 0 ||
	    (e = write_attr(attr, report_data, SNP_REPORT_DATA_LEN)) != 0) {
		r = tsm_fail(g->path, "inblob", -e, err);
		goto out;
	}
	writes++;

	if (join(attr, g->path, name, "outblob") != 0 ||
	    (e = read_blob(attr, GUEST_TSM_OUTBLOB_MAX, &out, &out_len)) != 0) {
		r = e == -EFBIG ? snp_fail(err, SNP_E_FORMAT, "tsm:%s: outblob larger than %u bytes",
					   g->path, GUEST_TSM_OUTBLOB_MAX)
				: tsm_fail(g->path, "outblob", -e, err);
		goto out;
	}
	if (out_len != SNP_REPORT_SIZE) {
		r = snp_fail(err, SNP_E_FORMAT, "tsm:%s: outblob is %zu bytes, not %u", g->path,
			     out_len, SNP_REPORT_SIZE);
		goto out;
	}
	if (certs != NULL) {
		if (join(attr, g->path, name, "auxblob") != 0 ||
		    ((e = read_blob(attr, SNP_GUEST_CERTS_MAX, &aux, &aux_len)) != 0 &&
		     e != -ENOENT)) {
			r = e == -EFBIG ? snp_fail(err, SNP_E_FORMAT,
						   "tsm:%s: auxblob larger than %u bytes", g->path,
						   SNP_GUEST_CERTS_MAX)
					: tsm_fail(g->path, "auxblob", -e, err);
			goto out;
		}
	}

	if (join(attr, g->path, name, "generation") != 0 || (e = read_u64(attr, &g1)) != 0) {
		r = e == -EPROTO ? snp_fail(err, SNP_E_FORMAT, "tsm:%s: bad generation", g->path)
				 : tsm_fail(g->path, "generation", -e, err);
		goto out;
	}
	if (g0 > UINT64_MAX - writes || g1 != g0 + writes) {
		r = snp_fail(err, SNP_E_CONFLICT,
			     "tsm:%s/%s: generation went from %" PRIu64 " to %" PRIu64
			     " but this request wrote %" PRIu64 " times: another writer changed "
			     "the entry, the report may not carry our REPORT_DATA",
			     g->path, name, g0, g1, writes);
		goto out;
	}

	memcpy(report, out, SNP_REPORT_SIZE);
	if (certs != NULL) {
		used = guest_certs_trim(aux, aux_len);
		if (used == 0) {
			free(aux);
			aux = NULL;
		}
		*certs = aux;
		*certs_len = used;
		aux = NULL;
	}
	r = SNP_OK;
out:
	if (created)
		(void)rmdir(entry);
	free(out);
	free(aux);
	return r;
}

static int
tsm_derive_key(struct snp_guest *g, const snp_key_request *req, uint8_t key[SNP_DERIVED_KEY_LEN],
	       snp_error *err)
{
	snp_error sub;
	int fd = -1, r;

	memset(&sub, 0, sizeof(sub));
	if ((r = guest_sevguest_open_device(SNP_DEFAULT_SEV_GUEST_DEVICE, &fd, &sub)) != SNP_OK) {
		r = snp_fail(err, r == SNP_E_IO ? SNP_E_IO : SNP_E_UNAVAILABLE,
			     "tsm:%s: configfs-tsm has no derived keys, and the fallback %s is not "
			     "usable: %s",
			     g->path, SNP_DEFAULT_SEV_GUEST_DEVICE, sub.detail);
		goto out;
	}
	r = guest_sevguest_derive_key_fd(fd, SNP_DEFAULT_SEV_GUEST_DEVICE, req, key, err);
out:
	if (fd >= 0)
		(void)close(fd);
	return r;
}

static const struct snp_guest_ops tsm_ops = {
	.get_report = tsm_get_report,
	.derive_key = tsm_derive_key,
	.close = NULL,
};

int
guest_tsm_open(struct snp_guest *g, snp_error *err)
{
	struct stat st;

	if (stat(g->path, &st) != 0 || !S_ISDIR(st.st_mode))
		return snp_fail(err, SNP_E_UNAVAILABLE,
				"tsm:%s is not a directory: no configfs-tsm reports here (mount "
				"configfs on /sys/kernel/config and load sev-guest, or use "
				"sev-guest:/dev/sev-guest, or NITRIDE_SNP=sim:SOCKET for the simulator)",
				g->path);
	g->ops = &tsm_ops;
	return SNP_OK;
}
