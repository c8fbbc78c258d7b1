#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets under tests/fuzz/corpus/<target>/ (committed).

Run from anywhere: /usr/bin/python3 tests/fuzz/seeds.py [target...]. The xDS seeds are real
protobuf encodings (stubs generated from proto/ with grpc_tools, resources built as the e2e
control plane builds them); certificates come from the openssl command line. Regenerating
replaces a target's directory; certificates then differ, everything else is byte-identical.
"""
import ipaddress
import os
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SA = "spiffe://cluster.local/ns/default/sa"


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


# ---- xds: selector byte 0 Address, 1 Authorization, 2 DeltaDiscoveryResponses ----

def load_xds_stubs(tmp):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", "proto",
                    "--python_out=" + tmp, "--grpc_python_out=" + tmp] + sorted(
                        p for p in os.listdir(os.path.join(ROOT, "proto"))
                        if p.endswith(".proto")), cwd=ROOT, check=True)
    os.environ["XDS_PY_DIR"] = tmp
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e", "cp"))
    sys.path.insert(0, tmp)
    import xds_server  # the e2e control plane's resource builders
    return xds_server


def xds_resources(cp):
    wl, pb = cp.workload, cp.workload_pb2
    a = {}
    a["workload-hbone"] = wl({"uid": "Kubernetes//Pod/default/server", "name": "server",
                              "addresses": ["10.201.2.2"], "service_account": "server",
                              "node": "node2",
                              "services": {"default/web.default.svc.cluster.local": {"80": 8080}},
                              "authorization_policies": ["default/allow-client"]})
    a["workload-dual-stack"] = wl({"uid": "u2", "name": "dual", "namespace": "prod",
                                   "addresses": ["10.0.0.7", "fd00::7"], "protocol": "NONE",
                                   "trust_domain": "td.example", "service_account": "db"})
    w = wl({"uid": "u3", "name": "behind-waypoint", "addresses": ["10.0.0.8"]})
    w.workload.waypoint.address.address = ipaddress.ip_address("10.0.0.99").packed
    w.workload.waypoint.hbone_mtls_port = 15008
    w.workload.canonical_name, w.workload.canonical_revision = "app", "v1"
    w.workload.cluster_id, w.workload.network = "Kubernetes", "net1"
    a["workload-waypoint-address"] = w
    w = wl({"uid": "u4", "name": "hostname-waypoint", "addresses": ["10.0.0.9"]})
    w.workload.waypoint.hostname.namespace = "default"
    w.workload.waypoint.hostname.hostname = "waypoint.default.svc.cluster.local"
    w.workload.tunnel_protocol = pb.LEGACY_ISTIO_MTLS
    a["workload-waypoint-hostname"] = w
    a["service"] = cp.service({"name": "web", "hostname": "web.default.svc.cluster.local",
                               "vips": ["10.96.0.10", "fd00:96::10"],
                               "ports": {"80": 8080, "443": 0},
                               "subject_alt_names": [SA + "/server"]})
    s = cp.service({"name": "db", "namespace": "prod", "hostname": "db.prod.svc.cluster.local",
                    "vips": ["net1/10.96.0.11"], "ports": {"5432": 5432}})
    s.service.waypoint.address.address = ipaddress.ip_address("10.0.0.99").packed
    a["service-waypoint"] = s
    a["bad-ip-5-bytes"] = wl({"uid": "bad", "addresses_hex": ["0102030405"]})
    a["bad-port-70000"] = cp.service({"name": "x", "hostname": "x.default",
                                      "ports": {"70000": 1}})
    a["bad-empty"] = pb.Address()
    p = {}
    p["allow-principal"] = cp.policy({"name": "allow-client", "scope": "WORKLOAD_SELECTOR",
                                      "rules": [[[{"principals": [SA[9:] + "/client"]}]]]})
    p["deny-cidr-port"] = cp.policy({"name": "deny", "action": "DENY", "scope": "GLOBAL",
                                     "rules": [[[{"source_ips": ["10.201.1.0/24", "fd00::/8"],
                                                  "destination_ports": [9999]}]]]})
    p["allow-namespaces"] = cp.policy({"name": "ns", "rules": [[[
        {"namespaces": ["default", "prod*", "*-test", "*"],
         "not_principals": ["*/sa/evil"], "not_destination_ips": ["10.96.0.0/16"]}]]]})
    q = cp.policy({"name": "sa", "rules": [[[{}]]]})
    m = q.rules[0].clauses[0].matches[0]
    m.service_accounts.add(namespace="default", serviceAccount="client")
    m.not_service_accounts.add(namespace="other", serviceAccount="x")
    m.not_destination_ports.append(15000)
    q.dry_run = True
    p["service-accounts-dry-run"] = q
    p["deny-all"] = cp.policy({"name": "deny-all", "action": "DENY", "rules": [[[]]]})
    p["bad-prefix-33"] = cp.policy({"name": "bad", "rules": [[[{"source_ips": ["10.0.0.0/8"]}]]]})
    p["bad-prefix-33"].rules[0].clauses[0].matches[0].source_ips[0].length = 33
    return a, p


def delta(cp, type_url, named, removed=()):
    r = cp.discovery_pb2.DeltaDiscoveryResponse(type_url=type_url, nonce="1",
                                                system_version_info="v1")
    for name, msg in named:
        res = r.resources.add(name=name, version="1")
        res.resource.type_url = type_url
        res.resource.value = msg.SerializeToString()
    r.removed_resources.extend(removed)
    return r.SerializeToString()


def framed(*msgs):
    return b"\x02" + b"".join(struct.pack(">H", len(m)) + m for m in msgs)


def seeds_xds():
    with tempfile.TemporaryDirectory() as tmp:
        cp = load_xds_stubs(tmp)
        addrs, pols = xds_resources(cp)
        for name, msg in addrs.items():
            write("xds", "address-" + name, b"\x00" + msg.SerializeToString())
        # proto3 strings are UTF-8; protobuf-c does not check, the converter must
        bad = addrs["workload-hbone"].SerializeToString().replace(b"allow-client", b"allow-\x9fient")
        write("xds", "address-bad-utf8", b"\x00" + bad)
        for name, msg in pols.items():
            write("xds", "authz-" + name, b"\x01" + msg.SerializeToString())
        good_a = [(k, v) for k, v in addrs.items() if not k.startswith("bad")]
        good_p = [(k, v) for k, v in pols.items() if not k.startswith("bad")]
        write("xds", "responses-mesh", framed(delta(cp, cp.ADDRESS, good_a),
                                              delta(cp, cp.AUTHZ, good_p)))
        write("xds", "responses-update-remove", framed(
            delta(cp, cp.ADDRESS, good_a[:3]),
            delta(cp, cp.ADDRESS, good_a[1:2], removed=["workload-hbone", "unknown"]),
            delta(cp, cp.AUTHZ, good_p[:1])))
        write("xds", "responses-nack", framed(
            delta(cp, cp.ADDRESS, good_a[:1]),
            delta(cp, cp.ADDRESS, [("bad", addrs["bad-ip-5-bytes"])] + good_a[1:2]),
            delta(cp, cp.AUTHZ, [("p", pols["bad-prefix-33"])])))


# ---- zds: WorkloadRequest, WorkloadResponse (ack) and ZdsHello bytes ----

def varint(v):
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def ld(field, body):
    if isinstance(body, str):
        body = body.encode()
    return varint(field << 3 | 2) + varint(len(body)) + body


def seeds_zds():
    info = ld(1, "server") + ld(2, "default") + ld(3, "server")
    write("zds", "add", ld(1, ld(1, "uid-123") + ld(2, info)))
    write("zds", "add-no-info", ld(1, ld(1, "uid-123")))
    write("zds", "del", ld(2, ld(2, "uid-123")))
    write("zds", "keep", ld(5, ld(1, "uid-123")))
    write("zds", "snapshot-sent", ld(3, b""))
    write("zds", "ack", ld(1, b""))
    write("zds", "nack", ld(1, ld(1, "pod uid-123 is not in the state")))
    write("zds", "hello-v1", varint(1 << 3 | 0) + varint(1))
    write("zds", "add-unknown-fields", ld(1, ld(1, "u") + ld(2, info + ld(4, "x")) +
                                         varint(9 << 3) + varint(300)))


# ---- cert: PEM and DER certificates, SPIFFE ids as text ----

def openssl(*args, stdin=None):
    return subprocess.run(["openssl"] + list(args), input=stdin, check=True,
                          capture_output=True).stdout


def seeds_cert():
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "k.pem")
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        for name, ext in (("spiffe", "subjectAltName=critical,URI:" + SA + "/client"),
                          ("two-uris", "subjectAltName=URI:%s/a,URI:%s/b" % (SA, SA)),
                          ("dns-only", "subjectAltName=DNS:example.com"),
                          ("no-san", "basicConstraints=critical,CA:TRUE")):
            pem = openssl("req", "-x509", "-new", "-key", key, "-subj", "/O=fuzz", "-days",
                          "1", "-addext", ext)
            write("cert", name + ".pem", pem)
            write("cert", name + ".der", openssl("x509", "-outform", "DER", stdin=pem))
    for name, text in (("id", SA + "/client"), ("id-td-only", "spiffe://td"),
                       ("id-empty-ns", "spiffe://td/ns//sa/x"),
                       ("id-extra", SA + "/client/extra")):
        write("cert", name + ".txt", text)


# ---- localcfg and policy: the local config YAML ----

POLICY_YAML = """workloads:
- {uid: "Kubernetes//Pod/default/server", name: server, namespace: default,
   serviceAccount: server, workloadIps: ["10.201.2.2", "fd00::2"], protocol: HBONE,
   authorizationPolicies: ["default/allow-client-sa"]}
