#!/usr/bin/python3
"""libsnp's three guest backends end to end against a real snpsimd.

1. sim:SOCKET directly: REPORT_DATA and VMPL echo, extended report table,
   derived keys, firmware refusal (VMPL 4), no simulator -> unavailable.
2. sev-guest:TMP/sev-guest and tsm:TMP/tsm through the LD_PRELOAD shim
   (tests/shim/sevguest_shim.c), which emulates the kernel on top of the
   same snpsimd: the same checks, the one-page certificate buffer retry,
   reports that `nitride report verify --pin-roots` accepts with the
   simulator's exported roots, derived keys equal across sim, sev-guest and
   tsm (-> sev-guest fallback), and every error path: device absent, busy:2
   (recovers), busy:20 (SNP_E_BUSY), fw-error, vmpck-disabled, generation
   (SNP_E_CONFLICT), another TSM provider, VMPL 4.

Usage: test_guest_backends.py SNPSIMD NITRIDE GUEST_DRIVER SHIM_SO

Sanitized builds: ASan must be the first object in the process, so the
sanitizer runtimes the driver links (found with ldd) go first in
LD_PRELOAD, then the shim; ASan's interceptors reach the shim through
dlsym(RTLD_NEXT).  If they cannot be found the shim cases are skipped and
the test exits 77 after the sim cases.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

failures = []
SNPSIMD_START_TIMEOUT = 240  # first start makes RSA-4096 ARK/ASK keys
RD_HEX = "a5" * 32 + "5a" * 32


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)


def check(cond, msg):
    if not cond:
        fail(msg)
    return cond


def start_snpsimd(exe, state):
    """Start snpsimd; return (process, socket path) once it prints its address."""
    p = subprocess.Popen([exe, "--state-dir", state], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + SNPSIMD_START_TIMEOUT
    buf = ""
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("snpsimd exited early: " + p.stderr.read()[-2000:])
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if not r:
            continue
        line = p.stdout.readline()
        buf += line
        m = re.match(r"snpsimd: socket (\S+) kds (\S+)", line)
        if m:
            return p, m.group(1)
    raise RuntimeError("snpsimd did not print its socket in time: " + buf)


def stop(p):
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=15)


def sanitizer_preload(exe):
    """Sanitizer runtimes `exe` links, in ldd order (ASan first); [] if none."""
    try:
        out = subprocess.run(["ldd", exe], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(lib(asan|ubsan|tsan|lsan)\.so\S*)\s+=>\s+(\S+)", line)
        if m:
            libs.append(m.group(3))
    libs.sort(key=lambda p: 0 if "asan" in os.path.basename(p) else 1)
    return libs


class Driver:
    def __init__(self, exe, shim, preload, env):
        self.exe, self.shim, self.preload, self.env = exe, shim, preload, env

    def run(self, spec, args, shim=False, extra_env=None):
        env = dict(self.env)
        if shim:
            env["LD_PRELOAD"] = " ".join(self.preload + [self.shim])
        env.update(extra_env or {})
        p = subprocess.run([self.exe, spec] + args, capture_output=True, text=True,
                           env=env, timeout=120)
        try:
            out = json.loads(p.stdout)
        except ValueError:
            out = {"ok": False, "status": "no-json", "detail": p.stdout + p.stderr}
        out["_rc"] = p.returncode
        out["_stderr"] = p.stderr
        return out


def expect_ok(r, what):
    if not check(r.get("ok") is True and r["_rc"] == 0,
                 f"{what}: expected success, got {r.get('status')}: {r.get('detail')}"
                 f" {r['_stderr'][-500:]}"):
        return False
    return True


def expect_err(r, what, status, *needles):
    if not check(r.get("ok") is False and r["_rc"] == 2,
                 f"{what}: expected {status}, got ok={r.get('ok')} rc={r['_rc']}"
                 f" {r.get('detail', '')} {r['_stderr'][-300:]}"):
        return
    check(r.get("status") == status,
          f"{what}: status {r.get('status')} (want {status}): {r.get('detail')}")
    for n in needles:
        check(n in r.get("detail", ""), f"{what}: detail lacks {n!r}: {r.get('detail')}")


def check_report(r, what, vmpl, kind):
    if not expect_ok(r, what):
        return
    check(r["kind"] == kind, f"{what}: kind {r['kind']}")
    check(r["report_len"] == 1184, f"{what}: report_len {r['report_len']}")
    check(r["report_data"] == RD_HEX, f"{what}: REPORT_DATA not echoed")
    check(r["vmpl"] == vmpl, f"{what}: VMPL {r['vmpl']} != {vmpl}")
    check(r["version"] in (2, 3, 5), f"{what}: version {r['version']}")


def check_ext(r, what, vmpl, kind):
    check_report(r, what, vmpl, kind)
    if r.get("ok"):
        check(r.get("certs_entries", 0) >= 3,
              f"{what}: table has {r.get('certs_entries')} entries: {r.get('certs_error')}")
        kinds = r.get("certs_kinds", [])
        check(("vcek" in kinds or "vlek" in kinds) and "ark" in kinds,
              f"{what}: table kinds {kinds}")


def verify(nitride, roots, path, what):
    p = subprocess.run([nitride, "report", "verify", "--report", path, "--roots", roots,
                        "--pin-roots"], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"{what}: nitride report verify rc {p.returncode}: "
          f"{p.stdout} {p.stderr}")


class Relay:
    """A socket in front of snpsimd that counts connections; with drop_first
    it closes the first one at once, as snpsimd does with an idle one."""

    def __init__(self, path, backend, drop_first):
        self.backend, self.drop_first, self.count = backend, drop_first, 0
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(path)
        self.srv.listen(8)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.count += 1
            if self.drop_first and self.count == 1:
                c.close()
                continue
            threading.Thread(target=self.pipe, args=(c,), daemon=True).start()

    def pipe(self, c):
        b = socket.socket(socket.AF_UNIX)
        try:
            b.connect(self.backend)
            ends = [(c, b), (b, c)]
            for src, dst in ends:
                threading.Thread(target=self.copy, args=(src, dst), daemon=True).start()
        except OSError:
            c.close()

    @staticmethod
    def copy(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        self.srv.close()


def sim_cases(d, sock, tmp):
    spec = "sim:" + sock
    check_report(d.run(spec, ["report", "--data", RD_HEX, "--vmpl", "1"]), "sim report", 1,
                 "sim")
    check_ext(d.run(spec, ["ext-report", "--data", RD_HEX]), "sim ext-report", 0, "sim")
    expect_err(d.run(spec, ["report", "--data", RD_HEX, "--vmpl", "4"]), "sim vmpl 4",
               "firmware", "0x16", "INVALID_PARAM")
    expect_err(d.run(spec, ["key", "--vmpl", "4"]), "sim key vmpl 4", "firmware",
               "INVALID_PARAM")
    expect_err(d.run("sim:" + os.path.join(tmp, "absent.sock"), ["report"]), "sim absent",
               "unavailable", "snpsimd")
    # The connection opened to check that snpsimd is there carries the first
    # request; if snpsimd closed it meanwhile, a new one does.
    for drop, want in ((False, 1), (True, 2)):
        path = os.path.join(tmp, f"relay-{int(drop)}.sock")
        relay = Relay(path, sock, drop)
        check_report(d.run("sim:" + path, ["report", "--data", RD_HEX]),
                     f"sim report through a relay (drop_first={drop})", 0, "sim")
        check(relay.count == want, f"sim report: {relay.count} connection(s), want {want}")
        relay.close()
    # NITRIDE_SNP selects the backend when no spec is given.
    r = d.run("-", ["info"], extra_env={"NITRIDE_SNP": spec})
    if expect_ok(r, "NITRIDE_SNP"):
        check(r["kind"] == "sim" and r["spec"] == spec, f"NITRIDE_SNP: {r}")


def key_cases(d, sock, dev, tsm):
    args = ["key", "--fields", "0x9", "--svn", "0"]
    keys = {}
    for name, spec, shim, env in (
            ("sim", "sim:" + sock, False, {}),
            ("sev-guest", "sev-guest:" + dev, True, {}),
            # configfs-tsm has no keys: the tsm backend falls back to
            # /dev/sev-guest, which the shim emulates by default.
            ("tsm", "tsm:" + tsm, True, {"NITRIDE_SHIM_DEVICE": ""})):
        r = d.run(spec, args, shim=shim, extra_env=env)
        if expect_ok(r, f"{name} key"):
            keys[name] = r["key"]
            check(re.fullmatch(r"[0-9a-f]{64}", r["key"]) is not None, f"{name} key hex")
    if len(keys) == 3:
        check(len(set(keys.values())) == 1, f"derived keys differ across backends: {keys}")
    r1 = d.run("sev-guest:" + dev, ["key", "--root", "vmrk", "--fields", "0x9"], shim=True)
    if expect_ok(r1, "sev-guest vmrk key") and "sim" in keys:
        check(r1["key"] != keys["sim"], "VMRK and VCEK keys are equal")
    expect_err(d.run("sev-guest:" + dev, ["key", "--vmpl", "4"], shim=True),
               "sev-guest key vmpl 4", "firmware", "INVALID_PARAM")
    # No device to fall back on.
    if not os.path.exists("/dev/sev-guest"):
        expect_err(d.run("tsm:" + tsm, args, shim=True,
                         extra_env={"NITRIDE_SHIM_DEVICE": dev,
                                    "NITRIDE_SHIM_FAULT": "device-absent"}),
                   "tsm key without device", "unavailable", "no derived keys")


def sevguest_cases(d, dev, nitride, roots, tmp):
    spec = "sev-guest:" + dev
    check_report(d.run(spec, ["report", "--data", RD_HEX, "--vmpl", "2"], shim=True),
                 "sev-guest report", 2, "sev-guest")
    out = os.path.join(tmp, "sevguest-ext.bin")
    r = d.run(spec, ["ext-report", "--data", RD_HEX, "--out", out], shim=True)
    check_ext(r, "sev-guest ext-report", 0, "sev-guest")
    if r.get("ok"):
        retries = r["_stderr"].count("too small")
        # snpsimd's RSA-4096 ARK and ASK alone exceed one page.
        check(r["certs_len"] > 4096, f"table of {r['certs_len']} bytes fits one page: "
              "the retry path is not exercised")
        check(retries == 1, f"sev-guest ext-report: {retries} too-small answers (want 1)")
        check(os.path.getsize(out) == 1184 + r["certs_len"], "ext-report --out size")
        verify(nitride, roots, out, "sev-guest ext-report")
    expect_err(d.run(spec, ["report"], shim=True,
                     extra_env={"NITRIDE_SHIM_FAULT": "device-absent"}),
               "sev-guest device absent", "unavailable", "does not exist",
               "NITRIDE_SNP=sim:")
    r = d.run(spec, ["report", "--data", RD_HEX], shim=True,
              extra_env={"NITRIDE_SHIM_FAULT": "busy:2"})
    check_report(r, "sev-guest busy:2", 0, "sev-guest")
    check(r["_stderr"].count("fault busy") == 2, "busy:2: not two throttled attempts")
    r = d.run(spec, ["ext-report", "--data", RD_HEX], shim=True,
              extra_env={"NITRIDE_SHIM_FAULT": "busy:3"})
    check_ext(r, "sev-guest ext-report busy:3", 0, "sev-guest")
    r = d.run(spec, ["report"], shim=True, extra_env={"NITRIDE_SHIM_FAULT": "busy:20"})
    expect_err(r, "sev-guest busy:20", "busy", "5 attempts", "vmm_error 0x2")
    check(r["_stderr"].count("fault busy") == 5, "busy:20: not exactly 5 attempts")
    expect_err(d.run(spec, ["report"], shim=True, extra_env={"NITRIDE_SHIM_FAULT": "fw-error"}),
               "sev-guest fw-error", "firmware", "fw_error 0x16", "INVALID_PARAM",
               "vmm_error 0x0")
    expect_err(d.run(spec, ["key"], shim=True, extra_env={"NITRIDE_SHIM_FAULT": "fw-error"}),
               "sev-guest key fw-error", "firmware", "SNP_GET_DERIVED_KEY", "fw_error 0x16")
    expect_err(d.run(spec, ["report"], shim=True,
                     extra_env={"NITRIDE_SHIM_FAULT": "vmpck-disabled"}),
               "sev-guest vmpck-disabled", "unavailable", "ENOTTY", "VMPCK is disabled")
    expect_err(d.run(spec, ["report", "--vmpl", "4"], shim=True), "sev-guest vmpl 4",
               "firmware", "0x16 (INVALID_PARAM)")


def tsm_cases(d, tsm, nitride, roots, tmp):
    spec = "tsm:" + tsm
    check_report(d.run(spec, ["report", "--data", RD_HEX, "--vmpl", "3"], shim=True),
                 "tsm report", 3, "tsm")
    out = os.path.join(tmp, "tsm-ext.bin")
    r = d.run(spec, ["ext-report", "--data", RD_HEX, "--out", out], shim=True)
    check_ext(r, "tsm ext-report", 0, "tsm")
    if r.get("ok"):
        verify(nitride, roots, out, "tsm ext-report")
    check(os.listdir(tsm) == [], f"tsm entries left behind: {os.listdir(tsm)}")
    r = d.run(spec, ["report", "--data", RD_HEX], shim=True,
              extra_env={"NITRIDE_SHIM_FAULT": "busy:2"})
    check_report(r, "tsm busy:2", 0, "tsm")
    expect_err(d.run(spec, ["report"], shim=True, extra_env={"NITRIDE_SHIM_FAULT": "busy:20"}),
               "tsm busy:20", "busy", "5 attempts")
    expect_err(d.run(spec, ["report"], shim=True,
                     extra_env={"NITRIDE_SHIM_FAULT": "generation"}),
               "tsm generation", "conflict", "generation went from 0 to 3",
               "wrote 2 times")
    expect_err(d.run(spec, ["report"], shim=True, extra_env={"NITRIDE_SHIM_FAULT": "fw-error"}),
               "tsm fw-error", "firmware", "EIO")
    expect_err(d.run(spec, ["report"], shim=True,
                     extra_env={"NITRIDE_SHIM_FAULT": "vmpck-disabled"}),
               "tsm vmpck-disabled", "unavailable", "VMPCK is disabled")
    expect_err(d.run(spec, ["report"], shim=True,
                     extra_env={"NITRIDE_SHIM_FAULT": "provider-tdx"}),
               "tsm provider", "unavailable", "tdx_guest")
    # configfs-tsm refuses privlevel > 3 itself, before any firmware call.
    expect_err(d.run(spec, ["report", "--vmpl", "4"], shim=True), "tsm vmpl 4", "argument",
               "privlevel 4")
    check(os.listdir(tsm) == [], f"tsm entries left behind after errors: {os.listdir(tsm)}")


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    snpsimd, nitride, driver, shim = sys.argv[1:5]
    tmp = tempfile.mkdtemp(prefix="nitride-guest-")
    proc = None
    skip_shim = False
    try:
        proc, sock = start_snpsimd(snpsimd, os.path.join(tmp, "state"))
        roots = os.path.join(tmp, "roots")
        p = subprocess.run([snpsimd, "--state-dir", os.path.join(tmp, "state"),
                            "--export-roots", roots], capture_output=True, text=True,
                           timeout=120)
        check(p.returncode == 0, f"snpsimd --export-roots: {p.stderr}")
        dev = os.path.join(tmp, "sev-guest")
        tsm = os.path.join(tmp, "tsm")
        os.mkdir(tsm)
        env = dict(os.environ)
        env.pop("NITRIDE_SNP", None)
        env.pop("NITRIDE_SHIM_FAULT", None)
        env.update({"NITRIDE_SHIM_SOCKET": sock, "NITRIDE_SHIM_DEVICE": dev,
                    "NITRIDE_SHIM_TSM_ROOT": tsm})
        preload = sanitizer_preload(driver)
        if preload is None:
            print("SKIP: ldd unavailable, cannot order LD_PRELOAD for the shim")
            skip_shim = True
            preload = []
        d = Driver(driver, shim, preload, env)
        sim_cases(d, sock, tmp)
        if not skip_shim:
            # The shim must really be in the way: without it the path is absent.
            expect_err(d.run("sev-guest:" + dev, ["report"]), "no shim", "unavailable")
            sevguest_cases(d, dev, nitride, roots, tmp)
            tsm_cases(d, tsm, nitride, roots, tmp)
            key_cases(d, sock, dev, tsm)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        fail(f"harness: {e}")
    finally:
        stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    if skip_shim:
        return 77
    print("guest backends: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
