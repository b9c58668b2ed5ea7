#!/usr/bin/env bash
# A new user's first hour, reproduced: a clean Debian 12 container (docker/base-image.sh) gets this
# source tree read-only, runs docker/install-deps.sh (so Debian's own nodejs 18 and npm), builds, and
# runs the tests a first contact touches: the real clients (label clients: the npm packages, Debian's
# ADLS client, through the proxy), the TLS stack, the CLI conventions and the k8s manifests.
# Not part of CI (it installs a few hundred packages: several minutes); run it by hand, as root:
#   bash docker/fresh-debian-check.sh [CTEST_REGEX]
set -euo pipefail
cd "$(dirname "$0")/.."
export DP_CTR_WORK=${DP_CTR_WORK:-/var/tmp/dualpipe-ctr}
# shellcheck source=docker/podman-env.sh
. docker/podman-env.sh
bash docker/base-image.sh localhost/debian:bookworm
REGEX=${1:-'^(clients_.*|proxy_tls|cli|k8s_manifests)$'}
# A machine whose outbound HTTPS goes through an inspecting proxy has that proxy's CA in
# /usr/local/share/ca-certificates: the container gets it too (npm reaches its registry over HTTPS).
cas=()
[ -d /usr/local/share/ca-certificates ] && cas=(-v /usr/local/share/ca-certificates:/usr/local/share/ca-certificates:ro)
exec podman run --rm --pull=never --network host -v "$PWD:/src:ro" "${cas[@]}" -e "REGEX=$REGEX" localhost/debian:bookworm \
  bash -c 'set -e
    cp -a /src /work && cd /work && rm -rf build*
    bash docker/install-deps.sh >/tmp/deps.log 2>&1 || { tail -30 /tmp/deps.log; exit 1; }
    if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
      update-ca-certificates >/dev/null 2>&1; export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    fi
    echo "node $(node --version) from $(dpkg -S "$(readlink -f "$(command -v node)")" | cut -d: -f1), npm $(npm --version)"
    cmake -S . -B build -DDP_WERROR=ON -DDP_REQUIRE_CLIENT_TESTS=ON >/dev/null
    cmake --build build -j"$(nproc)" >/tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
    ctest --test-dir build -R "$REGEX" --output-on-failure --timeout 600'
