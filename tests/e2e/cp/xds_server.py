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
workloads "bulk-<i>" in 10.250.0.0/16). Match keys: namespaces, not_namespaces, principals,
not_principals ("x" exact, "x*" prefix, "*x" suffix, "*" presence), source_ips, not_source_ips,
destination_ips, not_destination_ips (CIDRs), destination_ports, not_destination_ports.
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
    return workload_pb2.Address(workload=w)


def service(d):
    s = workload_pb2.Service(name=d["name"], namespace=d.get("namespace", "default"),
                             hostname=d["hostname"])
    for v in d.get("vips", []):
        s.addresses.add(network="", address=ip_bytes(v))
    for sp, tp in d.get("ports", {}).items():
        s.ports.add(service_port=int(sp), target_port=int(tp))
    s.subject_alt_names.extend(d.get("subject_alt_names", []))
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
    out = {ADDRESS: {}, AUTHZ: {}}

    def put(t, name, msg):
        body = msg.SerializeToString()
        out[t][name] = (hashlib.sha1(body).hexdigest()[:12], body)

    for w in state.get("workloads", []):
        put(ADDRESS, w["uid"], workload(w))
    for s in state.get("services", []):
        put(ADDRESS, "%s/%s" % (s.get("namespace", "default"), s["hostname"]), service(s))
    bulk = state.get("bulk")
    if bulk:
        for i in range(int(bulk["count"])):
            put(ADDRESS, "bulk-%d" % i, workload({
                "uid": "bulk-%d" % i, "name": "bulk-%d-%s" % (i, bulk.get("version", "")),
                "addresses": [str(ipaddress.ip_address("10.250.0.0") + i + 1)],
                "node": bulk.get("node", "elsewhere")}))
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
        while context.is_active():
            try:
                req = requests.get(timeout=0.05)
            except queue.Empty:
                req = False
            if req is None:
                return
            if req:
                self.note(stream, req, headers)
                headers = None
                if req.type_url in TYPES and req.type_url not in held:
                    held[req.type_url] = dict(req.initial_resource_versions)
                    yield from self.push(req.type_url, held, force=True)
                continue
            for t in TYPES:
                if t in held:
                    yield from self.push(t, held, force=False)

    @staticmethod
    def note(stream, req, headers):
        e = {"stream": stream, "type_url": req.type_url, "nonce": req.response_nonce,
             "initial_resource_versions": dict(req.initial_resource_versions),
             "subscribe": list(req.resource_names_subscribe)}
        if req.HasField("error_detail"):
            e["error"] = {"code": req.error_detail.code, "message": req.error_detail.message}
        if req.HasField("node"):
            e["node"] = {"id": req.node.id, "metadata": {
                k: v.string_value for k, v in req.node.metadata.fields.items()}}
        if headers is not None:
            e["headers"] = headers
        record(e)

    def push(self, t, held, force):
        want = self.state.get()[t]
        have = held[t]
        changed = [n for n, (v, _) in want.items() if have.get(n) != v]
        removed = [n for n in have if n not in want]
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
                v, body = want[n]
                r = resp.resources.add(name=n, version=v)
                r.resource.type_url = t
                r.resource.value = body
                have[n] = v
            if i == len(chunks) - 1:
                resp.removed_resources.extend(removed)
                for n in removed:
                    del have[n]
            record({"push": t, "nonce": resp.nonce, "resources": len(names),
                    "removed": len(resp.removed_resources)})
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
