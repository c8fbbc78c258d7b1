#!/usr/bin/env python3
"""Broken gRPC servers for client robustness tests: one h2c listener per mode on consecutive
ports from --base-port (the order of MODES). Each answers every request in its broken way.

  garbage       random bytes instead of HTTP/2, then close
  http1         an HTTP/1.1 400 reply, then close
  truncated     200 application/grpc, half a message, then the TCP connection is cut
  truncated-end 200 application/grpc, half a message, then trailers grpc-status 0
  html          200 text/html with a page
  http503       503 text/plain
  huge          a message prefix announcing 4 GiB
  nostatus      a whole message, then END_STREAM without trailers
  badframe      a DATA frame on stream 0 (connection protocol error)
  reset         RST_STREAM on the request
  silent        never answers
  compressed    a message flagged compressed (not negotiated)
"""
import argparse
import os
import socket
import struct
import threading

import h2.config
import h2.connection
import h2.events

MODES = ["garbage", "http1", "truncated", "truncated-end", "html", "http503", "huge",
         "nostatus", "badframe", "reset", "silent", "compressed"]


def respond(mode, conn, sock, sid):
    grpc_hdr = [(":status", "200"), ("content-type", "application/grpc")]
    if mode in ("truncated", "truncated-end"):
        conn.send_headers(sid, grpc_hdr)
        conn.send_data(sid, struct.pack(">BI", 0, 100) + b"x" * 10)
        if mode == "truncated-end":
            conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        sock.sendall(conn.data_to_send())
        return mode == "truncated"
    if mode == "html":
        conn.send_headers(sid, [(":status", "200"), ("content-type", "text/html")])
        conn.send_data(sid, b"<html>not grpc</html>", end_stream=True)
    elif mode == "http503":
        conn.send_headers(sid, [(":status", "503"), ("content-type", "text/plain")])
        conn.send_data(sid, b"upstream unavailable", end_stream=True)
    elif mode == "huge":
        conn.send_headers(sid, grpc_hdr)
        conn.send_data(sid, struct.pack(">BI", 0, 0xFFFFFFF0) + b"x" * 64)
    elif mode == "nostatus":
        conn.send_headers(sid, grpc_hdr)
        conn.send_data(sid, struct.pack(">BI", 0, 3) + b"abc", end_stream=True)
    elif mode == "compressed":
        conn.send_headers(sid, grpc_hdr)
        conn.send_data(sid, struct.pack(">BI", 1, 3) + b"abc")
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    elif mode == "reset":
        conn.reset_stream(sid, error_code=2)
    elif mode == "badframe":
        sock.sendall(conn.data_to_send() + struct.pack(">I", 8)[1:] + b"\x00\x00" +
                     struct.pack(">I", 0) + b"\x00" * 8)
        return True
    sock.sendall(conn.data_to_send())
    return False


def serve_h2(mode, sock):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    while True:
        data = sock.recv(65536)
        if not data:
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded) and mode != "silent":
                if respond(mode, conn, sock, ev.stream_id):
                    return
        sock.sendall(conn.data_to_send())


def handle(mode, sock):
    try:
        if mode == "garbage":
            sock.recv(1024)
            sock.sendall(os.urandom(200))
        elif mode == "http1":
            sock.recv(1024)
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        else:
            serve_h2(mode, sock)
    except Exception as e:  # a client that gives up is fine
        print(f"{mode}: {e!r}", flush=True)
    finally:
        # half-close and drain, so unread client bytes do not turn our close into a RST that
        # could discard what we sent before the client reads it
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(2)
            while sock.recv(65536):
                pass
        except OSError:
            pass
        sock.close()


def listen(mode, host, port):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(16)
    while True:
        s, _ = ls.accept()
        threading.Thread(target=handle, args=(mode, s), daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--base-port", type=int, default=16000)
    args = p.parse_args()
    threads = []
    for i, mode in enumerate(MODES):
        t = threading.Thread(target=listen, args=(mode, args.host, args.base_port + i),
                             daemon=True)
        t.start()
        threads.append(t)
    print("ready " + " ".join(f"{m}={args.base_port + i}" for i, m in enumerate(MODES)),
          flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
