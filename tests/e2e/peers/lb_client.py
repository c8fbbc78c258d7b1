#!/usr/bin/python3
"""Load-balancing probe: opens --count TCP connections to --connect (--parallel at a time),
sends a line, reads the whoami_server.py answer until EOF and counts its server= names.
Prints "<name> <count>" per server (and "failed <n>"), sorted by name."""
import argparse
import collections
import socket
import threading


def one(addr, timeout):
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"hi\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode("latin-1").splitlines():
        if line.startswith("server="):
            return line[7:]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True, help="ip:port")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    host, _, port = a.connect.rpartition(":")
    counts = collections.Counter()
    lock = threading.Lock()
    todo = iter(range(a.count))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            name = one((host, int(port)), a.timeout)
            with lock:
                counts[name or "failed"] += 1

    threads = [threading.Thread(target=worker) for _ in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts.setdefault("failed", 0)
    for name in sorted(counts):
        print(name, counts[name])


if __name__ == "__main__":
    main()
