#!/usr/bin/python3
"""vhsmd's shared-memory slot from a hostile client that writes raw slot bytes.

usage: test_vhsmd_shm.py VHSMD

Attach refusals (wrong size, unsealed, no descriptor, a plain file,
shared_memory = no), requests and doorbells through the slot both ways, and
slot corruption (a short or oversized length, garbage, bytes changing while
vhsmd copies them): the offending connection is closed, vhsmd stays up and
other clients are served.  One vhsmd per test class in a temp dir, killed in
tearDown/tearDownClass.
"""
import fcntl
import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

VHSMD = os.path.abspath(sys.argv[1])
del sys.argv[1:2]

OP_PING, OP_GENERATE, OP_SIGN = 1, 2, 7
OP_ATTACH, OP_DOORBELL = 23, 24
T_NAME, T_KEY_TYPE, T_DATA, T_STATUS, T_MESSAGE = 1, 2, 6, 14, 15
E_DENIED, E_NOT_FOUND, E_ARGUMENT = 2, 3, 5
KEY_EC_P256 = 4

SLOT = 64 * 1024
CTL = 4096
SIZE = CTL + 2 * SLOT
REQ_OFF, RESP_OFF = CTL, CTL + SLOT
# struct vhsm_shm_ctl: each word on its own 64-byte line.
REQ_SEQ, REQ_LEN, RESP_SEQ, RESP_LEN, SRV_SLEEP, CLI_SLEEP = 0, 4, 64, 68, 128, 192


def frame(op, rid, body=b""):
    return b"VHSM" + struct.pack("<BBHII", 1, op, 0, rid, len(body)) + body


def tlv(tag, value):
    return struct.pack("<HI", tag, len(value)) + value


def parse_tlvs(body):
    out, off = {}, 0
    while off < len(body):
        tag, ln = struct.unpack("<HI", body[off:off + 6])
        out[tag] = body[off + 6:off + 6 + ln]
        off += 6 + ln
    return out


