#!/usr/bin/python3
"""Independent HBONE client (python3-h2 + ssl), for interop tests of the agent.

TLS 1.3 only, ALPN h2, client certificate, server chain verified against --ca (no hostname
check; the server's URI SAN is printed and, with --expect-identity, must be exactly that).
Sends CONNECT :authority=<ip:port>; on 200 sends --data (or stdin), half-closes (END_STREAM),
and copies what comes back to stdout until the server's END_STREAM.
Exit: 0 = 200 and a clean end, 3 = non-200 status, 4 = TLS failure (handshake, identity,
ALPN, or the connection closed before any HTTP/2 frame), 5 = HTTP/2 error or stream reset,
6 = timeout, 2 = TCP connect failure or bad arguments.
"""
import argparse
import os
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

STREAM_WINDOW = 4 << 20
CONN_WINDOW = 16 << 20


def log(*a):
    print("hbone_client:", *a, file=sys.stderr, flush=True)


class Fail(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def split_hostport(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    return host, int(port)


def tls_connect(a):
    try:
        sock = socket.create_connection(split_hostport(a.connect), timeout=a.timeout)
    except OSError as e:
        raise Fail(2, "connect %s: %s" % (a.connect, e))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["h2"])
    try:
        tls = ctx.wrap_socket(sock, server_hostname=None)
    except (ssl.SSLError, OSError) as e:
        raise Fail(4, "TLS handshake failed: %s" % e)
    cert = tls.getpeercert() or {}
    sans = [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]
    log("server identity=%s tls=%s alpn=%s" % (",".join(sans) or "-", tls.version(),
                                               tls.selected_alpn_protocol()))
    if a.expect_identity and sans != [a.expect_identity]:
        raise Fail(4, "server identity %s is not the expected %s" % (sans, a.expect_identity))
    if tls.selected_alpn_protocol() != "h2":
        raise Fail(4, "ALPN h2 not negotiated")
    tls.settimeout(None)
    return tls


class Client:
    def __init__(self, a, tls):
        self.a, self.tls = a, tls
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8",
            validate_outbound_headers=False))  # h2 4.1 wants :path even for CONNECT
        self.got_frames = False
        self.status = None
        self.response_baggage = "-"
        self.recv_done = False
        self.deadline = time.monotonic() + a.timeout

    def flush(self):
        data = self.conn.data_to_send()
        if not data:
            return
        try:
            self.tls.sendall(data)
        except (ssl.SSLError, OSError) as e:
            # a refused client certificate shows up here in TLS 1.3: the server's alert or
            # close comes after our side of the handshake finished
            raise Fail(5 if self.got_frames else 4, "write: %s" % e)

    def wait_readable(self, extra=()):
        if self.tls.pending():
            return [self.tls]
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Fail(6, "timeout")
        r, _, _ = select.select([self.tls] + list(extra), [], [], left)
        return r

    def read(self, sid):
        try:
            data = self.tls.recv(1 << 16)
        except ssl.SSLError as e:
            raise Fail(5 if self.got_frames else 4, "TLS error: %s" % e)
        except OSError as e:
            raise Fail(5 if self.got_frames else 4, "read: %s" % e)
        if not data:
            if not self.got_frames:
                raise Fail(4, "connection closed before any HTTP/2 frame")
            if not self.recv_done:
                raise Fail(5, "connection closed before END_STREAM")
            return
        self.got_frames = True
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise Fail(5, "HTTP/2 protocol error: %s" % e)
        for ev in events:
            self.handle(ev, sid)
        self.flush()

    def handle(self, ev, sid):
        if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
            self.status = dict(ev.headers).get(":status")
            self.response_baggage = dict(ev.headers).get("baggage", "-")
        elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
            sys.stdout.buffer.write(ev.data)
            sys.stdout.buffer.flush()
            self.conn.acknowledge_received_data(ev.flow_controlled_length, sid)
        elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
            self.recv_done = True
        elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
            raise Fail(5, "stream reset by server (error %s)" % ev.error_code)
        elif isinstance(ev, h2.events.ConnectionTerminated):
            if not self.recv_done:
                raise Fail(5, "GOAWAY (error %s)" % ev.error_code)

    def request(self):
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        })
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONN_WINDOW - 65535)
        sid = self.conn.get_next_available_stream_id()
        extra = [tuple(h.split(":", 1)) for h in self.a.header]
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", self.a.authority)] +
                               [(k.strip().lower(), v.strip()) for k, v in extra])
        self.flush()
        while self.status is None:
            self.wait_readable()
            self.read(sid)
        log("status=%s baggage=%s" % (self.status, self.response_baggage))
        if self.status != "200":
            raise Fail(3, "CONNECT answered %s" % self.status)
        return sid

    def relay(self, sid, src):
        pending, src_open, sent_end = b"", True, False
        while not (self.recv_done and sent_end):
            if not pending and src_open and src is None:
                pending, src_open = self.a.data.encode(), False
            window = 0
            if not sent_end and sid in self.conn.streams:
                window = min(self.conn.local_flow_control_window(sid),
                             self.conn.max_outbound_frame_size)
            if pending and window > 0:
                self.conn.send_data(sid, pending[:window])
                pending = pending[window:]
                self.flush()
                continue
            if not pending and not src_open and not sent_end:
                self.conn.end_stream(sid)
                sent_end = True
                self.flush()
                continue
            want_src = src is not None and src_open and not pending and window > 0
            r = self.wait_readable([src] if want_src else [])
            if self.tls in r:
                self.read(sid)
            if want_src and src in r:
                pending = os.read(src, 1 << 16)
                src_open = bool(pending)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True, help="HBONE server address ip:15008")
    ap.add_argument("--authority", required=True, help="CONNECT :authority ip:port")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--expect-identity")
    ap.add_argument("--data", help="send these bytes instead of stdin")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--header", action="append", default=[], help="'name: value' to add")
    a = ap.parse_args()
    tls = None
    try:
        tls = tls_connect(a)
        cl = Client(a, tls)
        sid = cl.request()
        cl.relay(sid, None if a.data is not None else sys.stdin.fileno())
    except Fail as e:
        log("error: %s (exit %d)" % (e, e.code))
        return e.code
    finally:
        if tls:
            tls.close()
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
