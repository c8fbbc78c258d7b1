#!/usr/bin/env python3
"""A scripted delta ADS control plane for the e2e tests (istio.workload.Address and
istio.security.Authorization), speaking real gRPC with stubs generated from proto/ at test time.

The desired state is a JSON file (--state) re-read whenever it changes; each stream gets the
delta between what it holds (initial_resource_versions on reconnect, then what was sent) and that
state. Every request is appended to --record as one JSON line: stream, type_url, nonce,
error (code/message of a NACK), initial_resource_versions, node id/metadata, headers.

State file: {"workloads": [{uid, name, namespace, addresses: ["10.0.0.1"], addresses_hex:
["0102030405"] (raw bytes, for malformed tests), protocol: "HBONE"|"NONE", service_account,
trust_domain, node, services: {"ns/host": {"80": 8080}}}], "services": [{name, namespace,
hostname, vips: ["10.96.0.10"], ports: {"80": 8080}, subject_alt_names: []}],
"policies": [{name, namespace, scope: GLOBAL|NAMESPACE|WORKLOAD_SELECTOR, action: ALLOW|DENY,
rules: [[[{match}]]]}], "bulk": {"count": N, "version": "x", "node": "n"}} (N generated
workloads "bulk-<i>" in 10.250.0.0/16), "ignore_subscribe": true (requests naming resources
to subscribe are recorded with "ignored" but not answered: a silent control plane). Match keys: namespaces, not_namespaces, principals,
not_principals ("x" exact, "x*" prefix, "*x" suffix, "*" presence), source_ips, not_source_ips,
destination_ips, not_destination_ips (CIDRs), destination_ports, not_destination_ports.

On-demand (non-wildcard) streams, as istiod serves ztunnel with XDS_ON_DEMAND=true: a type whose
first request subscribes and unsubscribes "*" together (or names resources without "*") gets
only the names subscribed (initial_resource_versions, then resource_names_subscribe minus
resource_names_unsubscribe). A name is a resource name, or an alias "<network>/<ip>" resolved to
the workload with that address or the service with that VIP, sent under its canonical name with
Resource.aliases = [alias] (a service comes with its endpoint workloads, as from istiod's index);
a newly subscribed name that resolves to nothing is answered with removed_resources [name].
Pushes on such streams record the names sent and removed.
"""
import argparse
import hashlib
import ipaddress
import json
import os
import queue
import sys
import threading
import time
from concurrent import futures

import grpc

sys.path.insert(0, os.environ.get("XDS_PY_DIR", "."))
import authorization_pb2  # noqa: E402
import discovery_pb2  # noqa: E402
import discovery_pb2_grpc  # noqa: E402
import workload_pb2  # noqa: E402

ADDRESS = "type.googleapis.com/istio.workload.Address"
AUTHZ = "type.googleapis.com/istio.security.Authorization"
TYPES = (ADDRESS, AUTHZ)

record_lock = threading.Lock()
args = None


def record(entry):
    entry["t"] = time.time()
    with record_lock, open(args.record, "a") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def ip_bytes(text):
    return ipaddress.ip_address(text.split("/")[-1]).packed


def gateway(msg, d):
    """{"address": "10.0.0.5"} or {"hostname": "ns/host"}, with an optional "port"."""
    if not d:
        return
    if "address" in d:
        msg.address.network = ""
        msg.address.address = ip_bytes(d["address"])
    else:
        ns, _, host = d["hostname"].partition("/")
        msg.hostname.namespace = ns
        msg.hostname.hostname = host
    msg.hbone_mtls_port = int(d.get("port", 15008))


