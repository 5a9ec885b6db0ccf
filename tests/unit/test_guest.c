/*
 * Guest backends without a simulator: spec grammar, $NITRIDE_SNP, automatic
 * selection over fake paths, the "not an SNP guest" message, the uapi
 * layouts and ioctl numbers, the guest-message codecs (round trips and
 * negative decodes), the certificate-table trim, and the error mapping of
 * the sev-guest and tsm backends against real kernel answers (ENOTTY from a
 * regular file, ENOENT from a directory that is not configfs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "snp/guest_internal.h"
#include "snp/guestmsg.h"
#include "snp/sevguest_uapi.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[PATH_MAX];

static int
setup_scratch(void **state)
{
	const char *base = getenv("NITRIDE_TEST_TMP");
	int n;

	(void)state;
	if (base == NULL || base[0] == '\0')
		base = "/tmp";
	n = snprintf(scratch, sizeof(scratch), "%s/test_guest.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(scratch) || mkdtemp(scratch) == NULL)
		return -1;
	return 0;
}

static int
remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[PATH_MAX];
	struct stat st;

	if (d == NULL)
		return unlink(path);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name) >= (int)sizeof(sub))
			continue;
		if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			(void)remove_tree(sub);
		else
			(void)unlink(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int
teardown_scratch(void **state)
{
	(void)state;
	return remove_tree(scratch) == 0 ? 0 : -1;
}

static void
scratch_path(char out[PATH_MAX], const char *name)
{
	assert_true(snprintf(out, PATH_MAX, "%s/%s", scratch, name) < PATH_MAX);
}

static size_t
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* ---- spec grammar ----------------------------------------------------- */

