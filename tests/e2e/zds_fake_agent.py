#!/usr/bin/python3
"""zds_fake_agent: a minimal ZDS agent for tests — hello, decode WorkloadRequest, check netns fd, ack.

Listens on a unix SOCK_SEQPACKET socket. For every connection it sends ZdsHello{version},
then answers each WorkloadRequest packet with WorkloadResponse{ack{error}}. Each request is
logged as one JSON line (written before the ack) so a test can check what the plugin sent.
An Add whose fd count is not 1, or whose fd is not the expected netns, is NACKed.
"""
import argparse
import array
import json
import os
import signal
import socket
import sys

KINDS = {1: "add", 2: "del", 3: "snapshot_sent", 5: "keep"}


def varint(buf, i):
    v, shift = 0, 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def fields(buf):
    """Yield (number, wire_type, value) for each field; LEN values are bytes."""
    i = 0
    while i < len(buf):
        tag, i = varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, i = varint(buf, i)
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        if i > len(buf):
            raise ValueError("field past end")
        yield num, wt, val


def decode_request(buf):
    req = {"kind": None, "uid": "", "has_info": False, "name": "", "namespace": "",
           "service_account": ""}
    for num, wt, val in fields(buf):
        if num not in KINDS or wt != 2:
            continue
        req["kind"] = KINDS[num]
        uid_field = 2 if num == 2 else 1
        for n2, w2, v2 in fields(val):
            if n2 == uid_field and w2 == 2:
                req["uid"] = v2.decode()
            elif num == 1 and n2 == 2 and w2 == 2:
                req["has_info"] = True
                for n3, w3, v3 in fields(v2):
                    key = {1: "name", 2: "namespace", 3: "service_account"}.get(n3)
                    if key and w3 == 2:
                        req[key] = v3.decode()
    return req


def encode_len(num, payload):
    out, n = bytearray([(num << 3) | 2]), len(payload)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


def encode_ack(error):
    inner = encode_len(1, error.encode()) if error else b""
    return encode_len(1, inner)


def serve_conn(conn, args, log):
    if args.silent:  # a hung agent: hold the connection, never say hello
        while conn.recv(1):
            pass
        return
    conn.send(bytes([0x08, args.hello_version]))
    while True:
        fds = array.array("i")
        try:
            data, anc, flags, _ = conn.recvmsg(8192, socket.CMSG_SPACE(16 * fds.itemsize))
        except ConnectionResetError:
            return
        if not data:
            return
        for level, ctype, cdata in anc:
            if level == socket.SOL_SOCKET and ctype == socket.SCM_RIGHTS:
                fds.frombytes(cdata[:len(cdata) - (len(cdata) % fds.itemsize)])
        try:
            req = decode_request(data)
        except (ValueError, UnicodeDecodeError) as e:
            req = {"kind": None, "error": str(e)}
        req["nfds"] = len(fds)
        req["netns_match"] = False
        error = args.nack or ""
        if req["kind"] == "add":
            if len(fds) == 1 and args.netns:
                st, want = os.fstat(fds[0]), os.stat(args.netns)
                req["netns_match"] = (st.st_ino, st.st_dev) == (want.st_ino, want.st_dev)
            if not error and not req["netns_match"]:
                error = "netns mismatch: got %d fds, not the expected netns" % len(fds)
        elif req["kind"] is None and not error:
            error = "cannot decode request"
        for fd in fds:
            os.close(fd)
        log.write(json.dumps(req) + "\n")
        log.flush()
        conn.send(encode_ack(error))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--netns", help="path of the netns an Add's fd must refer to")
    ap.add_argument("--nack", help="answer every request with this error")
    ap.add_argument("--hello-version", type=int, default=1)
    ap.add_argument("--silent", action="store_true", help="accept but never send the hello")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # bind under a temporary name and rename once listening: the path appears only when usable
    srv.bind(args.socket + ".tmp")
    srv.listen(16)
    os.rename(args.socket + ".tmp", args.socket)
    try:
        with open(args.log, "a") as log:
            while True:
                conn, _ = srv.accept()
                with conn:
                    serve_conn(conn, args, log)
    finally:
        os.unlink(args.socket)


if __name__ == "__main__":
    main()
