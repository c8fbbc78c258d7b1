#!/usr/bin/python3
"""Test app: echoes every byte of each connection until EOF, then closes its side. PORT."""
import socket, socketserver, sys
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                d = self.request.recv(65536)
            except OSError:
                return
            if not d:
                break
            self.request.sendall(d)
        try:
            self.request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
