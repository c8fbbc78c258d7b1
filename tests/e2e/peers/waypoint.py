#!/usr/bin/python3
"""Test waypoint (python3-h2 + ssl): an L7 hop between an agent and a destination, as a waypoint
proxy is in Istio ambient.

It terminates HBONE with its own SPIFFE certificate (TLS 1.3, ALPN h2, client certificate
required, chained to --ca), logs each CONNECT's client identity, :authority and the baggage,
forwarded and traceparent headers, then treats the tunnelled bytes as one HTTP/1.1 request: it
forwards it (with "Connection: close") over a NEW HBONE connection that it originates itself,
with its own identity, to <destination ip>:15008 (:authority = the destination ip:port; a
service VIP:port is mapped to an endpoint with --route VIP:PORT=IP:PORT), or with
--plain-upstream a plain TCP connection that the node agent of its (enrolled) pod captures, and
inserts
"x-waypoint: <--name>" into the response head (the proof that the request was processed here).
"""
import argparse
import asyncio
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

import hbone_server
from hbone_server import H2Conn, parse_authority

HEAD_MAX = 64 << 10


def log(*a):
    print("waypoint:", *a, file=sys.stderr, flush=True)


class Upstream:
    """One CONNECT stream over a fresh HBONE connection that this waypoint originates."""

    def __init__(self, args):
        self.args = args
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_inbound_headers=False,
            validate_outbound_headers=False))     # h2 wants :path on CONNECT (RFC 9113 8.5)
        self.queue = asyncio.Queue()    # response bytes, None = END_STREAM or failure
        self.status = asyncio.get_event_loop().create_future()
        self.window = asyncio.Event()
        self.sid = None
        self.writer = None
        self.peer_identity = "-"

    async def open(self, authority):
        host, port = parse_authority(authority)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.args.ca)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        ctx.set_alpn_protocols(["h2"])
        reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection(host, self.args.hbone_port, ssl=ctx), 10)
        sslobj = self.writer.get_extra_info("ssl_object")
        self.peer_identity = ",".join(hbone_server.peer_uri_sans(sslobj)) or "-"
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(self.sid, [(":method", "CONNECT"), (":authority", authority)])
        self.flush()
        asyncio.ensure_future(self.pump(reader))
        status = await asyncio.wait_for(self.status, 10)
        return status

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    async def pump(self, reader):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for ev in self.conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived):
                        if not self.status.done():
                            self.status.set_result(dict(ev.headers).get(":status"))
                    elif isinstance(ev, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(ev.flow_controlled_length,
                                                            ev.stream_id)
                        self.queue.put_nowait(ev.data)
                    elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                        self.queue.put_nowait(None)
                    elif isinstance(ev, (h2.events.WindowUpdated,
                                         h2.events.RemoteSettingsChanged)):
                        self.window.set()
                self.flush()
        except (OSError, h2.exceptions.H2Error) as e:
            log("upstream: %s" % e)
        if not self.status.done():
            self.status.set_result(None)
        self.queue.put_nowait(None)
        self.window.set()

    async def send(self, data):
        while data:
            n = min(self.conn.local_flow_control_window(self.sid),
                    self.conn.max_outbound_frame_size)
            if n <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.conn.send_data(self.sid, data[:n])
            data = data[n:]
            self.flush()

    def close(self):
        if self.writer:
            self.writer.close()


class PlainUpstream:
    """The same interface over plain TCP to the destination: a waypoint that is itself in the
    mesh (its own outbound traffic captured by the node agent, upstream's "sandwich")."""

    def __init__(self, args):
        self.queue = asyncio.Queue()
        self.writer = None
        self.peer_identity = "(plain, captured)"

    async def open(self, authority):
        host, port = parse_authority(authority)
        reader, self.writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        asyncio.ensure_future(self.pump(reader))
        return "200"

    async def pump(self, reader):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self.queue.put_nowait(data)
        except OSError as e:
            log("upstream: %s" % e)
        self.queue.put_nowait(None)

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    def close(self):
        if self.writer:
            self.writer.close()


def rewrite_request(head):
    """Request head without its Connection header, with Connection: close (one request)."""
    lines = head.split(b"\r\n")
    keep = [l for l in lines[1:] if l and not l.lower().startswith(b"connection:")]
    return b"\r\n".join([lines[0]] + keep + [b"Connection: close", b"", b""])


class WaypointConn(H2Conn):
    async def open_stream(self, sid, hdrs):
        st = self.streams.get(sid)
        if st is None:
            return
        auth = hdrs.get(":authority", "")
        log("stream %d identity=%s authority=%s baggage=%s forwarded=%s traceparent=%s" % (
            sid, self.ident, auth, hdrs.get("baggage", "-"), hdrs.get("forwarded", "-"),
            hdrs.get("traceparent", "-")))
        try:
            if hdrs.get(":method") != "CONNECT":
                raise ValueError("not CONNECT")
            parse_authority(auth)
        except ValueError as e:
            log("stream %d status=400 (%s)" % (sid, e))
            self.streams.pop(sid, None)
            self.respond(sid, 400, True)
            return
        target = self.args.routes.get(auth, auth)
        up = PlainUpstream(self.args) if self.args.plain_upstream else Upstream(self.args)
        try:
            status = await up.open(target)
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ValueError,
                h2.exceptions.H2Error) as e:
            status, err = None, e
        else:
            err = "status %s" % status
        if status != "200":
            log("stream %d authority=%s upstream=%s failed: %s status=503" % (
                sid, auth, target, err))
            up.close()
            self.streams.pop(sid, None)
            self.respond(sid, 503, True)
            return
        log("stream %d authority=%s upstream=%s upstream.identity=%s status=200" % (
            sid, auth, target, up.peer_identity))
        self.respond(sid, 200, False)
        try:
            await self.l7(st, up)
        except (OSError, h2.exceptions.H2Error) as e:
            log("stream %d: %s" % (sid, e))
            self.reset(st)
        finally:
            up.close()

    async def l7(self, st, up):
        head = b""
        while b"\r\n\r\n" not in head and len(head) < HEAD_MAX:   # the request head
            item = await st.queue.get()
            if item is None:
                break
            data, n = item
            head += data
            self.ack(st, n)
        req, sep, rest = head.partition(b"\r\n\r\n")
        if not sep:
            log("stream %d: no HTTP request head" % st.sid)
            self.reset(st)
            return
        log("stream %d request: %s" % (st.sid, req.split(b"\r\n", 1)[0].decode("latin-1")))
        await up.send(rewrite_request(req) + rest)
        asyncio.ensure_future(self.body_to_upstream(st, up))
        resp = b""
        injected = False
        while True:
            data = await up.queue.get()
            if data is None:
                break
            if not injected:
                resp += data
                if b"\r\n" not in resp:
                    continue
                status, _, tail = resp.partition(b"\r\n")
                data = status + b"\r\nx-waypoint: " + self.args.name.encode() + b"\r\n" + tail
                injected = True
            await self.to_client(st, data)
        if not self.closed and st.sid in self.streams:
            self.conn.end_stream(st.sid)
            self.flush()
            self.streams.pop(st.sid, None)

    async def body_to_upstream(self, st, up):
        while True:
            item = await st.queue.get()
            if item is None:
                return
            data, n = item
            await up.send(data)
            self.ack(st, n)

    def ack(self, st, n):
        if not self.closed and st.sid in self.streams:
            self.conn.acknowledge_received_data(n, st.sid)
            self.flush()

    async def to_client(self, st, data):
        while data:
            n = await self.send_window(st.sid)
            if n == 0:
                return
            self.conn.send_data(st.sid, data[:n])
            data = data[n:]
            self.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--name", required=True, help="value of the x-waypoint response header")
    ap.add_argument("--listen", default="0.0.0.0:15008")
    ap.add_argument("--hbone-port", type=int, default=15008, help="destinations' HBONE port")
    ap.add_argument("--route", action="append", default=[],
                    help="VIP:PORT=IP:PORT, where a service's connections go")
    ap.add_argument("--connect-timeout", type=float, default=5.0)
    ap.add_argument("--plain-upstream", action="store_true",
                    help="reach destinations with plain TCP (a waypoint enrolled in the mesh)")
    a = ap.parse_args()
    a.routes = dict(r.split("=", 1) for r in a.route)
    host, port = parse_authority(a.listen)
    ctx = hbone_server.make_context(a)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(lambda l, c: log("error: %s %s" % (c.get("message"),
                                                                  c.get("exception"))))
    server = loop.run_until_complete(loop.create_server(
        lambda: WaypointConn(a), host, port, ssl=ctx, reuse_address=True, backlog=128,
        ssl_handshake_timeout=10))
    log("listening on %s:%d as %s" % (host, port, a.name))
    try:
        loop.run_until_complete(server.serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
