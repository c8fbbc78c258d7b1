#!/usr/bin/python3
"""Independent HBONE server (python3-h2 + ssl), for interop tests of the agent.

TLS 1.3 only, ALPN h2, requires a client certificate chaining to --ca. Each HTTP/2 CONNECT
stream is relayed to a TCP connection to its :authority (both directions, half-close carried
as END_STREAM <-> shutdown(SHUT_WR)); 200 when the connect succeeds, 503 when it fails, 400 for a
bad request. Logs the client's URI SAN per stream to stderr.
"""
import argparse
import asyncio
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

STREAM_WINDOW = 4 << 20
CONN_WINDOW = 16 << 20
READ_CHUNK = 64 << 10


def log(*a):
    print("hbone_server:", *a, file=sys.stderr, flush=True)


def peer_uri_sans(sslobj):
    cert = sslobj.getpeercert() if sslobj else None
    if not cert:
        return []
    return [v for k, v in cert.get("subjectAltName", ()) if k == "URI"]


def parse_authority(auth):
    if auth.startswith("["):
        host, _, rest = auth[1:].partition("]")
        if not rest.startswith(":"):
            raise ValueError("bad authority")
        port = rest[1:]
    else:
        host, sep, port = auth.rpartition(":")
        if not sep:
            raise ValueError("bad authority")
    port = int(port)
    if not host or not 0 < port < 65536:
        raise ValueError("bad authority")
    return host, port


class Stream:
    def __init__(self, sid):
        self.sid = sid
        self.queue = asyncio.Queue()  # bytes to the upstream, None = EOF
        self.writer = None
        self.tasks = []


class H2Conn(asyncio.Protocol):
    def __init__(self, args):
        self.args = args
        # h2 4.1 insists on :path even for plain CONNECT (RFC 9113 8.5 forbids it)
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.streams = {}
        self.window_open = asyncio.Event()
        self.transport = None
        self.ident = "-"
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        sslobj = transport.get_extra_info("ssl_object")
        alpn = sslobj.selected_alpn_protocol() if sslobj else None
        sans = peer_uri_sans(sslobj)
        self.ident = ",".join(sans) or "-"
        peer = transport.get_extra_info("peername")
        log("connection from %s:%d identity=%s alpn=%s version=%s" % (
            peer[0], peer[1], self.ident, alpn, sslobj.version() if sslobj else None))
        if alpn != "h2":
            log("closing: ALPN is not h2")
            transport.close()
            return
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 200,
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 0,
        })
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(CONN_WINDOW - 65535)
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def connection_lost(self, exc):
        self.closed = True
        self.window_open.set()
        for st in list(self.streams.values()):
            self.drop(st)

    def data_received(self, data):
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            log("protocol error: %s" % e)
            self.flush()
            self.transport.close()
            return
        for ev in events:
            self.handle(ev)
        self.flush()

    def handle(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            # register now: DATA may follow in the same read, before the connect finishes
            self.streams[ev.stream_id] = Stream(ev.stream_id)
            asyncio.ensure_future(self.open_stream(ev.stream_id, dict(ev.headers)))
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is None:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                st.queue.put_nowait((ev.data, ev.flow_controlled_length))
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id)
            if st:
                st.queue.put_nowait(None)
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st:
                log("stream %d reset by client" % ev.stream_id)
                self.drop(st)
        elif isinstance(ev, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window_open.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.transport.close()

    def respond(self, sid, status, end):
        try:
            self.conn.send_headers(sid, [(":status", str(status))], end_stream=end)
        except h2.exceptions.H2Error:
            pass
        self.flush()

    async def open_stream(self, sid, hdrs):
        method, auth = hdrs.get(":method"), hdrs.get(":authority", "")
        st = self.streams.get(sid)
        if st is None:
            return
        try:
            if method != "CONNECT":
                raise ValueError("method %s" % method)
            host, port = parse_authority(auth)
        except ValueError as e:
            log("stream %d identity=%s authority=%s status=400 (%s)" % (sid, self.ident, auth, e))
            self.streams.pop(sid, None)
            self.respond(sid, 400, True)
            return
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port), self.args.connect_timeout)
        except (OSError, asyncio.TimeoutError) as e:
            log("stream %d identity=%s authority=%s status=503 (%s)" % (sid, self.ident, auth, e))
            self.streams.pop(sid, None)
            self.respond(sid, 503, True)
            return
        if sid not in self.streams:  # reset while connecting
            writer.close()
            return
        log("stream %d identity=%s authority=%s status=200" % (sid, self.ident, auth))
        log("stream %d headers baggage=%s forwarded=%s traceparent=%s" % (
            sid, hdrs.get("baggage", "-"), hdrs.get("forwarded", "-"), hdrs.get("traceparent", "-")))
        st.writer = writer
        self.respond(sid, 200, False)
        st.tasks = [asyncio.ensure_future(self.to_upstream(st)),
                    asyncio.ensure_future(self.from_upstream(st, reader))]

    async def to_upstream(self, st):
        try:
            while True:
                item = await st.queue.get()
                if item is None:
                    if st.writer.can_write_eof():
                        st.writer.write_eof()
                    return
                data, n = item
                st.writer.write(data)
                await st.writer.drain()
                if not self.closed and st.sid in self.streams:
                    self.conn.acknowledge_received_data(n, st.sid)
                    self.flush()
        except (OSError, h2.exceptions.H2Error) as e:
            log("stream %d upstream write: %s" % (st.sid, e))
            self.reset(st)

    async def send_window(self, sid):
        while True:
            if self.closed or sid not in self.streams:
                return 0
            n = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if n > 0:
                return n
            self.window_open.clear()
            await self.window_open.wait()

    async def from_upstream(self, st, reader):
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                while data:
                    n = await self.send_window(st.sid)
                    if n == 0:
                        return
                    self.conn.send_data(st.sid, data[:n])
                    data = data[n:]
                    self.flush()
            if not self.closed and st.sid in self.streams:
                self.conn.end_stream(st.sid)
                self.flush()
        except (OSError, h2.exceptions.H2Error) as e:
            log("stream %d upstream read: %s" % (st.sid, e))
            self.reset(st)

    def reset(self, st):
        if not self.closed and st.sid in self.streams:
            try:
                self.conn.reset_stream(st.sid)
            except h2.exceptions.H2Error:
                pass
            self.flush()
        self.drop(st)

    def drop(self, st):
        self.streams.pop(st.sid, None)
        if st.writer:
            st.writer.close()
        for t in st.tasks:
            if t is not asyncio.current_task():
                t.cancel()


def make_context(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True, help="CA that client certificates must chain to")
    ap.add_argument("--listen", default="0.0.0.0:15008")
    ap.add_argument("--connect-timeout", type=float, default=5.0)
    a = ap.parse_args()
    host, port = parse_authority(a.listen)
    ctx = make_context(a)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    def on_error(loop, c):
        log("error: %s %s" % (c.get("message"), c.get("exception")))
    loop.set_exception_handler(on_error)
    server = loop.run_until_complete(loop.create_server(
        lambda: H2Conn(a), host, port, ssl=ctx, reuse_address=True, backlog=512,
        ssl_handshake_timeout=10))
    log("listening on %s:%d" % (host, port))
    try:
        loop.run_until_complete(server.serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
