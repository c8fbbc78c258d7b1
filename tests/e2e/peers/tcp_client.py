#!/usr/bin/python3
"""Test client for halfclose_server.py: sends a payload, shuts down its write side
(shutdown(SHUT_WR)), reads the reply until EOF and checks it is exactly
"got <n> bytes sha256=<hex of what was sent>". With --parallel K, K connections at once,
each with its own random payload. Prints one summary line; exit 0 only if all replies match."""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time


def one(addr, payload_iter, timeout):
    """payload_iter yields chunks; returns (ok, message)."""
    h, n = hashlib.sha256(), 0
    try:
        s = socket.create_connection(addr, timeout=timeout)
    except OSError as e:
        return False, "connect: %s" % e
    try:
        s.settimeout(timeout)
        for chunk in payload_iter:
            h.update(chunk)
            n += len(chunk)
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            k = s.recv(4096)
            if not k:
                break
            reply += k
            if len(reply) > 4096:
                break
    except OSError as e:
        return False, "after sending %d bytes: %s" % (n, e)
    finally:
        s.close()
    want = b"got %d bytes sha256=%s\n" % (n, h.hexdigest().encode())
    if reply != want:
        return False, "reply %r, want %r" % (reply[:200], want)
    return True, reply.decode().strip()


def file_chunks(path):
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return
            yield b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr", help="ip:port or [v6]:port of a halfclose_server")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--send-file")
    g.add_argument("--send-bytes", type=int)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    host, _, port = a.addr.rpartition(":")
    addr = (host.strip("[]"), int(port))
    start = time.monotonic()
    if a.send_file:
        ok, msg = one(addr, file_chunks(a.send_file), a.timeout)
        print(("ok " if ok else "FAIL ") + msg, flush=True)
        print("elapsed %.1fs" % (time.monotonic() - start), file=sys.stderr)
        return 0 if ok else 1
    results = [None] * a.parallel
    barrier = threading.Barrier(a.parallel)

    def worker(i):
        payload = os.urandom(a.send_bytes)
        try:
            barrier.wait(timeout=a.timeout)
        except threading.BrokenBarrierError:
            pass
        results[i] = one(addr, iter([payload]), a.timeout)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bad = [(i, r[1]) for i, r in enumerate(results) if not r or not r[0]]
    for i, msg in bad[:10]:
        print("FAIL connection %d: %s" % (i, msg), flush=True)
    good = a.parallel - len(bad)
    print("%s %d/%d connections got the right reply (%.1fs)" % (
        "ok" if not bad else "FAIL", good, a.parallel, time.monotonic() - start), flush=True)
    if a.parallel == 1 and not bad:
        print(results[0][1])
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
