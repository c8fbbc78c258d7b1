#!/usr/bin/env bash
# Builds the ztunnel-c OCI image without any registry image: a root filesystem of Debian
# packages only (mmdebstrap: the runtime libraries the agent and the CNI plugin link, found from
# the binaries themselves), plus build/ztunnel and build/ztunnel-cni, committed as one layer with
# umoci and exported as an OCI archive: build/ztunnel-c-<tag>.oci.tar (tag ztunnel-c:<tag>).
#   image/build.sh TAG
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:?usage: image/build.sh TAG}
OUT=build/image
ARCHIVE=build/ztunnel-c-$TAG.oci.tar
for b in build/ztunnel build/ztunnel-cni; do [ -x "$b" ] || { echo "$b not built" >&2; exit 1; }; done

# the Debian packages that own the shared libraries the two binaries load
pkgs=$(for lib in $(ldd build/ztunnel build/ztunnel-cni | awk '/=> \//{print $3}' | sort -u); do
	real=$(realpath "$lib")
	for f in "$lib" "/usr$lib" "$real" "/usr$real"; do
		p=$(dpkg -S "$f" 2>/dev/null) && { echo "${p%%:*}"; break; }
	done || { echo "no Debian package owns $lib" >&2; exit 1; }
done | sort -u | paste -sd, -)
echo "image: Debian packages: $pkgs"

rm -rf "$OUT" "$ARCHIVE"
mkdir -p "$OUT"
# the machine's own Debian sources (release and security updates: the versions built against)
suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
# extract: unpack the packages (and what they depend on) and run no maintainer script: a root
# filesystem of libraries with no shell, package manager or init. (This variant runs setup and
# extract hooks only, never customize hooks.)
mmdebstrap --quiet --mode=root --variant=extract --include="$pkgs" \
	--extract-hook='mkdir -p "$1/usr/local/bin" "$1/tmp" "$1/run" "$1/var" "$1/proc" "$1/sys" "$1/dev" "$1/etc"' \
	--extract-hook='ln -sfn /run "$1/var/run"; chmod 1777 "$1/tmp"' \
	--extract-hook='install -m 0755 build/ztunnel build/ztunnel-cni "$1/usr/local/bin/"' \
	--extract-hook='printf "root:x:0:0:root:/:/nonexistent\n" >"$1/etc/passwd"; printf "root:x:0:\nistio-proxy:x:1337:\n" >"$1/etc/group"' \
	--extract-hook='rm -rf "$1/usr/share/doc" "$1/usr/share/man" "$1/usr/share/info" "$1/usr/share/locale" "$1/var/cache/apt" "$1/var/lib/apt/lists"' \
	"$suite" "$OUT/rootfs.tar" "$sources"

umoci init --layout "$OUT/oci"
umoci new --image "$OUT/oci:$TAG"
umoci raw add-layer --image "$OUT/oci:$TAG" "$OUT/rootfs.tar" \
	--history.created_by="image/build.sh: mmdebstrap $suite ($pkgs) + ztunnel, ztunnel-cni"
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
umoci config --image "$OUT/oci:$TAG" --created "$created" --author "ztunnel-c" \
	--config.entrypoint /usr/local/bin/ztunnel --config.workingdir / --config.user 0:0 \
	--config.exposedports 15020/tcp --config.exposedports 15021/tcp \
	--config.label "org.opencontainers.image.title=ztunnel-c" \
	--config.label "org.opencontainers.image.version=$TAG" \
	--no-history
umoci gc --layout "$OUT/oci"
# the name runtimes give the image on import (containerd's import reads this annotation)
python3 - "$OUT/oci/index.json" "$TAG" <<'PY'
import json, sys
path, tag = sys.argv[1], sys.argv[2]
idx = json.load(open(path))
for m in idx["manifests"]:
    m.setdefault("annotations", {})["io.containerd.image.name"] = "localhost/ztunnel-c:" + tag
json.dump(idx, open(path, "w"))
PY
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 -C "$OUT/oci" -cf "$ARCHIVE" .
[ -n "${KEEP_ROOTFS_TAR:-}" ] || rm -f "$OUT/rootfs.tar"
echo "image: $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1)), ztunnel-c:$TAG, layout $OUT/oci:$TAG"
