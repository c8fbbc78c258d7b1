#!/usr/bin/python3
"""Hostile and heavy peers for the reliability tests (python3-h2 + ssl).

  idle  --connect IP:PORT --count N --hold FILE [--max S]
        opens N TCP connections that never send a byte; prints "opened=N failed=F" when all
        connects ended, holds them until FILE exists (or --max seconds), then prints
        "alive=A dead=D" (dead: reset or closed by the server meanwhile) and closes them.
  hold  --connect IP:PORT --count N --hold FILE [--max S]
        opens N connections to an echo app (through the mesh when run in a captured pod),
        each sends one line and waits for its echo; prints "established=E failed=F", holds
        until FILE exists, closes them and prints "closed".
  rapid-reset --connect IP:PORT --authority A --cert C --key K --ca CA --streams N
        TLS + HTTP/2, then N CONNECT requests each reset at once (batches of 100 per write);
        prints "sent=N" and, after a PING round trip, "acked".
  big-header --connect IP:PORT --authority A --cert C --key K --ca CA --bytes B
        one CONNECT carrying B bytes of extra header fields; prints "status=S" or "reset=CODE".
  count-server --port P --out FILE
        accepts and closes connections, writing the running count to FILE.
  slow-app --port P --out FILE
        accepts connections and never reads them; writes the number accepted to FILE.
"""
import argparse
import os
import selectors
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events


def split(hp):
    host, port = hp.rsplit(":", 1)
    return host, int(port)


def wait_file(path, limit):
    end = time.time() + limit
    while not os.path.exists(path) and time.time() < end:
        time.sleep(0.05)


def open_many(addr, count):
    """Non-blocking connects; returns (connected sockets, failures)."""
    sel = selectors.DefaultSelector()
    socks, failed = [], 0
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(addr)
        except BlockingIOError:
            pass
        except OSError:
            failed += 1
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE)
    end = time.time() + 30
    pending = len(sel.get_map())
    while pending and time.time() < end:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            sel.unregister(s)
            pending -= 1
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(s)
            else:
                failed += 1
                s.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
        failed += 1
    sel.close()
    return socks, failed


def alive(s):
    try:
        d = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return d != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def cmd_idle(a):
    socks, failed = open_many(split(a.connect), a.count)
    print("opened=%d failed=%d" % (len(socks), failed), flush=True)
    wait_file(a.hold, a.max)
    n = sum(1 for s in socks if alive(s))
    print("alive=%d dead=%d" % (n, len(socks) - n), flush=True)
    for s in socks:
        s.close()


def cmd_hold(a):
    socks, failed = open_many(split(a.connect), a.count)
    ok = []
    for s in socks:
        s.setblocking(True)
        s.settimeout(10)
        try:
            s.sendall(b"x\n")
            if s.recv(16) == b"x\n":
                ok.append(s)
                continue
        except OSError:
            pass
        failed += 1
        s.close()
    print("established=%d failed=%d" % (len(ok), failed), flush=True)
    wait_file(a.hold, a.max)
    for s in ok:
        s.close()
    print("closed", flush=True)


def h2_connect(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(split(a.connect), timeout=10)
    tls = ctx.wrap_socket(raw)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
        normalize_outbound_headers=False))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    # the server's SETTINGS (its 1 MiB frame size lets a big header block go in one frame)
    pump_until(tls, conn, lambda ev: True if isinstance(ev, h2.events.RemoteSettingsChanged)
               else None)
    return tls, conn


def pump_until(tls, conn, done, limit=10):
    end = time.time() + limit
    while time.time() < end:
        data = tls.recv(65536)
        if not data:
            return None
        for ev in conn.receive_data(data):
            r = done(ev)
            if r is not None:
                return r
        out = conn.data_to_send()
        if out:
            tls.sendall(out)
    return None


def cmd_rapid_reset(a):
    """nghttp2 ends a session after about 1,000 quick resets (its CVE-2023-44487 bound): the
    peer reconnects and goes on, as a real attacker would."""
    hdrs = [(":method", "CONNECT"), (":authority", a.authority)]
    sent, conns, tls = 0, 0, None
    while sent < a.streams:
        if tls is None:
            tls, conn = h2_connect(a)
            conns += 1
        n = min(100, a.streams - sent)
        for _ in range(n):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, hdrs)
            conn.reset_stream(sid)
        try:
            tls.sendall(conn.data_to_send())
            sent += n
        except OSError:
            tls.close()
            tls = None
    print("sent=%d connections=%d" % (sent, conns), flush=True)
    if tls is None:
        tls, conn = h2_connect(a)
    conn.ping(b"12345678")
    tls.sendall(conn.data_to_send())
    got = pump_until(tls, conn, lambda ev: True if isinstance(ev, h2.events.PingAckReceived)
                     else None, 30)
    print("acked" if got else "no-ack", flush=True)
    tls.close()


def cmd_big_header(a):
    tls, conn = h2_connect(a)
    hdrs = [(":method", "CONNECT"), (":authority", a.authority)]
    n = 0
    while n * 1000 < a.bytes:
        hdrs.append(("x-pad-%d" % n, "p" * 960))
        n += 1
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, hdrs)
    tls.sendall(conn.data_to_send())

    def done(ev):
        if isinstance(ev, h2.events.ResponseReceived):
            return "status=%s" % dict(ev.headers).get(":status")
        if isinstance(ev, h2.events.StreamReset):
            return "reset=%d" % ev.error_code
        if isinstance(ev, h2.events.ConnectionTerminated):
            return "goaway=%d" % ev.error_code
        return None
    print(pump_until(tls, conn, done) or "nothing", flush=True)
    tls.close()


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    return s


def write_count(path, n):
    with open(path + ".tmp", "w") as f:
        f.write("%d\n" % n)
    os.rename(path + ".tmp", path)


def cmd_count_server(a):
    s, n = serve(a.port), 0
    write_count(a.out, 0)
    while True:
        c, _ = s.accept()
        c.close()
        n += 1
        write_count(a.out, n)


def cmd_slow_app(a):
    s, held = serve(a.port), []
    write_count(a.out, 0)
    while True:
        c, _ = s.accept()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        held.append(c)
        write_count(a.out, len(held))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("idle", "hold"):
        q = sub.add_parser(name)
        q.add_argument("--connect", required=True)
        q.add_argument("--count", type=int, required=True)
        q.add_argument("--hold", required=True)
        q.add_argument("--max", type=float, default=60)
    for name in ("rapid-reset", "big-header"):
        q = sub.add_parser(name)
        for arg in ("--connect", "--authority", "--cert", "--key", "--ca"):
            q.add_argument(arg, required=True)
        q.add_argument("--streams", type=int, default=1000)
        q.add_argument("--bytes", type=int, default=1 << 20)
    for name in ("count-server", "slow-app"):
        q = sub.add_parser(name)
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--out", required=True)
    a = p.parse_args()
    {"idle": cmd_idle, "hold": cmd_hold, "rapid-reset": cmd_rapid_reset,
     "big-header": cmd_big_header, "count-server": cmd_count_server,
     "slow-app": cmd_slow_app}[a.cmd](a)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
