#!/usr/bin/python3
"""PROXY protocol v2 receiver, standing for an app with an application tunnel: on each
connection it parses the v2 header (signature, PROXY command, TCP over IPv4/IPv6, TLVs) and
answers "proxy src=<ip:port> dst=<ip:port> identity=<TLV 0xD0> peer=<socket peer>" and the
first line of what followed, then closes. A connection without a valid header gets
"no proxy header"."""
import argparse
import socket
import socketserver
import struct
import sys

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def parse(sock):
    head = recv_exact(sock, 16)
    if head[:12] != SIG or head[12] != 0x21:
        return None
    fam, length = head[13], struct.unpack("!H", head[14:16])[0]
    body = recv_exact(sock, length)
    if fam == 0x11:
        src = socket.inet_ntop(socket.AF_INET, body[0:4])
        dst = socket.inet_ntop(socket.AF_INET, body[4:8])
        sp, dp = struct.unpack("!HH", body[8:12])
        rest = body[12:]
        fmt = "%s:%d"
    elif fam == 0x21:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16])
        dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
        sp, dp = struct.unpack("!HH", body[32:36])
        rest = body[36:]
        fmt = "[%s]:%d"
    else:
        return None
    identity = "-"
    while len(rest) >= 3:
        t, l = rest[0], struct.unpack("!H", rest[1:3])[0]
        if t == 0xD0:
            identity = rest[3:3 + l].decode("utf-8", "replace")
        rest = rest[3 + l:]
    return fmt % (src, sp), fmt % (dst, dp), identity


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(10)
        peer = "%s:%d" % self.client_address[:2]
        try:
            got = parse(s)
            if not got:
                s.sendall(b"no proxy header\n")
                return
            line = b""
            while b"\n" not in line and len(line) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                line += chunk
            msg = "proxy src=%s dst=%s identity=%s peer=%s\nfirst=%s\n" % (
                got[0], got[1], got[2], peer, line.split(b"\r\n")[0].decode("latin-1"))
            print("ppv2: " + msg.replace("\n", " "), file=sys.stderr, flush=True)
            s.sendall(msg.encode())
        except (OSError, EOFError) as e:
            print("ppv2: %s: %s" % (peer, e), file=sys.stderr, flush=True)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=15088)
    a = ap.parse_args()
    srv = Server((a.bind, a.port), Handler)
    print("ppv2: listening on %s:%d" % (a.bind, a.port), file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
