#!/usr/bin/python3
"""fake_istio_cni: istio-cni's side of ZDS (the node agent serving ztunnel), driven by a command file.

Listens on a unix SOCK_SEQPACKET socket, accepts ztunnel, reads its ZdsHello (version must be 1),
then runs the commands the test appends to --commands, one per line, in order:
  add UID NAMESPACE NAME NETNS_PATH   AddWorkload with the netns fd (SCM_RIGHTS)
  add-nofd UID NAMESPACE NAME         AddWorkload without an fd (must be NACKed)
  keep UID / del UID / snapshot       KeepWorkload / DelWorkload / SnapshotSent
  raw HEX                             arbitrary bytes as one message
  stop / start                        close connection and listener (istio-cni gone) / listen again
Each request waits for a connection (10 s) and for the Ack (5 s) and logs one line to --log:
  "ack KIND UID ok" or "ack KIND UID nack: TEXT"; connections log "hello version=N".
Protobuf bytes are written by hand (varints and length-delimited fields).
"""
import argparse
import os
import select
import signal
import socket
import sys
import time


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(num, payload):
    """A length-delimited field (wire type 2)."""
    return varint((num << 3) | 2) + varint(len(payload)) + payload


def string(num, s):
    return field(num, s.encode()) if s else b""


def add_request(uid, namespace, name):
    info = string(1, name) + string(2, namespace)
    return field(1, string(1, uid) + field(2, info))     # WorkloadRequest.add


def read_varint(buf, i):
    v, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        v |= (buf[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not buf[i - 1] & 0x80:
            return v, i


def fields(buf):
    i = 0
    while i < len(buf):
        tag, i = read_varint(buf, i)
        if tag & 7 == 0:
            val, i = read_varint(buf, i)
        elif tag & 7 == 2:
            n, i = read_varint(buf, i)
            val, i = buf[i:i + n], i + n
            if i > len(buf):
                raise ValueError("field past end")
        else:
            raise ValueError("unexpected wire type %d" % (tag & 7))
        yield tag >> 3, val


def decode_ack(buf):
    """WorkloadResponse{ack=1{error=1}} -> error text ('' for a positive ack)."""
    error = None
    for num, val in fields(buf):
        if num == 1 and isinstance(val, bytes):
            error = ""
            for n2, v2 in fields(val):
                if n2 == 1 and isinstance(v2, bytes):
                    error = v2.decode(errors="replace")
    if error is None:
        raise ValueError("no ack in response")
    return error


class FakeIstioCni:
    def __init__(self, path, log):
        self.path, self.log = path, log
        self.srv = self.conn = None

    def say(self, line):
        self.log.write(line + "\n")
        self.log.flush()

    def start(self):
        tmp = self.path + ".tmp"
        if os.path.exists(tmp):
            os.unlink(tmp)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.srv.bind(tmp)
        self.srv.listen(4)
        os.rename(tmp, self.path)   # the path appears only once it accepts
        self.say("listening")

    def stop(self):
        for s in (self.conn, self.srv):
            if s:
                s.close()
        self.conn = self.srv = None
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.say("stopped")

    def connection(self):
        if self.conn:
            return self.conn
        if not self.srv:
            raise RuntimeError("not listening")
        self.srv.settimeout(10)
        self.conn, _ = self.srv.accept()
        self.conn.settimeout(5)
        hello = self.conn.recv(64)
        version = 0
        for num, val in fields(hello):
            if num == 1 and isinstance(val, int):
                version = val
        self.say("hello version=%d" % version)
        if version != 1:
            raise RuntimeError("ZdsHello version %d, want 1" % version)
        return self.conn

    def accept_pending(self):
        if not self.conn and self.srv and select.select([self.srv], [], [], 0)[0]:
            self.connection()

    def request(self, kind, uid, payload, fds=()):
        conn = self.connection()
        if fds:
            socket.send_fds(conn, [payload], list(fds))
        else:
            conn.send(payload)
        try:
            error = decode_ack(conn.recv(8192))
        except (ValueError, OSError) as e:
            self.say("ack %s %s broken: %s" % (kind, uid, e))
            return
        self.say("ack %s %s %s" % (kind, uid, "ok" if error == "" else "nack: " + error))

    def run(self, words):
        cmd, args = words[0], words[1:]
        if cmd == "add":
            uid, ns, name, netns = args
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.request("add", uid, add_request(uid, ns, name), [fd])
            finally:
                os.close(fd)
        elif cmd == "add-nofd":
            self.request("add", args[0], add_request(*args[:3]))
        elif cmd == "keep":
            self.request("keep", args[0], field(5, string(1, args[0])))
        elif cmd == "del":
            self.request("del", args[0], field(2, string(2, args[0])))
        elif cmd == "snapshot":
            self.request("snapshot", "-", field(3, b""))
        elif cmd == "raw":
            self.request("raw", "-", bytes.fromhex(args[0]))
        elif cmd == "reconnect":   # the agent dropped the session: take its next one
            if self.conn:
                self.conn.close()
            self.conn = None
            self.connection()
        elif cmd == "add-noinfo":
            uid, netns = args
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.request("add", uid, field(1, string(1, uid)), [fd])
            finally:
                os.close(fd)
        elif cmd == "stop":
            self.stop()
        elif cmd == "start":
            self.start()
        else:
            raise RuntimeError("unknown command %r" % cmd)


def commands(path):
    """Yields the lines appended to path, waiting for more (the test writes as it goes)."""
    with open(path) as f:
        pending = ""
        while True:
            chunk = f.readline()
            if not chunk:
                yield None
                time.sleep(0.02)
                continue
            pending += chunk
            if pending.endswith("\n"):
                line, pending = pending.strip(), ""
                if line and not line.startswith("#"):
                    yield line


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    open(args.commands, "a").close()
    with open(args.log, "a") as log:
        cni = FakeIstioCni(args.socket, log)
        cni.start()
        try:
            for line in commands(args.commands):
                try:
                    if line is None:    # idle: take ztunnel's connection as soon as it comes
                        cni.accept_pending()
                        continue
                    cni.say("> " + line)
                    cni.run(line.split())
                except (OSError, RuntimeError, ValueError) as e:
                    cni.say("error %s: %s" % (line or "accept", e))
                    if cni.conn:
                        cni.conn.close()
                        cni.conn = None
        finally:
            cni.stop()


if __name__ == "__main__":
    main()
