#!/usr/bin/python3
"""Sends raw bytes to a TCP port, then waits (without sending more) for the peer to close.
Exit 0 if the peer closed (EOF or reset) within --timeout, 1 if the connection is still open,
2 if the connect failed. Prints how long the close took."""
import argparse
import os
import socket
import sys
import time

# The first 10 bytes of a TLS ClientHello: record header (handshake, TLS 1.0 record version,
# length 512), handshake type client_hello, length 508, then the client version's first byte.
CLIENT_HELLO_PREFIX = bytes.fromhex("16030102000100 01fc 03".replace(" ", ""))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--random", type=int, help="send this many random bytes")
    g.add_argument("--client-hello-prefix", action="store_true",
                   help="send the first 10 bytes of a ClientHello, then stall")
    ap.add_argument("--timeout", type=float, default=20.0)
    a = ap.parse_args()
    host, _, port = a.addr.rpartition(":")
    payload = os.urandom(a.random) if a.random is not None else CLIENT_HELLO_PREFIX
    assert a.random is not None or len(payload) == 10
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
    except OSError as e:
        print("connect failed: %s" % e, flush=True)
        return 2
    start = time.monotonic()
    s.sendall(payload)
    print("sent %d bytes, waiting for the peer to close" % len(payload), flush=True)
    got = 0
    how = None
    while how is None:
        left = a.timeout - (time.monotonic() - start)
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(65536)
            if d:
                got += len(d)
            else:
                how = "eof"
        except socket.timeout:
            break
        except OSError as e:
            how = "error (%s)" % e
    took = time.monotonic() - start
    if how is None:
        print("still open after %.1fs (received %d bytes)" % (took, got), flush=True)
        return 1
    print("closed by peer after %.1fs: %s (received %d bytes)" % (took, how, got), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
