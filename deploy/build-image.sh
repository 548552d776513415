#!/usr/bin/env bash
# Build the CPU image the way an air-gapped site would (what `make image` runs):
#   1. a Debian base made here with debootstrap (from the host's own Debian mirror), imported as a local image;
#   2. `buildah bud --isolation chroot -f deploy/Containerfile` on top of it.
# No registry is contacted: the base is local, and pip inside the build uses this machine's own package index
# configuration (pip.conf, PIP_* variables), passed in at build time as a secret mount and never written to a
# layer. Local index folders that configuration names (file:// URLs, find-links folders, constraint files) are
# bind-mounted read-only for the build only.
#
# Environment (all optional):
#   IMAGE        the image to build               (default localhost/domain-assistant:cpu)
#   BASE_IMAGE   the local Debian base            (default localhost/debian-bookworm-base:latest)
#   SUITE        the Debian release               (default bookworm: python3.11, the torch wheel's Python)
#   MIRROR       the Debian mirror for debootstrap (default: the first URIs/deb line of the host's apt sources)
#   WORK         scratch folder for the rootfs     (default build/image)
#   REBUILD_BASE=1  debootstrap again even if BASE_IMAGE exists
#   BUD_ARGS     extra arguments for buildah bud (e.g. --build-arg LLAMA_CMAKE_ARGS=...)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/domain-assistant:cpu}
BASE_IMAGE=${BASE_IMAGE:-localhost/debian-bookworm-base:latest}
SUITE=${SUITE:-bookworm}
WORK=${WORK:-build/image}
PYTHON=${PYTHON:-python3}
log() { printf '[build-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need() {
  local missing=()
  for tool in debootstrap buildah; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]})); then
    [ "$(id -u)" = 0 ] || { echo "error: needs ${missing[*]} (apt-get install debootstrap buildah) and root" >&2; exit 2; }
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap buildah >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap buildah >/dev/null; }
  fi
  [ "$(id -u)" = 0 ] || { echo "error: debootstrap and chroot builds need root" >&2; exit 2; }
}

host_mirror() {
  # The host's Debian mirror: deb822 sources first, then one-line sources.
  local m
  m=$(grep -h -A3 -E '^Types:.*deb' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -m1 -oP '^URIs:\s*\K\S+/debian(?=/?$)' || true)
  [ -n "$m" ] || m=$(grep -h -m1 -oP '^deb\s+(\[[^]]*\]\s+)?\K\S+/debian(?=/?\s)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1 || true)
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  if [ -z "${REBUILD_BASE:-}" ] && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base $BASE_IMAGE exists (REBUILD_BASE=1 to make it again)"; return
  fi
  local mirror=${MIRROR:-$(host_mirror)} rootfs="$WORK/rootfs"
  log "debootstrap $SUITE from $mirror into $rootfs"
  rm -rf "$rootfs"; mkdir -p "$rootfs"
  # minbase: dpkg, apt and essentials only; the Containerfile installs python3 and the rest with apt.
  debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  # The image's apt sources: the same mirror, plus updates and security where they are the standard ones.
  printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" >"$rootfs/etc/apt/sources.list"
  case "$mirror" in *deb.debian.org*) printf 'deb http://deb.debian.org/debian-security %s-security main\n' "$SUITE" >>"$rootfs/etc/apt/sources.list" ;; esac
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  log "importing $rootfs as $BASE_IMAGE"
  tar --numeric-owner -C "$rootfs" -cf "$WORK/rootfs.tar" .
  local ctr
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$WORK/rootfs.tar" / >/dev/null          # a local tar archive is unpacked, owners kept
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash \
    --label org.opencontainers.image.description="Debian $SUITE minbase, debootstrap from $mirror" "$ctr"
  buildah commit --rm "$ctr" "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs" "$WORK/rootfs.tar"
}

pip_config() {
  # This machine's pip configuration (files and PIP_* variables, as pip itself merges them) as one pip.conf,
  # and the local folders it names, to bind-mount read-only during the build.
  "$PYTHON" - "$WORK/pip.conf" "$WORK/pip-mounts" <<'PY'
import os, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
conf, mounts = {}, set()
for line in out.splitlines():
    key, _, value = line.partition("=")
    value = value.strip().strip("'\"")
    name = key.split(".", 1)[1] if "." in key else key
    if key.startswith(":env:.") or key.startswith("global.") or key.startswith("install."):
        conf.setdefault(name, value)  # pip gives the environment precedence, and lists it first
for name, value in conf.items():
    if name in ("index-url", "extra-index-url", "find-links", "constraint", "requirement"):
        for item in value.split():
            path = item[len("file://"):] if item.startswith("file://") else item
            if path.startswith("/") and os.path.exists(path):
                top = path if os.path.isdir(path) else os.path.dirname(path)
                # A local "simple" index links to its files beside it (../files/...): mount its parent.
                if os.path.basename(top.rstrip("/")) == "simple":
                    top = os.path.dirname(top.rstrip("/"))
                mounts.add(top)
# The CA bundle pip trusts (a site's own CA, where its mirror or proxy has one) travels as a secret of its own:
# the image keeps Debian's bundle.
if "cert" in conf:
    conf["cert"] = "/run/secrets/pipcert"
with open(sys.argv[1], "w") as f:
    f.write("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(conf.items())))
# Folders only, outermost first, none inside another.
kept = []
for m in sorted(mounts, key=len):
    if not any(m == k or m.startswith(k.rstrip("/") + "/") for k in kept):
        kept.append(m)
with open(sys.argv[2], "w") as f:
    f.write("\n".join(kept) + ("\n" if kept else ""))
PY
}

pip_cert() {
  # The CA bundle of the host's pip configuration (its `cert`), else the system's.
  "$PYTHON" -m pip config list 2>/dev/null | grep -oP '(^|\.)cert=.\K[^'"'"'"]+' | head -1 | grep . || echo /etc/ssl/certs/ca-certificates.crt
}

build_image() {
  pip_config
  local args=() m
  while read -r m; do [ -n "$m" ] && args+=(--volume "$m:$m:ro"); done <"$WORK/pip-mounts"
  log "pip configuration for the build: $(tr '\n' ' ' <"$WORK/pip.conf")"
  log "buildah bud $IMAGE (mounts: ${args[*]:-none})"
  local t0=$SECONDS
  # shellcheck disable=SC2086
  buildah bud --isolation chroot --layers --format docker -f deploy/Containerfile -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --secret id=pipconf,src="$WORK/pip.conf" --secret id=pipcert,src="$(pip_cert)" \
    "${args[@]}" ${BUD_ARGS:-} .
  log "built $IMAGE in $((SECONDS - t0)) s"
  buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2 || true
}

mkdir -p "$WORK"
need
case "${1:-all}" in
  base) build_base ;;
  image) build_image ;;
  all) t=$SECONDS; build_base; build_image; log "total $((SECONDS - t)) s" ;;
  *) echo "usage: $0 [base|image|all]" >&2; exit 2 ;;
esac