def workload(d):
    w = workload_pb2.Workload(uid=d["uid"], name=d.get("name", ""),
                              namespace=d.get("namespace", "default"),
                              service_account=d.get("service_account", ""),
                              trust_domain=d.get("trust_domain", ""), node=d.get("node", ""))
    w.tunnel_protocol = workload_pb2.HBONE if d.get("protocol", "HBONE") == "HBONE" else workload_pb2.NONE
    w.addresses.extend(ip_bytes(a) for a in d.get("addresses", []))
    w.addresses.extend(bytes.fromhex(a) for a in d.get("addresses_hex", []))
    for key, ports in d.get("services", {}).items():
        pl = w.services[key]
        for sp, tp in ports.items():
            pl.ports.add(service_port=int(sp), target_port=int(tp))
    w.authorization_policies.extend(d.get("authorization_policies", []))
    gateway(w.waypoint, d.get("waypoint"))
    return workload_pb2.Address(workload=w)


def service(d):
    s = workload_pb2.Service(name=d["name"], namespace=d.get("namespace", "default"),
                             hostname=d["hostname"])
    for v in d.get("vips", []):
        s.addresses.add(network="", address=ip_bytes(v))
    for sp, tp in d.get("ports", {}).items():
        s.ports.add(service_port=int(sp), target_port=int(tp))
    s.subject_alt_names.extend(d.get("subject_alt_names", []))
    gateway(s.waypoint, d.get("waypoint"))
    return workload_pb2.Address(service=s)


def string_match(text):
    if text == "*":
        m = authorization_pb2.StringMatch()
        m.presence.SetInParent()
        return m
    if text.endswith("*"):
        return authorization_pb2.StringMatch(prefix=text[:-1])
    if text.startswith("*"):
        return authorization_pb2.StringMatch(suffix=text[1:])
    return authorization_pb2.StringMatch(exact=text)


def match(d):
    m = authorization_pb2.Match()
    for key in ("namespaces", "not_namespaces", "principals", "not_principals"):
        getattr(m, key).extend(string_match(v) for v in d.get(key, []))
    for key in ("source_ips", "not_source_ips", "destination_ips", "not_destination_ips"):
        for cidr in d.get(key, []):
            net = ipaddress.ip_network(cidr, strict=False)
            getattr(m, key).add(address=net.network_address.packed, length=net.prefixlen)
    for key in ("destination_ports", "not_destination_ports"):
        getattr(m, key).extend(int(p) for p in d.get(key, []))
    return m


def policy(d):
    p = authorization_pb2.Authorization(
        name=d["name"], namespace=d.get("namespace", "default"),
        scope=authorization_pb2.Scope.Value(d.get("scope", "NAMESPACE")),
        action=authorization_pb2.Action.Value(d.get("action", "ALLOW")))
    for rule in d.get("rules", []):
        r = p.rules.add()
        for clause in rule:
            c = r.clauses.add()
            c.matches.extend(match(m) for m in clause)
    return p


def desired(state):
    """{type_url: {name: (version, serialized body)}}"""
    out = {ADDRESS: {}, AUTHZ: {}, "ip": {}, "endpoints": {},
           "ignore_subscribe": bool(state.get("ignore_subscribe"))}

    def index(name, addrs):
        for a in addrs:
            try:
                out["ip"].setdefault(str(ipaddress.ip_address(a.split("/")[-1])), name)
            except ValueError:
                pass

    def put(t, name, msg):
        body = msg.SerializeToString()
        out[t][name] = (hashlib.sha1(body).hexdigest()[:12], body)

    for w in state.get("workloads", []):
        put(ADDRESS, w["uid"], workload(w))
        index(w["uid"], w.get("addresses", []))
        for svc in w.get("services", {}):
            out["endpoints"].setdefault(svc, []).append(w["uid"])
    for s in state.get("services", []):
        name = "%s/%s" % (s.get("namespace", "default"), s["hostname"])
        put(ADDRESS, name, service(s))
        index(name, s.get("vips", []))
    bulk = state.get("bulk")
    if bulk:
        for i in range(int(bulk["count"])):
            put(ADDRESS, "bulk-%d" % i, workload({
                "uid": "bulk-%d" % i, "name": "bulk-%d-%s" % (i, bulk.get("version", "")),
                "addresses": [str(ipaddress.ip_address("10.250.0.0") + i + 1)],
                "node": bulk.get("node", "elsewhere")}))
            out["ip"][str(ipaddress.ip_address("10.250.0.0") + i + 1)] = "bulk-%d" % i
    for p in state.get("policies", []):
        put(AUTHZ, "%s/%s" % (p.get("namespace", "default"), p["name"]), policy(p))
    return out