static void
test_spec_explicit(void **state)
{
	char path[PATH_MAX];
	snp_guest_kind kind = 0;
	snp_error err;

	(void)state;
	assert_int_equal(guest_select("sev-guest", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SEV_GUEST);
	assert_string_equal(path, SNP_DEFAULT_SEV_GUEST_DEVICE);
	assert_int_equal(guest_select("sev-guest:/x/dev", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SEV_GUEST);
	assert_string_equal(path, "/x/dev");
	assert_int_equal(guest_select("tsm", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_TSM);
	assert_string_equal(path, SNP_DEFAULT_TSM_ROOT);
	assert_int_equal(guest_select("tsm:/cfg/tsm", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_TSM);
	assert_string_equal(path, "/cfg/tsm");
	assert_int_equal(guest_select("sim:/run/snpsim.sock", "/r", "/d", &kind, path, &err),
			 SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SIM);
	assert_string_equal(path, "/run/snpsim.sock");
}

static void
test_spec_invalid(void **state)
{
	static const char *const bad[] = {
		"sim", "sim:", "tsm:", "sev-guest:", "sev-guestx", "tsmx:/a", "bogus", "SIM:/a",
		" sim:/a",
	};
	char path[PATH_MAX], *longspec;
	snp_guest_kind kind = 0;
	snp_error err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		assert_int_equal(guest_select(bad[i], "/r", "/d", &kind, path, &err),
				 SNP_E_ARGUMENT);
		assert_int_equal(err.status, SNP_E_ARGUMENT);
		assert_true(err.detail[0] != '\0');
	}
	assert_int_equal(guest_select("bogus", "/r", "/d", &kind, path, &err), SNP_E_ARGUMENT);
	assert_non_null(strstr(err.detail, "sim:SOCKET"));
	/* A path that cannot fit PATH_MAX. */
	longspec = malloc(PATH_MAX + 16);
	assert_non_null(longspec);
	memcpy(longspec, "tsm:", 4);
	memset(longspec + 4, 'a', PATH_MAX + 4);
	longspec[PATH_MAX + 8] = '\0';
	assert_int_equal(guest_select(longspec, "/r", "/d", &kind, path, &err), SNP_E_ARGUMENT);
	free(longspec);
}

static void
test_spec_env(void **state)
{
	char path[PATH_MAX], tsm[PATH_MAX];
	snp_guest_kind kind = 0;
	snp_error err;

	(void)state;
	assert_int_equal(setenv("NITRIDE_SNP", "sim:/env/sock", 1), 0);
	assert_int_equal(guest_select(NULL, "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SIM);
	assert_string_equal(path, "/env/sock");
	assert_int_equal(guest_select("", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SIM);
	/* An explicit spec wins over the environment. */
	assert_int_equal(guest_select("tsm:/x", "/r", "/d", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_TSM);
	/* A bad environment value is reported, not ignored. */
	assert_int_equal(setenv("NITRIDE_SNP", "nonsense", 1), 0);
	assert_int_equal(guest_select(NULL, "/r", "/d", &kind, path, &err), SNP_E_ARGUMENT);
	/* Empty means unset: auto. */
	assert_int_equal(setenv("NITRIDE_SNP", "", 1), 0);
	scratch_path(tsm, "envtsm");
	assert_int_equal(mkdir(tsm, 0700), 0);
	assert_int_equal(guest_select(NULL, tsm, "/nonexistent/dev", &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_TSM);
	assert_int_equal(rmdir(tsm), 0);
	assert_int_equal(unsetenv("NITRIDE_SNP"), 0);
}

/* ---- automatic selection ------------------------------------------------ */

static void
test_auto_selection(void **state)
{
	char tsm[PATH_MAX], dev[PATH_MAX], path[PATH_MAX];
	snp_guest_kind kind = 0;
	snp_error err;
	int fd;

	(void)state;
	assert_int_equal(unsetenv("NITRIDE_SNP"), 0);
	scratch_path(tsm, "tsm-root");
	scratch_path(dev, "sev-guest");
	assert_int_equal(mkdir(tsm, 0700), 0);
	fd = open(dev, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);

	/* Both present: tsm first. */
	assert_int_equal(guest_select(NULL, tsm, dev, &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_TSM);
	assert_string_equal(path, tsm);
	/* tsm root is a file, not a directory: not configfs-tsm, so the device. */
	assert_int_equal(guest_select(NULL, dev, dev, &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SEV_GUEST);
	/* Only the device. */
	assert_int_equal(rmdir(tsm), 0);
	assert_int_equal(guest_select(NULL, tsm, dev, &kind, path, &err), SNP_OK);
	assert_int_equal(kind, SNP_GUEST_SEV_GUEST);
	assert_string_equal(path, dev);
	/* Neither: the message says what this is and what to do. */
	assert_int_equal(unlink(dev), 0);
	memset(&err, 0, sizeof(err));
	assert_int_equal(guest_select(NULL, tsm, dev, &kind, path, &err), SNP_E_UNAVAILABLE);
	assert_int_equal(err.status, SNP_E_UNAVAILABLE);
	assert_non_null(strstr(err.detail, "not an SEV-SNP guest"));
	assert_non_null(strstr(err.detail, tsm));
	assert_non_null(strstr(err.detail, dev));
	assert_non_null(strstr(err.detail, "snpsimd"));
	assert_non_null(strstr(err.detail, "NITRIDE_SNP=sim:"));
	assert_string_equal(snp_status_class(err.status), "unavailable");
}

/* ---- snp_guest_open and backend errors --------------------------------- */

static void
test_open_unavailable(void **state)
{
	char p[PATH_MAX], spec[PATH_MAX + 16];
	snp_guest *g = NULL;
	snp_error err;

	(void)state;
	scratch_path(p, "absent");
	(void)snprintf(spec, sizeof(spec), "sev-guest:%s", p);
	assert_int_equal(snp_guest_open(spec, &g, &err), SNP_E_UNAVAILABLE);
	assert_null(g);
	assert_non_null(strstr(err.detail, "does not exist"));
	assert_non_null(strstr(err.detail, "NITRIDE_SNP=sim:"));
	(void)snprintf(spec, sizeof(spec), "tsm:%s", p);
	assert_int_equal(snp_guest_open(spec, &g, &err), SNP_E_UNAVAILABLE);
	assert_null(g);
	assert_non_null(strstr(err.detail, "not a directory"));
	(void)snprintf(spec, sizeof(spec), "sim:%s", p);
	assert_int_equal(snp_guest_open(spec, &g, &err), SNP_E_UNAVAILABLE);
	assert_null(g);
	assert_non_null(strstr(err.detail, "snpsimd"));
	assert_int_equal(snp_guest_open("sim:/x", NULL, &err), SNP_E_ARGUMENT);
	snp_guest_close(NULL);
	assert_int_equal(snp_guest_get_kind(NULL), 0);
	assert_string_equal(snp_guest_spec(NULL), "");
}

/* A regular file opened as the device: the kernel answers ENOTTY to the ioctl,
 * which must come out as the VMPCK/unknown-ioctl explanation. */
static void
test_sevguest_enotty(void **state)
{
	char dev[PATH_MAX], spec[PATH_MAX + 16];
	uint8_t data[SNP_REPORT_DATA_LEN] = { 1 }, key[SNP_DERIVED_KEY_LEN];
	uint8_t *rep = NULL, *certs = NULL;
	size_t rep_len = 0, certs_len = 0;
	snp_key_request kreq = { .root_key = SNP_KEY_ROOT_VCEK };
	snp_guest *g = NULL;
	snp_error err;
	int fd;

	(void)state;
	scratch_path(dev, "fake-dev");
	fd = open(dev, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	(void)snprintf(spec, sizeof(spec), "sev-guest:%s", dev);
	assert_int_equal(snp_guest_open(spec, &g, &err), SNP_OK);
	assert_int_equal(snp_guest_get_kind(g), SNP_GUEST_SEV_GUEST);
	assert_string_equal(snp_guest_spec(g), spec);
	assert_int_equal(snp_guest_get_report(g, data, 0, &rep, &rep_len, NULL, NULL, &err),
			 SNP_E_UNAVAILABLE);
	assert_null(rep);
	assert_non_null(strstr(err.detail, "ENOTTY"));
	assert_non_null(strstr(err.detail, "VMPCK"));
	assert_int_equal(snp_guest_get_report(g, data, 0, &rep, &rep_len, &certs, &certs_len,
					      &err),
			 SNP_E_UNAVAILABLE);
	assert_non_null(strstr(err.detail, "SNP_GET_EXT_REPORT"));
	assert_null(certs);
	memset(key, 0xAA, sizeof(key));
	assert_int_equal(snp_guest_derive_key(g, &kreq, key, &err), SNP_E_UNAVAILABLE);
	assert_non_null(strstr(err.detail, "SNP_GET_DERIVED_KEY"));
	assert_int_equal(key[0], 0xAA); /* untouched on failure */
	/* API misuse. */
	assert_int_equal(snp_guest_get_report(g, NULL, 0, &rep, &rep_len, NULL, NULL, &err),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_guest_get_report(g, data, 0, &rep, &rep_len, &certs, NULL, &err),
			 SNP_E_ARGUMENT);
	assert_int_equal(snp_guest_derive_key(g, NULL, key, &err), SNP_E_ARGUMENT);
	snp_guest_close(g);
	assert_int_equal(unlink(dev), 0);
}

/* A plain directory as the configfs root: the entry is created, the kernel
 * attributes are missing, the failure says so, and the entry is removed. */
static void
test_tsm_not_configfs(void **state)
{
	char root[PATH_MAX], spec[PATH_MAX + 16];
	uint8_t data[SNP_REPORT_DATA_LEN] = { 0 };
	uint8_t *rep = NULL;
	size_t rep_len = 0;
	snp_key_request kreq = { .root_key = SNP_KEY_ROOT_VCEK };
	uint8_t key[SNP_DERIVED_KEY_LEN];
	snp_guest *g = NULL;
	snp_error err;
	struct stat st;

	(void)state;
	scratch_path(root, "plain-root");
	assert_int_equal(mkdir(root, 0700), 0);
	(void)snprintf(spec, sizeof(spec), "tsm:%s", root);
	assert_int_equal(snp_guest_open(spec, &g, &err), SNP_OK);
	assert_int_equal(snp_guest_get_kind(g), SNP_GUEST_TSM);
	assert_int_equal(snp_guest_get_report(g, data, 0, &rep, &rep_len, NULL, NULL, &err),
			 SNP_E_UNAVAILABLE);
	assert_non_null(strstr(err.detail, "generation"));
	assert_null(rep);
	assert_int_equal(count_entries(root), 0); /* rmdir on the error path */
	/* No derived keys in configfs-tsm; the fallback device is named. */
	if (stat(SNP_DEFAULT_SEV_GUEST_DEVICE, &st) != 0) {
		assert_int_equal(snp_guest_derive_key(g, &kreq, key, &err), SNP_E_UNAVAILABLE);
		assert_non_null(strstr(err.detail, "no derived keys"));
		assert_non_null(strstr(err.detail, SNP_DEFAULT_SEV_GUEST_DEVICE));
	}
	snp_guest_close(g);
	assert_int_equal(rmdir(root), 0);
}

/* ---- uapi layouts --------------------------------------------------------- */

static void
test_uapi_layout(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct nt_snp_guest_request_ioctl), 32);
	assert_int_equal(sizeof(struct nt_snp_report_req), 96);
	assert_int_equal(sizeof(struct nt_snp_report_resp), 4000);
	assert_int_equal(sizeof(struct nt_snp_derived_key_req), 32);
	assert_int_equal(sizeof(struct nt_snp_derived_key_resp), 64);
	assert_int_equal(sizeof(struct nt_snp_ext_report_req), 112);
	assert_int_equal(offsetof(struct nt_snp_ext_report_req, certs_address), 96);
	assert_int_equal(offsetof(struct nt_snp_ext_report_req, certs_len), 104);
	assert_int_equal(offsetof(struct nt_snp_guest_request_ioctl, req_data), 8);
	assert_int_equal(offsetof(struct nt_snp_guest_request_ioctl, resp_data), 16);
	assert_int_equal(offsetof(struct nt_snp_guest_request_ioctl, exitinfo2), 24);
	assert_int_equal(offsetof(struct nt_snp_derived_key_req, guest_field_select), 8);
	assert_int_equal(offsetof(struct nt_snp_derived_key_req, tcb_version), 24);
	assert_int_equal(NT_SNP_GET_REPORT, 0xC0205300ul);
	assert_int_equal(NT_SNP_GET_DERIVED_KEY, 0xC0205301ul);
	assert_int_equal(NT_SNP_GET_EXT_REPORT, 0xC0205302ul);
}

static void
test_uapi_exitinfo2_split(void **state)
{
	struct nt_snp_guest_request_ioctl io;

	(void)state;
	memset(&io, 0, sizeof(io));
	io.exitinfo2 = (uint64_t)SNP_VMM_ERR_INVALID_LEN << SNP_VMM_ERR_SHIFT;
	assert_int_equal(io.fw_error, 0);
	assert_int_equal(io.vmm_error, SNP_VMM_ERR_INVALID_LEN);
	assert_true(io.exitinfo2 == 0x100000000ull);
	io.exitinfo2 = 0x16;
	assert_int_equal(io.fw_error, 0x16);
	assert_int_equal(io.vmm_error, 0);
	io.exitinfo2 = (uint64_t)SNP_VMM_ERR_BUSY << 32;
	assert_int_equal(io.vmm_error, SNP_VMM_ERR_BUSY);
}

/* ---- guest messages ------------------------------------------------------- */

static void
test_guestmsg_report_req(void **state)
{
	struct snp_report_req in, out;
	struct nt_snp_report_req uapi;
	uint8_t wire[MSG_REPORT_REQ_SIZE];
	size_t i;

	(void)state;
	for (i = 0; i < SNP_REPORT_DATA_LEN; i++)
		in.report_data[i] = (uint8_t)(0xA0 ^ i);
	in.vmpl = 2;
	guestmsg_encode_report_req(&in, wire);
	/* The wire form is the uapi structure, byte for byte. */
	memcpy(&uapi, wire, sizeof(uapi));
	assert_memory_equal(uapi.user_data, in.report_data, SNP_REPORT_DATA_LEN);
	assert_int_equal(uapi.vmpl, 2);
	assert_int_equal(guestmsg_decode_report_req(wire, sizeof(wire), &out), 0);
	assert_memory_equal(out.report_data, in.report_data, SNP_REPORT_DATA_LEN);
	assert_int_equal(out.vmpl, 2);
	/* Negative: short, long, reserved byte set. */
	assert_int_equal(guestmsg_decode_report_req(wire, sizeof(wire) - 1, &out), -1);
	wire[95] = 1;
	assert_int_equal(guestmsg_decode_report_req(wire, sizeof(wire), &out), -1);
}

static void
test_guestmsg_report_rsp(void **state)
{
	static uint8_t report[SNP_REPORT_SIZE], wire[MSG_REPORT_RSP_SIZE], big[4000];
	const uint8_t *got = NULL;
	uint32_t status = 99;

	(void)state;
	memset(report, 0x5C, sizeof(report));
	guestmsg_encode_report_rsp(0, report, wire);
	assert_int_equal(guestmsg_decode_report_rsp(wire, sizeof(wire), &status, &got), 0);
	assert_int_equal(status, 0);
	assert_memory_equal(got, report, SNP_REPORT_SIZE);
	/* As it arrives in the kernel's 4000-byte buffer. */
	memset(big, 0, sizeof(big));
	memcpy(big, wire, sizeof(wire));
	assert_int_equal(guestmsg_decode_report_rsp(big, sizeof(big), &status, &got), 0);
	assert_ptr_equal(got, big + MSG_REPORT_RSP_HDR_SIZE);
	/* Firmware refusal: status only. */
	guestmsg_encode_report_rsp(SNP_FW_STATUS_INVALID_PARAM, NULL, wire);
	assert_int_equal(guestmsg_decode_report_rsp(wire, MSG_REPORT_RSP_HDR_SIZE, &status, &got),
			 0);
	assert_int_equal(status, SNP_FW_STATUS_INVALID_PARAM);
	assert_string_equal(guestmsg_fw_status_name(status), "INVALID_PARAM");
	/* Negative: short header; success with a wrong REPORT_SIZE; truncated report. */
	assert_int_equal(guestmsg_decode_report_rsp(wire, 31, &status, &got), -1);
	guestmsg_encode_report_rsp(0, report, wire);
	wire[4] = 0x00; /* REPORT_SIZE 0x400 instead of 0x4A0 */
	assert_int_equal(guestmsg_decode_report_rsp(wire, sizeof(wire), &status, &got), -1);
	guestmsg_encode_report_rsp(0, report, wire);
	assert_int_equal(guestmsg_decode_report_rsp(wire, sizeof(wire) - 1, &status, &got), -1);
}

static void
test_guestmsg_key(void **state)
{
	snp_key_request in = { .root_key = SNP_KEY_ROOT_VMRK,
			       .guest_field_select = SNP_KEY_FIELD_MEASUREMENT |
						     SNP_KEY_FIELD_POLICY,
			       .vmpl = 1,
			       .guest_svn = 7,
			       .tcb_version = 0x1122334455667788ull },
			out;
	struct nt_snp_derived_key_req uapi;
	uint8_t wire[MSG_KEY_REQ_SIZE], rsp[MSG_KEY_RSP_SIZE], key[SNP_DERIVED_KEY_LEN];
	const uint8_t *got = NULL;
	uint32_t status = 99;

	(void)state;
	guestmsg_encode_key_req(&in, wire);
	memcpy(&uapi, wire, sizeof(uapi));
	assert_int_equal(uapi.root_key_select, 1);
	assert_int_equal(uapi.guest_field_select, in.guest_field_select);
	assert_int_equal(uapi.vmpl, 1);
	assert_int_equal(uapi.guest_svn, 7);
	assert_true(uapi.tcb_version == in.tcb_version);
	assert_int_equal(guestmsg_decode_key_req(wire, sizeof(wire), &out), 0);
	assert_int_equal(out.root_key, in.root_key);
	assert_true(out.guest_field_select == in.guest_field_select);
	assert_int_equal(out.vmpl, in.vmpl);
	assert_int_equal(out.guest_svn, in.guest_svn);
	assert_true(out.tcb_version == in.tcb_version);
	/* Negative: reserved root bits, reserved field bits, reserved word, size. */
	wire[0] = 2;
	assert_int_equal(guestmsg_decode_key_req(wire, sizeof(wire), &out), -1);
	guestmsg_encode_key_req(&in, wire);
	wire[8] = 0x40;
	assert_int_equal(guestmsg_decode_key_req(wire, sizeof(wire), &out), -1);
	guestmsg_encode_key_req(&in, wire);
	wire[5] = 1;
	assert_int_equal(guestmsg_decode_key_req(wire, sizeof(wire), &out), -1);
	guestmsg_encode_key_req(&in, wire);
	assert_int_equal(guestmsg_decode_key_req(wire, sizeof(wire) - 1, &out), -1);

	memset(key, 0x3C, sizeof(key));
	guestmsg_encode_key_rsp(0, key, rsp);
	assert_int_equal(guestmsg_decode_key_rsp(rsp, sizeof(rsp), &status, &got), 0);
	assert_int_equal(status, 0);
	assert_memory_equal(got, key, sizeof(key));
	assert_ptr_equal(got, rsp + 0x20);
	guestmsg_encode_key_rsp(SNP_FW_STATUS_INVALID_PARAM, NULL, rsp);
	assert_int_equal(guestmsg_decode_key_rsp(rsp, sizeof(rsp), &status, &got), 0);
	assert_int_equal(status, SNP_FW_STATUS_INVALID_PARAM);
	assert_int_equal(guestmsg_decode_key_rsp(rsp, sizeof(rsp) - 1, &status, &got), -1);
	assert_string_equal(guestmsg_fw_status_name(0x27), "INVALID_KEY");
	assert_string_equal(guestmsg_fw_status_name(0x1234), "unknown firmware status");
}

/* ---- certificate table trim --------------------------------------------- */

static void
put_entry(uint8_t *buf, size_t i, uint8_t tag, uint32_t off, uint32_t len)
{
	memset(buf + i * 24, tag, 16);
	buf[i * 24 + 16] = (uint8_t)off;
	buf[i * 24 + 17] = (uint8_t)(off >> 8);
	buf[i * 24 + 18] = (uint8_t)(off >> 16);
	buf[i * 24 + 19] = (uint8_t)(off >> 24);
	buf[i * 24 + 20] = (uint8_t)len;
	buf[i * 24 + 21] = (uint8_t)(len >> 8);
	buf[i * 24 + 22] = (uint8_t)(len >> 16);
	buf[i * 24 + 23] = (uint8_t)(len >> 24);
}

static void
test_certs_trim(void **state)
{
	static uint8_t page[4096];
	size_t i;

	(void)state;
	/* Empty table (first entry is the terminator): no certificates. */
	memset(page, 0, sizeof(page));
	assert_int_equal(guest_certs_trim(page, sizeof(page)), 0);
	assert_int_equal(guest_certs_trim(NULL, 0), 0);
	/* Two entries, blobs out of order, page padding after: trimmed to the
	 * furthest blob end. */
	put_entry(page, 0, 0x11, 72 + 500, 300);
	put_entry(page, 1, 0x22, 72, 500);
	memset(page + 72, 0xEE, 800);
	assert_int_equal(guest_certs_trim(page, sizeof(page)), 872);
	/* A zero-length blob still keeps the entry area and terminator. */
	memset(page, 0, sizeof(page));
	put_entry(page, 0, 0x11, 48, 0);
	assert_int_equal(guest_certs_trim(page, sizeof(page)), 48);
	/* A blob past the buffer: everything kept for the verifier to reject. */
	put_entry(page, 0, 0x11, 48, 5000);
	assert_int_equal(guest_certs_trim(page, sizeof(page)), sizeof(page));
	put_entry(page, 0, 0x11, 0xFFFFFFFFu, 2);
	assert_int_equal(guest_certs_trim(page, sizeof(page)), sizeof(page));
	/* No terminator inside the buffer. */
	memset(page, 0x01, sizeof(page));
	assert_int_equal(guest_certs_trim(page, 100), 100);
	/* More than SNP_CERTTABLE_MAX_ENTRIES entries before a terminator. */
	memset(page, 0, sizeof(page));
	for (i = 0; i < SNP_CERTTABLE_MAX_ENTRIES + 2; i++)
		put_entry(page, i, (uint8_t)(i + 1), 4000, 10);
	assert_int_equal(guest_certs_trim(page, sizeof(page)), sizeof(page));
	/* Truncated mid-entry. */
	memset(page, 0, sizeof(page));
	put_entry(page, 0, 0x11, 48, 10);
	assert_int_equal(guest_certs_trim(page, 30), 30);
}

static void
test_status_classes(void **state)
{
	(void)state;
	assert_string_equal(snp_status_class(SNP_E_UNAVAILABLE), "unavailable");
	assert_string_equal(snp_status_class(SNP_E_FIRMWARE), "firmware");
	assert_string_equal(snp_status_class(SNP_E_BUSY), "busy");
	assert_string_equal(snp_status_class(SNP_E_CONFLICT), "conflict");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_explicit),
		cmocka_unit_test(test_spec_invalid),
		cmocka_unit_test(test_spec_env),
		cmocka_unit_test(test_auto_selection),
		cmocka_unit_test(test_open_unavailable),
		cmocka_unit_test(test_sevguest_enotty),
		cmocka_unit_test(test_tsm_not_configfs),
		cmocka_unit_test(test_uapi_layout),
		cmocka_unit_test(test_uapi_exitinfo2_split),
		cmocka_unit_test(test_guestmsg_report_req),
		cmocka_unit_test(test_guestmsg_report_rsp),
		cmocka_unit_test(test_guestmsg_key),
		cmocka_unit_test(test_certs_trim),
		cmocka_unit_test(test_status_classes),
	};

	return cmocka_run_group_tests(tests, setup_scratch, teardown_scratch);
}
