#!/usr/bin/env bash
# Build the Docker image on this machine and check it as a user would, with a daemon of its own.
#
#   docker/test.sh            # from the repository (as root, on Debian); .ci/run runs it
#
# No image registry is reachable here, so the base image is made locally: debootstrap (Debian minbase
# with python3 and its venv) imported into Docker, then `docker build --build-arg BASE=...`. pip inside
# the build gets this machine's settings (its index configuration and CA bundle) through docker/pip/,
# which git ignores. Checks: `--version`; `infer` on a mounted sample_set writes the host's rows; the
# server answers /health and /predict like the host; it runs as a non-root user; `docker stop` is
# prompt. Where it cannot run (not root, no apt-get, no Docker daemon possible, too little disk for the
# build: PERSPECTIVE_DOCKER_NEED_GB, 16 by default) it says "skipped: why".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
IMAGE=perspective:test
BASE=perspective-base:local

skip() { echo "docker/test.sh: skipped: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (to start its own Docker daemon)"
command -v apt-get >/dev/null || skip "needs Debian's apt-get (docker.io, debootstrap)"
for tool in dockerd debootstrap; do
    if ! command -v "$tool" >/dev/null; then
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null
        break
    fi
done

WORK=$(mktemp -d /tmp/perspective-docker.XXXXXX)
CACHE=${PERSPECTIVE_DOCKER_CACHE:-/var/cache/perspective-docker}
mkdir -p "$CACHE"
export DOCKER_HOST="unix://$WORK/docker.sock"
start=$(date +%s)

# --- a daemon of our own: no bridge network, no iptables; every build and run uses the host's network
dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --userland-proxy=false --data-root "$CACHE/data-root" --exec-root "$WORK/exec" \
    --pidfile "$WORK/dockerd.pid" -H "$DOCKER_HOST" >"$WORK/dockerd.log" 2>&1 &
DAEMON=$!
cleanup() {
    local status=$?
    docker rm -f perspective-serve >/dev/null 2>&1 || true
    kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    for mounted in "$WORK"/exec/netns/*; do umount "$mounted" 2>/dev/null || true; done
    rm -rf "$WORK" "$ROOT"/docker/pip/pip.conf "$ROOT"/docker/pip/ca-bundle.crt 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
docker info >/dev/null 2>&1 || { tail -5 "$WORK/dockerd.log"; skip "the Docker daemon did not start"; }

# --- the base image, once per machine (cached in the daemon's data root)
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    . /etc/os-release
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
             || awk '/^deb / {print $2; exit}' /etc/apt/sources.list)
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates,passwd \
        "$VERSION_CODENAME" "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -5 "$WORK/debootstrap.log"; exit 1; }
    tar -C "$WORK/rootfs" -c . | docker import - "$BASE" >/dev/null
fi
echo "base image ready: $(( $(date +%s) - start )) s"

# --- room for the build. The index's torch is the CUDA build: the image is 7.3 GB and the disk in use
# peaks 14.4 GB above where it starts (the downloaded wheels sit beside what they unpack into).
# What an earlier run left in the daemon's cache (its image, dangling layers, build cache) goes first
# when room is short.
free_gb() { df -P --block-size=1G "$CACHE" | awk 'NR == 2 {print $4}'; }
NEED_GB=${PERSPECTIVE_DOCKER_NEED_GB:-16}
if [ "$(free_gb)" -lt "$NEED_GB" ]; then
    docker rmi -f "$IMAGE" >/dev/null 2>&1 || true
    docker image prune -f >/dev/null 2>&1 || true
    docker builder prune -af >/dev/null 2>&1 || true
fi
[ "$(free_gb)" -ge "$NEED_GB" ] || skip "the build needs ${NEED_GB} GB free under $CACHE; $(free_gb) GB are"

# --- this machine's pip settings for the build: its index configuration and CA bundle, not committed
python3 - "$ROOT/docker/pip" <<'PY'
import shutil, subprocess, sys
from pathlib import Path
folder = Path(sys.argv[1])
settings = {}
for line in subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout.splitlines():
    key, _, value = line.partition("=")
    name = key.split(".")[-1]
    if name in ("index-url", "extra-index-url", "trusted-host", "cert", "timeout", "default-timeout"):
        settings[name] = value.strip().strip("'")
for name in ("index-url", "extra-index-url"):  # a local file:// mirror does not exist inside the build
    if name in settings:
        kept = [u for u in settings[name].split() if u.startswith(("http://", "https://"))]
        settings[name] = " ".join(kept) if kept else settings.pop(name)
cert = settings.pop("cert", None)
if cert and Path(cert).is_file():
    shutil.copy(cert, folder / "ca-bundle.crt")
    settings["cert"] = "/tmp/pip/ca-bundle.crt"
(folder / "pip.conf").write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items() if v))
PY

build=$(date +%s)
docker build --network host --build-arg BASE="$BASE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -20 "$WORK/build.log"; exit 1; }
echo "image built: $(( $(date +%s) - build )) s, $(docker image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.2f GB", $1 / 1e9}')"
docker image prune -f >/dev/null 2>&1 || true   # the image this build replaced, if any

# --- checks
fail() { echo "docker/test.sh: FAILED: $*" >&2; exit 1; }
version=$(docker run --rm --network host "$IMAGE" --version)
[ "$version" = "perspective $(python3 -c 'import perspective; print(perspective.__version__)')" ] || fail "--version: $version"
[ "$(docker run --rm --network host --entrypoint id "$IMAGE" -u)" != 0 ] || fail "the image runs as root"

out="$WORK/out" && mkdir -p "$out" && chmod 777 "$out"
docker run --rm --network host -v "$ROOT/sample_set:/data:ro" -v "$out:/out" "$IMAGE" \
    infer -d /data -o /out/container.csv --precision 32 -q >/dev/null
python3 -m perspective infer -d sample_set -o "$out/host.csv" --precision 32 -q >/dev/null
python3 - "$out" <<'PY' || fail "the container's infer differs from the host's"
import sys
from pathlib import Path
import pandas as pd
out = Path(sys.argv[1])
a, b = (pd.read_csv(out / f"{n}.csv").assign(path=lambda f: f["path"].map(lambda p: Path(p).name)) for n in ("container", "host"))
pd.testing.assert_frame_equal(a, b)
print(f"infer: the container's {len(a)} rows equal the host's")
PY

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
docker run -d --init --name perspective-serve --network host "$IMAGE" serve --host 127.0.0.1 --port "$port" \
    --precision 32 >/dev/null
health() { python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null; }
for _ in $(seq 120); do health && break; sleep 1; done
health || { docker logs perspective-serve 2>&1 | tail -5; fail "/health"; }
python3 - "$port" "$out/host.csv" <<'PY' || fail "/predict differs from the host's infer"
import json, sys, urllib.request
import pandas as pd
port, host_csv = sys.argv[1], sys.argv[2]
image = open("sample_set/000000.jpg", "rb").read()
request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=image, headers={"Content-Type": "image/jpeg"})
answer = json.load(urllib.request.urlopen(request, timeout=60))
scores = answer["predictions"][0]["scores"]
row = pd.read_csv(host_csv).iloc[0]
worst = max(abs(scores[k] - row[k]) for k in scores)
assert worst < 1e-6, worst  # both in fp32, both rounded to 6 decimals
print(f"/predict: the {len(scores)} scores of sample_set/000000.jpg equal the host's infer")
PY
before=$(date +%s%N)
docker stop perspective-serve >/dev/null
stopped_ms=$(( ($(date +%s%N) - before) / 1000000 ))
echo "docker stop: ${stopped_ms} ms"
[ "$stopped_ms" -lt 8000 ] || fail "docker stop took ${stopped_ms} ms"
echo "docker/test.sh: passed in $(( $(date +%s) - start )) s"
