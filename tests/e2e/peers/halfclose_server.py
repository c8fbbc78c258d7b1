#!/usr/bin/python3
"""Test app: reads each connection until EOF, then answers "got <n> bytes sha256=<hex>\\n" and
closes. Proves half-close (the reply can only come after the client's FIN) and byte integrity."""
import argparse
import hashlib
import socket
import socketserver
import sys


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        sock.settimeout(self.server.idle)
        h, n = hashlib.sha256(), 0
        buf = bytearray(1 << 20)
        try:
            while True:
                k = sock.recv_into(buf)
                if k == 0:
                    break
                h.update(memoryview(buf)[:k])
                n += k
            sock.sendall(b"got %d bytes sha256=%s\n" % (n, h.hexdigest().encode()))
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            print("halfclose: %s after %d bytes: %s" % (self.client_address, n, e),
                  file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


class Server6(Server):
    """--bind :: : IPv6 (and IPv4 as ::ffff:a.b.c.d)."""
    address_family = socket.AF_INET6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--idle", type=float, default=60.0, help="per-read timeout, seconds")
    a = ap.parse_args()
    srv = (Server6 if ":" in a.bind else Server)((a.bind, a.port), Handler)
    srv.idle = a.idle
    print("halfclose: listening on %s:%d" % (a.bind, a.port), file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