class State:
    """The state file, re-read when its mtime or size changes."""

    def __init__(self, path):
        self.path, self.key, self.value, self.lock = path, None, None, threading.Lock()

    def get(self):
        with self.lock:
            try:
                st = os.stat(self.path)
                key = (st.st_mtime_ns, st.st_size)
                if key != self.key:
                    with open(self.path) as f:
                        self.value = desired(json.load(f))
                    self.key = key
            except (OSError, ValueError) as e:
                print("state file: %s" % e, file=sys.stderr, flush=True)
            return self.value or {ADDRESS: {}, AUTHZ: {}}


def alias_ip(name):
    """The IP of an alias "<network>/<ip>" (any network), or None."""
    if "/" not in name:
        return None
    try:
        return str(ipaddress.ip_address(name.rsplit("/", 1)[1]))
    except ValueError:
        return None


def resolve(names, snap, t):
    """For an on-demand stream: ({canonical: (version, body, [aliases])}, {name: canonical}).
    As istiod's index lookup, a service comes with its endpoints (workloads naming it)."""
    want, found = {}, {}
    for n in sorted(names):
        canon = n if n in snap[t] else None
        if canon is None and t == ADDRESS and alias_ip(n) is not None:
            canon = snap.get("ip", {}).get(alias_ip(n))
        if canon is None or canon not in snap[t]:
            continue
        found[n] = canon
        v, body = snap[t][canon]
        entry = want.setdefault(canon, (v, body, []))
        if n != canon:
            entry[2].append(n)
        for uid in snap.get("endpoints", {}).get(canon, []) if t == ADDRESS else []:
            if uid in snap[t]:
                want.setdefault(uid, snap[t][uid] + ([],))
    return want, found


def on_demand_first(sub, unsub):
    """Does a type's first request open it without wildcard (istiod's on-demand mode)?"""
    names = sub - {"*"}
    return ("*" in sub and "*" in unsub) or (bool(names) and "*" not in sub)


