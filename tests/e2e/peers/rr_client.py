#!/usr/bin/python3
"""Request/response client for echo_server.py: --exchanges N random messages (--size bytes)
on one connection, then --fresh M new connections of one exchange each; every echo must match
what was sent. Prints one summary line; exit 0 only if all matched within --timeout."""
import argparse
import os
import socket
import sys
import time


def exchange(s, size):
    msg = os.urandom(size)
    s.sendall(msg)
    got = b""
    while len(got) < size:
        k = s.recv(size - len(got))
        if not k:
            raise OSError("closed after %d of %d bytes" % (len(got), size))
        got += k
    if got != msg:
        raise OSError("echo differs from what was sent")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--exchanges", type=int, default=200)
    ap.add_argument("--fresh", type=int, default=20)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    host, _, port = a.addr.rpartition(":")
    addr = (host, int(port))
    start, done = time.monotonic(), 0
    try:
        with socket.create_connection(addr, timeout=a.timeout) as s:
            for _ in range(a.exchanges):
                exchange(s, a.size)
                done += 1
        for _ in range(a.fresh):
            with socket.create_connection(addr, timeout=a.timeout) as s:
                exchange(s, a.size)
                done += 1
    except OSError as e:
        print("FAIL after %d exchanges: %s" % (done, e), flush=True)
        return 1
    print("ok exchanges=%d elapsed=%.2fs" % (done, time.monotonic() - start), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
