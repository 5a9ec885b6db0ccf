"""Helpers for integration tests that need a running snpsimd.

Start it in a temporary state directory, wait (bounded) for its announcement
line, and always stop it.  Only Unix sockets and 127.0.0.1 are used.
"""
import os
import re
import signal
import subprocess
import tempfile
import time

ANNOUNCE = re.compile(r"^snpsimd: socket (\S+) kds (http://127\.0\.0\.1:\d+)")


class Snpsimd:
    def __init__(self, exe, args=(), state_dir=None):
        self.exe = exe
        self.args = list(args)
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="snpsim-")
            state_dir = self._tmp.name
        self.state_dir = state_dir
        self.proc = None
        self.socket = None
        self.kds = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [self.exe, "--state-dir", self.state_dir] + self.args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = ANNOUNCE.match(line)
            if m:
                self.socket, self.kds = m.group(1), m.group(2)
                return self
        self.stop()
        raise RuntimeError("snpsimd did not announce its socket: "
                           + (self.proc.stderr.read() if self.proc.stderr else ""))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode if self.proc is not None else None

    def __exit__(self, *exc):
        self.stop()
        if self.proc is not None:
            for f in (self.proc.stdout, self.proc.stderr):
                if f:
                    f.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        return False

    def export_roots(self, out_dir):
        subprocess.run([self.exe, "--state-dir", self.state_dir, "--export-roots", out_dir],
                       check=True, capture_output=True, timeout=60)
        return out_dir