class Ads(discovery_pb2_grpc.AggregatedDiscoveryServiceServicer):
    streams = 0
    nonce = 0
    lock = threading.Lock()

    def __init__(self, state):
        self.state = state

    def DeltaAggregatedResources(self, request_iterator, context):
        with self.lock:
            Ads.streams += 1
            stream = Ads.streams
        headers = {k: v for k, v in context.invocation_metadata()}
        requests = queue.Queue()

        def reader():
            try:
                for req in request_iterator:
                    requests.put(req)
            except Exception:  # the stream ended
                pass
            requests.put(None)

        threading.Thread(target=reader, daemon=True).start()
        held = {}  # type_url -> {name: version} the client holds, for subscribed types
        subs = {}  # type_url -> set of subscribed names (on-demand), or None (wildcard)
        while context.is_active():
            try:
                req = requests.get(timeout=0.05)
            except queue.Empty:
                req = False
            if req is None:
                return
            if req:
                yield from self.request(stream, req, headers, held, subs)
                headers = None
                continue
            for t in TYPES:
                if t in held:
                    yield from self.push(t, held, subs, force=False)

    def request(self, stream, req, headers, held, subs):
        t = req.type_url
        sub = set(req.resource_names_subscribe)
        unsub = set(req.resource_names_unsubscribe)
        first = t in TYPES and t not in held
        ignored = (not first and bool(sub - {"*"}) and
                   self.state.get().get("ignore_subscribe", False))
        self.note(stream, req, headers, ignored)
        if t not in TYPES or ignored:
            return
        if first:
            held[t] = dict(req.initial_resource_versions)
            subs[t] = None
            fresh = sub - {"*"} - unsub
            if on_demand_first(sub, unsub):
                subs[t] = (set(held[t]) | fresh) - unsub
            if subs[t] is None:
                fresh = ()
            yield from self.push(t, held, subs, force=True, fresh=fresh)
            return
        if not sub and not unsub:
            return  # an ACK or NACK
        if subs[t] is None:
            if "*" in unsub and "*" not in sub:  # wildcard given up for names
                subs[t] = set()
            else:
                return
        elif "*" in sub and "*" not in unsub:  # back to wildcard
            subs[t] = None
            yield from self.push(t, held, subs, force=True)
            return
        self.unsubscribe(t, held, subs[t], unsub - {"*"})
        fresh = sub - {"*"} - unsub  # answered even if already subscribed (a retry)
        subs[t] |= fresh
        if fresh:
            yield from self.push(t, held, subs, force=True, fresh=fresh)

    def unsubscribe(self, t, held, names, unsub):
        """Forget, without a removal, what only the unsubscribed names brought to the client."""
        if not unsub:
            return
        snap = self.state.get()
        names -= unsub
        want, _ = resolve(names, snap, t)
        gone, _ = resolve(unsub, snap, t)
        for canon in set(gone) | unsub:
            if canon not in want:
                held[t].pop(canon, None)

    @staticmethod
    def note(stream, req, headers, ignored=False):
        e = {"stream": stream, "type_url": req.type_url, "nonce": req.response_nonce,
             "initial_resource_versions": dict(req.initial_resource_versions),
             "subscribe": list(req.resource_names_subscribe),
             "unsubscribe": list(req.resource_names_unsubscribe)}
        if ignored:
            e["ignored"] = True
        if req.HasField("error_detail"):
            e["error"] = {"code": req.error_detail.code, "message": req.error_detail.message}
        if req.HasField("node"):
            e["node"] = {"id": req.node.id, "metadata": {
                k: v.string_value for k, v in req.node.metadata.fields.items()}}
        if headers is not None:
            e["headers"] = headers
        record(e)

    def push(self, t, held, subs, force, fresh=()):
        """Send what changed between held[t] and the state (the subscribed part of it on an
        on-demand stream); fresh: names just subscribed, sent even if held, removed if unknown."""
        snap = self.state.get()
        have = held[t]
        on_demand = subs.get(t) is not None
        if on_demand:
            want, found = resolve(subs[t], snap, t)
        else:
            want = {n: (v, body, []) for n, (v, body) in snap[t].items()}
            found = {}
        again = {found[n] for n in fresh if n in found}
        changed = [n for n, (v, _, _) in want.items() if have.get(n) != v or n in again]
        removed = [n for n in have if n not in want]
        removed += sorted(n for n in fresh if n not in found and n not in removed)
        if not changed and not removed and not force:
            return
        batch = max(1, args.batch)
        chunks = [changed[i:i + batch] for i in range(0, len(changed), batch)] or [[]]
        for i, names in enumerate(chunks):
            resp = discovery_pb2.DeltaDiscoveryResponse(type_url=t)
            with self.lock:
                Ads.nonce += 1
                resp.nonce = str(Ads.nonce)
            for n in names:
                v, body, aliases = want[n]
                r = resp.resources.add(name=n, version=v)
                r.aliases.extend(aliases)
                r.resource.type_url = t
                r.resource.value = body
                have[n] = v
            if i == len(chunks) - 1:
                resp.removed_resources.extend(removed)
                for n in removed:
                    have.pop(n, None)
            entry = {"push": t, "nonce": resp.nonce, "resources": len(names),
                     "removed": len(resp.removed_resources)}
            if on_demand:
                entry["names"] = {n: want[n][2] for n in names}
                entry["removed_names"] = list(resp.removed_resources)
            record(entry)
            yield resp


def main():
    global args
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.1:15010")
    p.add_argument("--state", required=True)
    p.add_argument("--record", required=True)
    p.add_argument("--batch", type=int, default=1000)
    args = p.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_send_message_length", 64 << 20)])
    discovery_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(Ads(State(args.state)), server)
    server.add_insecure_port(args.listen)
    server.start()
    print("listening on %s" % args.listen, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