- {uid: u2, name: plain, namespace: other, workloadIps: ["10.201.2.9"], protocol: TCP}
policies:
- {name: deny-all, namespace: default, scope: Namespace, action: Allow, rules: []}
- name: allow-client-sa
  namespace: default
  scope: WorkloadSelector
  action: Allow
  rules: [[[{principals: ["cluster.local/ns/default/sa/client", "*/sa/x", "td/*"]}]]]
- {name: deny-cidr, namespace: default, scope: Namespace, action: Deny,
   rules: [[[{sourceIps: ["10.201.1.0/24"], notDestinationPorts: [8080]}]]]}
- {name: deny-port, namespace: default, scope: Global, action: Deny, dryRun: true,
   rules: [[[{destinationPorts: [9999], notNamespaces: ["kube-system"]}]]]}
- {name: allow-get, namespace: default, scope: Namespace, action: Allow,
   rules: [[[{methods: ["GET"]}], [{namespaces: ["default"]}]]]}
peerAuthentications:
- {name: default, namespace: istio-system, mode: STRICT}
- {name: ns-permissive, namespace: default, mode: PERMISSIVE}
- {name: server, namespace: default, mode: DISABLE, selector: {matchLabels: {app: server}}}
"""


def seeds_yaml():
    data = os.path.join(ROOT, "tests", "e2e", "testdata")
    for target in ("localcfg", "policy"):
        for f in sorted(os.listdir(data)):
            shutil.copy(os.path.join(data, f), os.path.join(CORPUS, target, f))
        write(target, "policies.yaml", POLICY_YAML)
    write("localcfg", "services.yaml", """services:
