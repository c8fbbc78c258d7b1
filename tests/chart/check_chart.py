#!/usr/bin/env python3
"""Renders helm/ztunnel with tests/chart/render (Go text/template + Sprig, Helm's engine) for the
default values and overrides, and checks the DaemonSet: valid YAML, upstream's shape, the image
and args, the agent's own values, that every variable it sets is one the agent reads (its
settings table in agent/config/config.c), and that bad values fail with a clear message."""
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RENDER = os.path.join(ROOT, "build", "chart-render")
CHART = os.path.join(ROOT, "helm", "ztunnel")
failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what)
    if not cond:
        failures.append(what)


def render(*args):
    p = subprocess.run([RENDER, CHART, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def daemonset(*args):
    rc, out, err = render(*args)
    if rc != 0:
        check(False, f"render {args} succeeds: {err.strip()}")
        return None
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = [d.get("kind") for d in docs]
    check(kinds.count("DaemonSet") == 1 and "ServiceAccount" in kinds,
          f"render {args}: one DaemonSet and a ServiceAccount (got {kinds})")
    return next(d for d in docs if d.get("kind") == "DaemonSet")


def agent_settings():
    """Variable names in the agent's settings table, plus the few read beside it."""
    src = open(os.path.join(ROOT, "agent", "config", "config.c")).read()
    table = src[src.index("static const struct setting settings[]"):]
    table = table[:table.index("};")]
    return set(re.findall(r'\{\s*"([A-Z0-9_]+)",\s*K_', table))


def container(ds, name):
    cs = ds["spec"]["template"]["spec"]["containers"]
    return next((c for c in cs if c["name"] == name), None)


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def volumes(ds):
    return {v["name"]: v for v in ds["spec"]["template"]["spec"]["volumes"]}


SETTINGS = agent_settings()
check(len(SETTINGS) > 40 and "RUST_LOG" in SETTINGS and "KEEPALIVE_TIME" in SETTINGS,
      f"the agent's settings table was read ({len(SETTINGS)} variables)")

version = re.search(r'#define ZTUNNEL_VERSION "([^"]+)"',
                    open(os.path.join(ROOT, "agent", "metrics", "render.c")).read()).group(1)
chart_meta = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
chart_values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
check(chart_meta["appVersion"] == version and chart_values["tag"] == version,
      f"chart appVersion and tag are the agent's version {version} (make image's tag)")

# --- default values ---
ds = daemonset()
pod = ds["spec"]["template"]["spec"]
c = container(ds, "istio-proxy")
check(c is not None, "container istio-proxy")
check(c["image"] == "localhost/ztunnel-c:0.1.0-c", f"default image ({c['image']})")
check(c["args"] == ["proxy", "ztunnel"], "args: proxy ztunnel")
sc = c["securityContext"]
check(sc["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN", "NET_RAW"]},
      f"capabilities drop ALL, add NET_ADMIN SYS_ADMIN NET_RAW ({sc['capabilities']})")
check(sc["runAsUser"] == 0 and sc["runAsGroup"] == 1337 and sc["readOnlyRootFilesystem"] is True
      and sc["privileged"] is False and sc["allowPrivilegeEscalation"] is True,
      "runAsUser 0, runAsGroup 1337, readOnlyRootFilesystem, not privileged")
check(pod["priorityClassName"] == "system-node-critical", "priorityClassName system-node-critical")
check(pod["terminationGracePeriodSeconds"] == 30, "terminationGracePeriodSeconds 30")
check(not pod.get("hostNetwork"), "the pod has its own network namespace (as upstream)")
vols = volumes(ds)
tok = vols["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
check(tok == {"path": "istio-token", "expirationSeconds": 43200, "audience": "istio-ca"},
      "projected istio-token, audience istio-ca")
check(vols["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert", "istio-ca-root-cert ConfigMap")
check(vols["cni-ztunnel-sock-dir"]["hostPath"] == {"path": "/var/run/ztunnel", "type": "DirectoryOrCreate"},
      "hostPath /var/run/ztunnel DirectoryOrCreate")
check(vols["tmp"] == {"name": "tmp", "emptyDir": {}}, "/tmp emptyDir")
check("bpffs" not in vols, "no bpffs with nftables")
mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
check(mounts == {"/var/run/secrets/istio": "istiod-ca-cert", "/var/run/secrets/tokens": "istio-token",
                 "/var/run/ztunnel": "cni-ztunnel-sock-dir", "/tmp": "tmp"}, f"agent mounts {mounts}")
check(c["readinessProbe"] == {"httpGet": {"path": "/healthz/ready", "port": 15021}}, "readiness on 15021")
check(c["ports"] == [{"name": "ztunnel-stats", "containerPort": 15020, "protocol": "TCP"}], "port 15020")
ann = ds["spec"]["template"]["metadata"]["annotations"]
check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == "15020",
      "Prometheus scrape annotations")
check(ds["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
      "RollingUpdate maxSurge 1 / maxUnavailable 0")
tol = pod["tolerations"]
check({"effect": "NoSchedule", "operator": "Exists"} in tol and
      {"effect": "NoExecute", "operator": "Exists"} in tol, "tolerates every taint")
env = env_of(c)
for name, field in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace"),
                    ("NODE_NAME", "spec.nodeName"), ("INSTANCE_IP", "status.podIP"),
                    ("SERVICE_ACCOUNT", "spec.serviceAccountName")]:
    check(env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == field,
          f"{name} from the downward API ({field})")
check(env["ZTUNNEL_CPU_LIMIT"]["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu",
      "ZTUNNEL_CPU_LIMIT from limits.cpu")
check(env["XDS_ADDRESS"]["value"] == "istiod.istio-system.svc:15012" and
      env["CA_ADDRESS"]["value"] == "istiod.istio-system.svc:15012", "istiod address")
check(env["RUST_LOG"]["value"] == "info" and env["ISTIO_META_CLUSTER_ID"]["value"] == "Kubernetes"
      and env["TERMINATION_GRACE_PERIOD_SECONDS"]["value"] == "30", "RUST_LOG, cluster id, grace period")
check(env["ZTUNNEL_REDIRECT"]["value"] == "nftables" and "INPOD_UDS" not in env,
      "nftables capture, pods enrolled by ztunnel-cni")
unknown = sorted(set(env) - SETTINGS)
check(not unknown, f"every variable the chart sets is read by the agent (unknown: {unknown})")
inst = container(ds, "install-cni")
check(inst is not None and inst["command"][:2] == ["/usr/local/bin/ztunnel-cni", "install"]
      and "--watch" in inst["command"], "install-cni container (cni.install defaults to true)")
check(inst["securityContext"]["capabilities"] == {"drop": ["ALL"]}, "install-cni has no capability")
check(vols["cni-bin-dir"]["hostPath"]["path"] == "/opt/cni/bin" and
      vols["cni-net-dir"]["hostPath"]["path"] == "/etc/cni/net.d", "host CNI dirs mounted for it")

# --- overrides ---
ds = daemonset("--set", "redirect=ebpf")
c, vols = container(ds, "istio-proxy"), volumes(ds)
check(env_of(c)["ZTUNNEL_REDIRECT"]["value"] == "ebpf", "redirect=ebpf -> ZTUNNEL_REDIRECT=ebpf")
check(vols.get("bpffs", {}).get("hostPath", {}).get("path") == "/sys/fs/bpf" and
      {"name": "bpffs", "mountPath": "/sys/fs/bpf"} in c["volumeMounts"], "redirect=ebpf mounts bpffs")

ds = daemonset("--set", "redirect=none", "--set", "cni.install=false")
c = container(ds, "istio-proxy")
env = env_of(c)
check(env["ZTUNNEL_REDIRECT"]["value"] == "none" and
      env["INPOD_UDS"]["value"] == "/var/run/ztunnel/ztunnel.sock" and
      env["INPOD_ENABLED"]["value"] == "true", "redirect=none: istio-cni enrolls over its ZDS socket")
check(container(ds, "install-cni") is None and "cni-bin-dir" not in volumes(ds),
      "cni.install=false: no install-cni container, no host CNI dirs")

ds = daemonset("--set", "revision=canary", "--set", "logAsJson=true", "--set", "logLevel=ztunnel=debug",
               "--set", "multiCluster.clusterName=east", "--set", "network=net1",
               "--set", "terminationGracePeriodSeconds=60", "--set", "env.KEEPALIVE_TIME=30s",
               "--set", "hub=registry.example.com/mesh", "--set", "tag=9.9", "-n", "mesh")
c = container(ds, "istio-proxy")
env = env_of(c)
check(env["XDS_ADDRESS"]["value"] == "istiod-canary.istio-system.svc:15012", "revision picks istiod-canary")
check(env["LOG_FORMAT"]["value"] == "json" and env["RUST_LOG"]["value"] == "ztunnel=debug",
      "logAsJson and logLevel")
check(env["ISTIO_META_CLUSTER_ID"]["value"] == "east" and env["NETWORK"]["value"] == "net1",
      "multiCluster.clusterName and network")
check(env["KEEPALIVE_TIME"]["value"] == "30s", "env adds variables")
check(ds["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60 and
      env["TERMINATION_GRACE_PERIOD_SECONDS"]["value"] == "60", "terminationGracePeriodSeconds")
check(c["image"] == "registry.example.com/mesh/ztunnel-c:9.9", f"hub and tag ({c['image']})")
check(ds["metadata"]["namespace"] == "mesh", "release namespace")
check(ds["spec"]["template"]["metadata"]["annotations"].get("istio.io/rev") == "canary", "istio.io/rev")
unknown = sorted(set(env) - SETTINGS)
check(not unknown, f"overrides set only variables the agent reads (unknown: {unknown})")

ds = daemonset("--set", "image=example.org/zt:1", "--set", "caAddress=ca.example:15012",
               "--set", "xdsAddress=xds.example:15012")
c = container(ds, "istio-proxy")
env = env_of(c)
check(c["image"] == "example.org/zt:1", "an image with a / is taken as it is")
check(env["CA_ADDRESS"]["value"] == "ca.example:15012" and env["XDS_ADDRESS"]["value"] == "xds.example:15012",
      "caAddress and xdsAddress")

# upstream's own values keys in a file
vf = os.path.join(ROOT, "build", "chart-upstream-values.yaml")
with open(vf, "w") as f:
    f.write("hub: localhost\ntag: 0.1.0-c\nresources:\n  requests: {cpu: 500m, memory: 1Gi}\n"
            "podAnnotations: {prometheus.io/port: '15020', prometheus.io/scrape: 'false'}\n"
            "meshConfig:\n  defaultConfig:\n    proxyMetadata: {KEEPALIVE_RETRIES: '3'}\n")
ds = daemonset("-f", vf)
c = container(ds, "istio-proxy")
check(c["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}}, "resources from a values file")
check(env_of(c)["KEEPALIVE_RETRIES"]["value"] == "3", "meshConfig.defaultConfig.proxyMetadata as env")

# --- bad values fail with a clear message ---
rc, out, err = render("--set", "redirect=iptables")
check(rc != 0 and 'redirect is "iptables"' in err and "nftables, ebpf or none" in err,
      f"unknown redirect fails rendering: {err.strip()}")
rc, out, err = render("--set", "redirect=none")
check(rc != 0 and "cni.install" in err, f"redirect=none with cni.install fails: {err.strip()}")

print(f"{'FAILED' if failures else 'all chart checks passed'} ({len(failures)} failures)")
sys.exit(1 if failures else 0)
