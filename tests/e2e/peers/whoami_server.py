#!/usr/bin/python3
"""Test app: answers each TCP connection with the peer address it sees.

Plain clients get "peer=<ip>:<port>\\nserver=<name>\\n" and a close. If the first bytes look like
an HTTP request ("GET ", "HEAD", "POST"), it reads the request head and answers HTTP/1.0 200 with
that body plus "path=<path>\\n" (so a marker in the URL travels back in the response).
"""
import argparse
import socket
import socketserver
import sys

HTTP_METHODS = (b"GET ", b"HEAD", b"POST", b"PUT ")


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        ip, port = self.client_address[:2]
        body = "peer=%s:%d\nserver=%s\n" % (ip, port, self.server.name)
        first = b""
        sock.settimeout(self.server.wait)
        try:
            first = sock.recv(4, socket.MSG_PEEK)
        except (socket.timeout, OSError):
            first = b""
        sock.settimeout(10)
        try:
            if first[:4] in HTTP_METHODS:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                line = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
                parts = line.split(" ")
                path = parts[1] if len(parts) > 1 else "-"
                body += "path=%s\n" % path
                data = body.encode()
                resp = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                resp += b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data)
                if not line.startswith("HEAD"):
                    resp += data
                sock.sendall(resp)
            else:
                sock.sendall(body.encode())
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            print("whoami: %s:%d: %s" % (ip, port, e), file=sys.stderr)
        print("whoami: served %s:%d" % (ip, port), file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


class Server6(Server):
    """--bind :: (or another IPv6 address): IPv6, and IPv4 as ::ffff:a.b.c.d on [::]."""
    address_family = socket.AF_INET6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--name", default=socket.gethostname())
    ap.add_argument("--wait", type=float, default=0.3,
                    help="seconds to wait for a request before answering a plain client")
    a = ap.parse_args()
    srv = (Server6 if ":" in a.bind else Server)((a.bind, a.port), Handler)
    srv.name = a.name
    srv.wait = a.wait
    print("whoami: listening on %s:%d" % (a.bind, a.port), file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
