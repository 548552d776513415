#!/usr/bin/env bash
# Smoke test of the CPU image (`make image-smoke`; many minutes, so not part of `make test`):
#   * builds it with deploy/build-image.sh unless it exists (BUILD=1 rebuilds; the build time is reported then);
#   * inside it (`buildah run --isolation chroot`, as its unprivileged user: `podman run` does not work in every
#     sandbox, this does), ingests the sample medical documents, starts `assistant serve` as the entrypoint
#     would, waits for /readyz and asks one question over HTTP with the embedded models (deploy/smoke_driver.py);
#   * reports the image size, the build time, the ingest time, the cold start to the first answer and memory;
#   * checks the run stays within MEMORY_LIMIT (4G): the whole process tree runs in a memory cgroup with that
#     limit (cgroup v1 or v2, where the host lets root make one), so going over it fails the run (OOM kill), and
#     the peak of the tree's resident memory (anon + mapped file, sampled) and the cgroup's own peak are printed.
# Prints one JSON line of figures last; exit 0 when the question was answered with citations inside the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/domain-assistant:cpu}
MEMORY_LIMIT=${MEMORY_LIMIT:-4G}
log() { printf '[smoke %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
[ "$(id -u)" = 0 ] || { echo "error: buildah chroot runs need root" >&2; exit 2; }

build_s=null
if [ -n "${BUILD:-}" ] || ! buildah inspect --type image "$IMAGE" >/dev/null 2>&1; then
  log "building $IMAGE"
  t=$SECONDS
  IMAGE=$IMAGE bash deploy/build-image.sh all
  build_s=$((SECONDS - t))
fi
size=$(buildah images --format '{{.Size}}' "$IMAGE" | head -1)   # uncompressed, as stored
log "image $IMAGE: $size"

ctr=$(buildah from --pull-never "$IMAGE")
cg=""
cleanup() {
  [ -n "${sampler:-}" ] && kill "$sampler" 2>/dev/null || true
  buildah rm "$ctr" >/dev/null 2>&1 || true
  [ -n "$cg" ] && rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT

# A memory cgroup for the run: v1 (memory.limit_in_bytes) or v2 (memory.max).
to_bytes() { numfmt --from=iec "$1"; }
limit=$(to_bytes "$MEMORY_LIMIT")
if [ -d /sys/fs/cgroup/memory ] && mkdir -p "/sys/fs/cgroup/memory/assistant-smoke-$$" 2>/dev/null; then
  cg=/sys/fs/cgroup/memory/assistant-smoke-$$
  echo "$limit" >"$cg/memory.limit_in_bytes"
  echo "$limit" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
  peak_file=$cg/memory.max_usage_in_bytes
  rss_now() { awk '$1=="total_rss"||$1=="total_mapped_file"{s+=$2} END{print s}' "$cg/memory.stat"; }
  oom_kills() { awk '$1=="oom_kill"{print $2}' "$cg/memory.oom_control"; }
elif [ -f /sys/fs/cgroup/cgroup.controllers ] && mkdir -p "/sys/fs/cgroup/assistant-smoke-$$" 2>/dev/null; then
  cg=/sys/fs/cgroup/assistant-smoke-$$
  echo "$limit" >"$cg/memory.max"
  echo 0 >"$cg/memory.swap.max" 2>/dev/null || true
  peak_file=$cg/memory.peak
  rss_now() { awk '$1=="anon"||$1=="file_mapped"{s+=$2} END{print s}' "$cg/memory.stat"; }
  oom_kills() { awk '$1=="oom_kill"{print $2}' "$cg/memory.events"; }
else
  log "note: no memory cgroup could be made here; the limit is not enforced, only the largest process is measured"
fi

# Sample the tree's resident memory every 0.2 s (the cgroup's own peak also counts page cache).
rss_peak_file=$(mktemp)
echo 0 >"$rss_peak_file"
if [ -n "$cg" ]; then
  (peak=0; while sleep 0.2; do v=$(rss_now); [ "${v:-0}" -gt "$peak" ] && { peak=$v; echo "$peak" >"$rss_peak_file"; }; done) &
  sampler=$!
fi

log "ingest + serve + first answer inside the image (memory limit $MEMORY_LIMIT)"
result=$(mktemp)
set +e
(
  [ -n "$cg" ] && echo "$BASHPID" >"$cg/cgroup.procs"
  exec buildah run --isolation chroot --user assistant --volume "$PWD/deploy/smoke_driver.py:/smoke_driver.py:ro" \
    --env ASSISTANT_INDEX_DIR=/tmp/smoke-indexes "$ctr" -- python3 /smoke_driver.py
) >"$result"
rc=$?
set -e
tail -1 "$result" >&2

python3 - "$result" "$rc" "$build_s" "$size" "$MEMORY_LIMIT" "$limit" "$(cat "$rss_peak_file")" \
  "$( [ -n "$cg" ] && cat "$peak_file" || echo null)" "$( [ -n "$cg" ] && oom_kills || echo null)" <<'PY'
import json, sys
path, rc, build_s, size, limit_text, limit, rss_peak, cg_peak, ooms = sys.argv[1:]
try:
    run = json.loads(open(path).read().strip().splitlines()[-1])
except (IndexError, ValueError):
    run = {}
mb = lambda v: None if v in ("null", "", None) else round(int(v) / 2**20)
figures = {
    "image_size": size,
    "build_s": None if build_s == "null" else int(build_s),
    "ingest_s": run.get("ingest_s"),
    "ingest_documents": run.get("ingest_documents"),
    "cold_start_ready_s": run.get("ready_s"),
    "cold_start_to_first_answer_s": run.get("cold_start_to_first_answer_s"),
    "first_answer_s": run.get("first_answer_s"),
    "answer": run.get("answer"),
    "citations": run.get("citations"),
    "memory_limit": limit_text,
    "peak_tree_rss_mb": mb(rss_peak) if rss_peak != "0" else None,
    "peak_cgroup_mb_incl_page_cache": mb(cg_peak),
    "max_single_process_rss_mb": run.get("max_child_rss_mb"),
    "oom_kills": None if ooms == "null" else int(ooms),
}
ok = rc == "0" and bool(run.get("answer")) and (figures["oom_kills"] in (None, 0))
if figures["peak_tree_rss_mb"] is not None:
    ok = ok and figures["peak_tree_rss_mb"] * 2**20 <= int(limit)
figures["passed"] = ok
print(json.dumps(figures))
sys.exit(0 if ok else 1)
PY