def recv_frame(s):
    buf = b""
    while len(buf) < 16:
        chunk = s.recv(16 - len(buf))
        if not chunk:
            return None
        buf += chunk
    (blen,) = struct.unpack("<I", buf[12:16])
    while len(buf) < 16 + blen:
        chunk = s.recv(16 + blen - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def status_of(fr):
    (st,) = struct.unpack("<I", parse_tlvs(fr[16:])[T_STATUS])
    return st


def make_memfd(size=SIZE, seals=fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW):
    fd = os.memfd_create("test-slot", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seals:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
    return fd


class Slot:
    """A raw client: a Unix connection and (after attach) its mapped slot."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        self.m = None
        self.seq = 0
        self.resp_seen = 0

    def attach(self, fd=None, send_fd=True):
        """Send VHSM_OP_SHM_ATTACH (with fd, default a good memfd); the status."""
        own = fd is None
        if own:
            fd = make_memfd()
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))] if send_fd else []
        self.s.sendmsg([frame(OP_ATTACH, 0)], anc)
        fr = recv_frame(self.s)
        assert fr is not None and fr[5] == 0x80 | OP_ATTACH, fr
        st = status_of(fr)
        if st == 0:
            self.m = mmap.mmap(fd, SIZE)
        if own:
            os.close(fd)
        return st

    def put(self, off, value):
        self.m[off:off + 4] = struct.pack("<I", value)

    def get(self, off):
        return struct.unpack("<I", self.m[off:off + 4])[0]

    def publish(self, raw, length=None, ring=True):
        self.m[REQ_OFF:REQ_OFF + len(raw)] = raw
        self.put(REQ_LEN, len(raw) if length is None else length)
        self.bump(ring)

    def bump(self, ring=True):
        """Publish what the slot holds; ring if vhsmd sleeps (as libvhsm does)."""
        self.seq += 1
        self.put(REQ_SEQ, self.seq)
        if ring and self.get(SRV_SLEEP):
            try:
                self.s.sendall(frame(OP_DOORBELL, 0))
            except OSError:
                pass  # closed already (the corruption tests)

    def wait_answer(self, timeout=20):
        """The next answer in the response slot (polled; vhsmd busy-polls)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            seq = self.get(RESP_SEQ)
            if seq != self.resp_seen:
                self.resp_seen = seq
                n = self.get(RESP_LEN)
                return bytes(self.m[RESP_OFF:RESP_OFF + n])
            time.sleep(0.0005)
        raise AssertionError("no answer in the slot")

    def call(self, op, rid, body=b""):
        self.publish(frame(op, rid, body))
        return self.wait_answer()

    def closed(self, timeout=20):
        """True if vhsmd closed the connection (after a doorbell, if asked)."""
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(4096)
                if not chunk:
                    return True
        except (socket.timeout, ConnectionResetError):
            return False

    def close(self):
        if self.m is not None:
            self.m.close()
        self.s.close()


class ShmTest(unittest.TestCase):
    busy_poll_us = 100
    shared_memory = "yes"

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="vhsmd-shm-")
        cls.sock = os.path.join(cls.dir, "vhsmd.sock")
        policy = os.path.join(cls.dir, "policy.json")
        with open(policy, "w") as f:
            json.dump({"version": 1, "rules": [
                {"principal": {"uid": os.getuid()}, "keys": ["t/*"], "operations": ["*"]}]}, f)
        cfg = os.path.join(cls.dir, "vhsmd.ini")
        with open(cfg, "w") as f:
            f.write(f"""[vhsmd]
socket = {cls.sock}
policy = {policy}
state_dir = {cls.dir}/state
secure_heap_size = 1048576
busy_poll_us = {cls.busy_poll_us}
shared_memory = {cls.shared_memory}
[sealing]
store = none
""")
        cls.log = open(os.path.join(cls.dir, "vhsmd.log"), "w+")
        cls.daemon = subprocess.Popen([VHSMD, "--config", cfg], stderr=cls.log)
        deadline = time.time() + 30
        while not os.path.exists(cls.sock):
            if time.time() > deadline or cls.daemon.poll() is not None:
                raise AssertionError("vhsmd did not start")
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.send_signal(signal.SIGTERM)
        try:
            cls.daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cls.daemon.kill()
            cls.daemon.wait(timeout=10)
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()
        self.assertIsNone(self.daemon.poll(), "vhsmd died")

    def client(self):
        c = Slot(self.sock)
        self.clients.append(c)
        return c

    def socket_ping(self, c, rid=77):
        c.s.sendall(frame(OP_PING, rid))
        fr = recv_frame(c.s)
        self.assertIsNotNone(fr)
        self.assertEqual(fr[5], 0x80 | OP_PING)
        self.assertEqual(struct.unpack("<I", fr[8:12])[0], rid)
        self.assertEqual(status_of(fr), 0)


class AttachTest(ShmTest):
    def test_refusals_keep_the_connection(self):
        c = self.client()
        bad = [
            (make_memfd(SIZE - 4096), True),  # wrong size
            (make_memfd(SIZE + 4096), True),
            (make_memfd(seals=0), True),  # not sealed
            (make_memfd(seals=fcntl.F_SEAL_SHRINK), True),  # may grow
            (None, False),  # no descriptor at all
        ]
        with tempfile.TemporaryFile(dir=self.dir) as f:  # a plain file of the right size
            f.truncate(SIZE)
            bad.append((os.dup(f.fileno()), True))
        for fd, send in bad:
            st = c.attach(fd if fd is not None else make_memfd(), send_fd=send)
            self.assertEqual(st, E_ARGUMENT)
            if fd is not None:
                os.close(fd)
            self.socket_ping(c)
        self.assertIsNone(c.m)
        # Then a good one, and not a second.
        self.assertEqual(c.attach(), 0)
        self.assertEqual(c.attach(), E_ARGUMENT)
        fr = c.call(OP_PING, 5)
        self.assertEqual((fr[5], struct.unpack("<I", fr[8:12])[0], status_of(fr)),
                         (0x80 | OP_PING, 5, 0))

    def test_slot_requests_like_socket_requests(self):
        c = self.client()
        self.assertEqual(c.attach(), 0)
        fr = c.call(OP_GENERATE, 1, tlv(T_NAME, b"t/k") + tlv(T_KEY_TYPE, struct.pack("<I", KEY_EC_P256)))
        self.assertEqual(status_of(fr), 0)
        fr = c.call(OP_SIGN, 2, tlv(T_NAME, b"t/k") + tlv(T_DATA, b"msg"))
        self.assertEqual(status_of(fr), 0)
        self.assertIn(8, parse_tlvs(fr[16:]))  # a signature
        # The same errors, same text, as on the socket.
        for name, err in ((b"t/none", E_NOT_FOUND), (b"x/k", E_DENIED)):
            req = tlv(T_NAME, name) + tlv(T_DATA, b"msg")
            via_slot = c.call(OP_SIGN, 3, req)
            c.s.sendall(frame(OP_SIGN, 3, req))
            via_socket = recv_frame(c.s)
            self.assertEqual(status_of(via_slot), err)
            self.assertEqual(via_slot, via_socket)
        # An answer too large for the slot comes over the socket.
        c.publish(frame(15, 9, tlv(13, struct.pack("<I", 65536))))  # RANDOM 64 KiB
        fr = recv_frame(c.s)
        self.assertEqual((fr[5], status_of(fr), len(parse_tlvs(fr[16:])[T_DATA])),
                         (0x80 | 15, 0, 65536))
        # A request in the slot and one on the socket at once: both answered.
        c.s.sendall(frame(OP_PING, 11))
        fr = c.call(OP_PING, 10)
        self.assertEqual(struct.unpack("<I", fr[8:12])[0], 10)
        fr = recv_frame(c.s)
        self.assertEqual(struct.unpack("<I", fr[8:12])[0], 11)

    def test_doorbell_to_a_sleeping_client(self):
        c = self.client()
        self.assertEqual(c.attach(), 0)
        c.put(CLI_SLEEP, 1)
        c.publish(frame(OP_PING, 4))
        fr = recv_frame(c.s)  # the doorbell, then the answer is in the slot
        self.assertEqual((fr[5], len(fr)), (0x80 | OP_DOORBELL, 16))
        fr = c.wait_answer(timeout=1)
        self.assertEqual(struct.unpack("<I", fr[8:12])[0], 4)
        # Awake: no doorbell.
        c.put(CLI_SLEEP, 0)
        c.call(OP_PING, 6)
        c.s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            c.s.recv(16)

    def corrupt(self, do):
        """Run do(client) on an attached client: vhsmd must close it and go on
        serving another attached client."""
        other = self.client()
        self.assertEqual(other.attach(), 0)
        c = self.client()
        self.assertEqual(c.attach(), 0)
        do(c)
        self.assertTrue(c.closed())
        self.assertIsNone(self.daemon.poll())
        fr = other.call(OP_PING, 1)
        self.assertEqual(status_of(fr), 0)
        self.socket_ping(other)

    def test_short_length(self):
        self.corrupt(lambda c: c.publish(frame(OP_PING, 1), length=5))

    def test_length_beyond_slot(self):
        self.corrupt(lambda c: c.publish(frame(OP_PING, 1), length=SLOT + 1))

    def test_huge_length(self):
        self.corrupt(lambda c: c.publish(frame(OP_PING, 1), length=0xFFFFFFFF))

    def test_length_longer_than_frame(self):
        self.corrupt(lambda c: c.publish(frame(OP_PING, 1), length=64))

    def test_garbage(self):
        self.corrupt(lambda c: c.publish(os.urandom(200)))

    def test_bad_tlv(self):
        self.corrupt(lambda c: c.publish(frame(OP_PING, 1, b"\x01\x00\xff\xff\x00\x00")))

    def test_transport_message_in_slot(self):
        self.corrupt(lambda c: c.publish(frame(OP_DOORBELL, 0)))

    def test_bytes_change_while_copied(self):
        def do(c):
            stop = threading.Event()

            def scribble():
                good = frame(OP_PING, 1)
                while not stop.is_set():
                    c.m[REQ_OFF:REQ_OFF + 16] = os.urandom(16)
                    c.m[REQ_OFF:REQ_OFF + 16] = good
            t = threading.Thread(target=scribble)
            t.start()
            try:
                # Requests keep coming until one copy is garbage; each one
                # either answers a ping or closes the connection.
                for _ in range(100000):
                    c.put(REQ_LEN, 16)
                    c.bump()
                    c.s.settimeout(0)
                    try:
                        if c.s.recv(1, socket.MSG_PEEK) == b"":
                            break
                    except BlockingIOError:
                        pass
                    time.sleep(0.0002)
            finally:
                stop.set()
                t.join()
        self.corrupt(do)


class SleepingDaemonTest(ShmTest):
    """busy_poll_us = 0: vhsmd sleeps in poll() every turn; a slot request
    reaches it only through a doorbell when its flag says it sleeps."""
    busy_poll_us = 0

    def wait_asleep(self, c):
        deadline = time.time() + 20
        while c.get(SRV_SLEEP) != 1:
            self.assertLess(time.time(), deadline, "vhsmd never said it sleeps")
            time.sleep(0.01)

    def test_doorbell_wakes_the_daemon(self):
        c = self.client()
        self.assertEqual(c.attach(), 0)
        self.wait_asleep(c)
        for rid in range(1, 50):
            c.publish(frame(OP_PING, rid))
            fr = c.wait_answer()
            self.assertEqual(struct.unpack("<I", fr[8:12])[0], rid)

    def test_without_doorbell_no_answer(self):
        # The flag is what a client must honour: a request published without
        # ringing waits (until something else wakes vhsmd).
        c = self.client()
        self.assertEqual(c.attach(), 0)
        self.wait_asleep(c)
        c.publish(frame(OP_PING, 1), ring=False)
        time.sleep(0.3)
        self.assertEqual(c.get(RESP_SEQ), 0)
        c.s.sendall(frame(OP_DOORBELL, 0))
        self.assertEqual(struct.unpack("<I", c.wait_answer()[8:12])[0], 1)


class DisabledTest(ShmTest):
    shared_memory = "no"

    def test_attach_refused(self):
        c = self.client()
        self.assertEqual(c.attach(), E_ARGUMENT)
        self.socket_ping(c)


if __name__ == "__main__":
    unittest.main(verbosity=2)
