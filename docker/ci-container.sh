#!/usr/bin/env bash
# The container stage: builds docker/Dockerfile with podman (no Docker engine, no container registry:
# the base image comes from docker/base-image.sh) and tests the image:
#   1. the real-client tests (ctest -R '^clients_proxy_') with the proxy in a container (docker/dualpipe-container.sh),
#      under podman's default seccomp profile (the journal must report dualpipe_io_backend "threads")
#      and under docker/seccomp-io_uring.json ("io_uring");
#   2. docker/container_smoke.py: emulators and proxy as containers, the image's HEALTHCHECK, a write
#      reaching both emulators, SIGTERM draining a request in flight, the non-root user and the volume.
# Needs root, podman, runc and debootstrap (docker/install-deps.sh --container) and a build directory
# with the emulator and the npm clients (tests/run-all.sh's first stage: DP_BUILD_DIR, default build).
# Fails with a message when the container tooling cannot run here; never passes silently.
#   bash docker/ci-container.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${DP_BUILD_DIR:-build}
IMAGE=localhost/dualpipe:ci
EMU_IMAGE=localhost/dualpipe-emu:ci
t0=$(date +%s)
ts() { echo "[container $(( $(date +%s) - t0 ))s] $*"; }

for tool in podman runc debootstrap; do
  command -v "$tool" >/dev/null || { echo "container stage: $tool is missing (docker/install-deps.sh --container installs it)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "container stage: needs root (podman with native overlay storage)" >&2; exit 1; }
[ -x "$BUILD/bin/dualpipe-emu" ] || { echo "container stage: $BUILD/bin/dualpipe-emu is missing: build first" >&2; exit 1; }
export DP_CTR_WORK=${DP_CTR_WORK:-/var/tmp/dualpipe-ctr}
# shellcheck source=docker/podman-env.sh
. docker/podman-env.sh
if ! podman info >/dev/null 2>"$DP_CTR_WORK/podman-info.err"; then
  echo "container stage: podman cannot run on this machine:" >&2
  cat "$DP_CTR_WORK/podman-info.err" >&2
  exit 1
fi

ts "base image"
bash docker/base-image.sh localhost/debian:bookworm
ts "podman build (runtime and emulator stages)"
build() { podman build -q --format docker --pull=never --network host --build-arg BASE=localhost/debian:bookworm \
            -f docker/Dockerfile "$@" . >/dev/null; }
build -t "$IMAGE"
build --target emulator -t "$EMU_IMAGE"
ts "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

status=0
export DP_PROXY_CMD="$PWD/docker/dualpipe-container.sh" DP_CTR_IMAGE="$IMAGE"
ts "real clients through the containerised proxy, default seccomp profile (thread pool)"
DP_CTR_SECCOMP=default DP_EXPECT_IO_BACKEND=threads \
  ctest --test-dir "$BUILD" -R '^clients_proxy_' --output-on-failure --timeout 600 || status=1
ts "real clients through the containerised proxy, docker/seccomp-io_uring.json (io_uring)"
DP_CTR_SECCOMP="$PWD/docker/seccomp-io_uring.json" DP_EXPECT_IO_BACKEND=io_uring \
  ctest --test-dir "$BUILD" -R '^clients_proxy_' --output-on-failure --timeout 600 || status=1
unset DP_PROXY_CMD

ts "stack of containers: healthcheck, write to both emulators, SIGTERM drain"
/usr/bin/python3 docker/container_smoke.py "$IMAGE" "$EMU_IMAGE" default || status=1
/usr/bin/python3 docker/container_smoke.py "$IMAGE" "$EMU_IMAGE" "$PWD/docker/seccomp-io_uring.json" || status=1

# Images stay in $DP_CTR_WORK for the next run (a rebuild then takes seconds); containers never do.
leftover=$(podman ps -aq)
if [ -n "$leftover" ]; then echo "container stage: containers left behind: $leftover" >&2; podman rm -f $leftover >/dev/null; status=1; fi
ts "done (status $status)"
exit $status
