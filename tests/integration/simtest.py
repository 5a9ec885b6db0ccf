"""Helpers for integration tests that need a running snpsimd.

Start it in a temporary state directory, wait (bounded) for its announcement
line, and always stop it.  Only Unix sockets and 127.0.0.1 are used.
"""
import socket
import struct
import re
import signal
import ssl
import subprocess
import tempfile
import threading
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
        self.log_tail = []
        self._drainer = None

    def _drain(self):
        # snpsimd logs a line per request on stderr: read it all the time, or
        # a long run fills the pipe (64 KiB) and snpsimd blocks in its log
        # call.  The last lines are kept for error messages.
        for line in self.proc.stderr:
            self.log_tail.append(line)
            del self.log_tail[:-50]

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
                self._drainer = threading.Thread(target=self._drain, daemon=True)
                self._drainer.start()
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
        if self._drainer is not None:
            self._drainer.join(10)  # snpsimd has exited: its stderr ends
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


def stop(p):
    """SIGTERM, then SIGKILL after 10 s: a daemon never outlives its test."""
    if p is not None and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def closed_port():
    """A loopback port nobody listens on (bound once, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# The vHSM wire format (docs/vhsm-protocol.md), for tests that stand between
# vhsmd and nitrided: 16-byte header (length at 12), then TLVs (u16 tag, u32 len).
def tlvs(body):
    out, off = [], 0
    while off < len(body):
        tag, ln = struct.unpack("<HI", body[off:off + 6])
        out.append([tag, body[off + 6:off + 6 + ln]])
        off += 6 + ln
    return out


def pack(hdr, items):
    body = b"".join(struct.pack("<HI", t, len(v)) + v for t, v in items)
    return hdr[:12] + struct.pack("<I", len(body)) + body


def recv_frame(s):
    buf = b""
    while len(buf) < 16:
        c = s.recv(16 - len(buf))
        if not c:
            return None
        buf += c
    (n,) = struct.unpack("<I", buf[12:16])
    while len(buf) < 16 + n:
        c = s.recv(16 + n - len(buf))
        if not c:
            return None
        buf += c
    return buf


def tls_reply_records(url, cafile, request, timeout=10):
    """Sends one raw HTTP/1.1 request over TLS to url (https://host:port) and
    returns (records, reply): how many TLS records carried bytes of the reply,
    and the reply itself.  The records are read off the socket one by one and
    fed to an in-memory TLS object, so a reply split over several records (and
    several writes by the server) shows as records > 1.  Records that carry no
    application data (TLS 1.3 session tickets) are not counted.  Every loop is
    bounded and every receive times out."""
    host, port = url[len("https://"):].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=cafile)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=host)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    raw = b""

    def record():
        nonlocal raw
        while len(raw) < 5 or len(raw) < 5 + struct.unpack(">H", raw[3:5])[0]:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed inside a TLS record")
            raw += chunk
        n = 5 + struct.unpack(">H", raw[3:5])[0]
        rec, raw = raw[:n], raw[n:]
        return rec

    try:
        for _ in range(32):  # a TLS 1.2 or 1.3 handshake takes a few flights
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(out.read())
                inc.write(record())
        else:
            raise ConnectionError("no TLS handshake in 32 records")
        sock.sendall(out.read())
        tls.write(request)
        sock.sendall(out.read())
        reply, records = b"", 0
        for _ in range(64):  # bounded: a small reply takes one or two
            inc.write(record())
            got = b""
            while True:
                try:
                    got += tls.read(65536)
                except ssl.SSLWantReadError:
                    break
            if got:
                records += 1
                reply += got
            head, sep, body = reply.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                return records, reply
        raise ConnectionError("no complete reply in 64 records")
    finally:
        sock.close()
