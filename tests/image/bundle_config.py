#!/usr/bin/env python3
"""Writes the runc config.json for node1's agent in the image test: what the chart asks of
Kubernetes, read from the rendered DaemonSet (container istio-proxy), applied to the config
`umoci unpack` made from the image:

- process: the image's entrypoint + the chart's args; user runAsUser:runAsGroup; capabilities
  exactly the chart's `add` (bounding, effective, permitted; none inheritable or ambient);
  noNewPrivileges = not allowPrivilegeEscalation; no process.rlimits (this VM refuses to set
  another process's rlimits: the agent inherits runc's and raises its own soft limit);
- root read-only when readOnlyRootFilesystem;
- env: the chart's values, the downward API fields filled in as Kubernetes would; XDS_ADDRESS
  and CA_ADDRESS dropped (the testbed has no istiod: --env gives the local config and CA);
- mounts: each volumeMount from its volume (hostPath -> --host-path, emptyDir -> tmpfs,
  projected token / ConfigMap -> a read-only directory under --k8s-dir), plus --extra-mount;
- namespaces: new pid, ipc, uts, mount; the network namespace --netns (the agent pod's).

  bundle_config.py BASE_CONFIG RENDERED_CHART OUT --rootfs DIR --netns PATH --k8s-dir DIR
      [--host-path HOST=LOCAL]... [--field PATH=VALUE]... [--env K=V]... [--extra-mount SRC:DST:OPTS]...
"""
import argparse
import json
import os

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("base")
ap.add_argument("chart")
ap.add_argument("out")
ap.add_argument("--rootfs", required=True)
ap.add_argument("--netns", required=True)
ap.add_argument("--k8s-dir", required=True)
ap.add_argument("--host-path", action="append", default=[])
ap.add_argument("--field", action="append", default=[])
ap.add_argument("--env", action="append", default=[])
ap.add_argument("--extra-mount", action="append", default=[])
a = ap.parse_args()

cfg = json.load(open(a.base))
docs = [d for d in yaml.safe_load_all(open(a.chart)) if d]
ds = next(d for d in docs if d.get("kind") == "DaemonSet")
pod = ds["spec"]["template"]["spec"]
c = next(x for x in pod["containers"] if x["name"] == "istio-proxy")
sc = c["securityContext"]
host_paths = dict(kv.split("=", 1) for kv in a.host_path)
fields = dict(kv.split("=", 1) for kv in a.field)

proc = cfg["process"]
proc["args"] = proc["args"][:1] + c.get("args", [])  # entrypoint, then the pod's args
proc["terminal"] = False
proc["cwd"] = proc.get("cwd") or "/"
proc.pop("rlimits", None)
proc["user"] = {"uid": sc["runAsUser"], "gid": sc["runAsGroup"]}
assert sc["capabilities"]["drop"] == ["ALL"]
caps = ["CAP_" + x for x in sc["capabilities"]["add"]]
proc["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                        "inheritable": [], "ambient": []}
proc["noNewPrivileges"] = not sc["allowPrivilegeEscalation"]
assert sc.get("privileged") is False
cfg["root"] = {"path": os.path.abspath(a.rootfs), "readonly": bool(sc["readOnlyRootFilesystem"])}
cfg["hostname"] = fields.get("metadata.name", "ztunnel")

env = {kv.split("=", 1)[0]: kv.split("=", 1)[1] for kv in proc.get("env", [])}
for e in c.get("env", []):
    if e["name"] in ("XDS_ADDRESS", "CA_ADDRESS"):
        continue
    if "value" in e:
        env[e["name"]] = str(e["value"])
    elif "fieldRef" in e["valueFrom"]:
        env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
    elif "resourceFieldRef" in e["valueFrom"]:  # no limit set: Kubernetes gives the node's CPUs
        env[e["name"]] = str(os.cpu_count())
    else:
        raise SystemExit(f"env {e['name']}: unsupported source {e['valueFrom']}")
for kv in a.env:
    k, v = kv.split("=", 1)
    env[k] = v
proc["env"] = [f"{k}={v}" for k, v in env.items()]

volumes = {v["name"]: v for v in pod["volumes"]}
mounts = [m for m in cfg["mounts"] if m["destination"] in
          ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys")]
for vm in c["volumeMounts"]:
    v = volumes[vm["name"]]
    ro = ["ro"] if vm.get("readOnly") else []
    if "hostPath" in v:
        src = host_paths[v["hostPath"]["path"]]
        os.makedirs(src, exist_ok=True)  # DirectoryOrCreate
        mounts.append({"destination": vm["mountPath"], "type": "bind", "source": src,
                       "options": ["rbind", "rprivate"] + ro})
    elif "emptyDir" in v:
        mounts.append({"destination": vm["mountPath"], "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "mode=1777"]})
    elif "projected" in v or "configMap" in v:  # Kubernetes mounts these read-only
        src = os.path.join(a.k8s_dir, vm["name"])
        os.makedirs(src, exist_ok=True)
        mounts.append({"destination": vm["mountPath"], "type": "bind", "source": src,
                       "options": ["rbind", "rprivate", "ro"]})
    else:
        raise SystemExit(f"volume {vm['name']}: unsupported kind {sorted(v)}")
for spec in a.extra_mount:
    src, dst, opts = spec.split(":", 2)
    mounts.append({"destination": dst, "type": "bind", "source": src, "options": opts.split(",")})
cfg["mounts"] = mounts

linux = cfg.setdefault("linux", {})
linux["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + \
                      [{"type": "network", "path": a.netns}]
linux.pop("uidMappings", None)
linux.pop("gidMappings", None)
json.dump(cfg, open(a.out, "w"), indent=1)