- {name: web, namespace: default, hostname: web.default.svc.cluster.local,
   vips: ["/10.96.0.10", "net1/fd00:96::10"], ports: {80: 8080, 443: 0},
   subjectAltNames: ["spiffe://cluster.local/ns/default/sa/server"],
   waypoint: {destination: "/10.0.0.99", hboneMtlsPort: 15008}}
workloads:
- uid: u1
  name: w
  namespace: default
  workloadIps: ["10.0.0.1"]
  protocol: HBONE
  canonicalName: web
  canonicalRevision: v1
  services: {"default/web.default.svc.cluster.local": {80: 8080}}
""")
    write("localcfg", "empty-lists.yaml", "workloads:\nservices: ~\npolicies: []\n"
          "peerAuthentications: []\n")


# ---- hbone_head: :authority values ----

def seeds_hbone_head():
    for i, text in enumerate(("10.201.2.2:8080", "[fd00::2]:443", "[::ffff:10.201.2.2]:80",
                              "10.201.2.2:15008", "10.201.2.9:8080", "10.201.2.2:08080",
                              "10.201.2.2:65535", "10.201.2.2:65536", "10.201.2.2:",
                              "10.201.2.2", "[fd00::2]:0", "[fd00::2:8080",
                              "web.default.svc:80", "net1/10.201.2.2:80")):
        write("hbone_head", "authority-%02d" % i, text)


# ---- cni: network configs (a first line CNI_ARGS=... sets CNI_ARGS) ----

PREV = ('{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/x"}],'
        '"ips":[{"address":"10.1.0.5/24","interface":0}],"routes":[{"dst":"0.0.0.0/0"}],'
        '"dns":{"nameservers":["10.96.0.10"]}}')
ARGS = "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=foo;K8S_POD_UID=uid-123\n"


def cni_config(ver="1.0.0", prev=PREV, extra=""):
    p = ',"prevResult":' + prev if prev else ""
    return ('{"cniVersion":"%s","name":"k8s-pod-network","type":"ztunnel-cni",'
            '"ztunnel_socket":"/var/run/ztunnel/cni.sock"%s%s}' % (ver, p, extra))


def seeds_cni():
    write("cni", "add", ARGS + cni_config())
    write("cni", "add-0.4.0-no-args", cni_config("0.4.0"))
    write("cni", "add-runtime-config", ARGS + cni_config(
        extra=',"runtimeConfig":{"portMappings":[{"hostPort":80,"containerPort":8080}]},'
              '"capabilities":{"portMappings":true}'))
    write("cni", "no-prev-result", ARGS + cni_config(prev=None))
    write("cni", "prev-not-object", ARGS + cni_config(prev='"x"'))
    write("cni", "version-2.0.0", ARGS + cni_config("2.0.0"))
    write("cni", "socket-too-long", ARGS + cni_config().replace(
        "/var/run/ztunnel/cni.sock", "/" + "s" * 120))
    write("cni", "args-bad", "CNI_ARGS=K8S_POD_NAME\n" + cni_config())
    write("cni", "not-json", ARGS + '{"cniVersion": "1.0.0", ')
    write("cni", "array", "[1, 2]")
    write("cni", "utf8", ARGS + cni_config().replace("k8s-pod-network", "r\u00e9seau\u2603"))


# ---- dns: selector byte (bit 0: client namespace prod, bit 1: TCP), then a DNS query ----

def dns_name(name):
    out = b""
    for label in name.strip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def dns_query(name, qtype=1, qid=0x4242, flags=0x0100, edns=0):
    q = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    q += dns_name(name) + struct.pack("!HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack("!HHIH", 41, edns, 0, 0)
    return q


def seeds_dns():
    names = ("web.default.svc.cluster.local", "web", "web.prod", "web.default.svc", "db",
             "example.com.default.svc.cluster.local", "a.b.wild.example", "www.debian.org",
             "WEB.Default.svc.cluster.local", "many")
    for i, n in enumerate(names):
        write("dns", "a-%02d" % i, b"\0" + dns_query(n))
    write("dns", "aaaa-web", b"\1" + dns_query("web", 28))
    write("dns", "srv-web-tcp", b"\2" + dns_query("_http._tcp.web", 33))
    write("dns", "edns-many", b"\0" + dns_query("many", edns=4096))
    write("dns", "opcode-status", b"\0" + dns_query("web", flags=0x1100))
    write("dns", "response", b"\0" + dns_query("web", flags=0x8180))
    hdr = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    write("dns", "pointer-self", b"\0" + hdr + b"\xc0\x0c\x00\x01\x00\x01")
    write("dns", "pointer-loop", b"\0" + hdr + b"\x01a\xc0\x10\xc0\x0c\x00\x01\x00\x01")
    write("dns", "truncated", b"\0" + hdr + b"\x05ww")
    write("dns", "two-questions", b"\0" + struct.pack("!HHHHHH", 1, 0x0100, 2, 0, 0, 0) +
          dns_name("web") + b"\0\1\0\1" + dns_name("db") + b"\0\1\0\1")


TARGETS = {"dns": seeds_dns, "xds": seeds_xds, "zds": seeds_zds, "cert": seeds_cert, "localcfg": seeds_yaml,
           "policy": seeds_yaml, "hbone_head": seeds_hbone_head, "cni": seeds_cni}


def main():
    done = set()
    for target in sys.argv[1:] or TARGETS:
        fn = TARGETS[target]
        if fn in done:
            continue
        done.add(fn)
        for t in [k for k, v in TARGETS.items() if v is fn]:
            shutil.rmtree(os.path.join(CORPUS, t), ignore_errors=True)
            os.makedirs(os.path.join(CORPUS, t))
        fn()
    for t in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, t)
        files = os.listdir(d)
        print("%-10s %3d seeds %6d bytes" % (t, len(files),
                                             sum(os.path.getsize(os.path.join(d, f))
                                                 for f in files)))


if __name__ == "__main__":
    main()
