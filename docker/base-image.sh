#!/usr/bin/env bash
# Builds the Debian 12 base image localhost/debian:bookworm from the Debian mirror this machine's apt
# uses (debootstrap), for machines that reach no container registry (CI). Users with a registry do
# not need it: docker/Dockerfile's default base is the public debian:bookworm-slim.
# Run as root after sourcing docker/podman-env.sh. Does nothing when the image exists.
set -euo pipefail
IMAGE=${1:-localhost/debian:bookworm}
if podman image exists "$IMAGE"; then echo "base-image: $IMAGE exists"; exit 0; fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing (docker/install-deps.sh --container)" >&2; exit 1; }
MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { echo "base-image: no Debian mirror found in /etc/apt" >&2; exit 1; }
R=$(mktemp -d "${DP_CTR_WORK:-/var/tmp}/rootfs.XXXXXX")
trap 'rm -rf "$R"' EXIT
echo "base-image: debootstrap bookworm from $MIRROR"
if ! debootstrap --variant=minbase bookworm "$R" "$MIRROR" >"$R.log" 2>&1; then
  tail -20 "$R.log" >&2; rm -f "$R.log"; exit 1
fi
rm -f "$R.log"
# The image's apt uses the machine's sources and proxy settings; nothing of the host (resolv.conf,
# hostname) stays in it, nor the downloaded packages and lists.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R/etc/resolv.conf" "$R/etc/hostname" \
       "$R/etc/apt/sources.list"
cp /etc/apt/sources.list.d/*.sources "$R/etc/apt/sources.list.d/" 2>/dev/null || true
if [ -s /etc/apt/sources.list ]; then cp /etc/apt/sources.list "$R/etc/apt/"; fi
for f in $(grep -liE 'Acquire::(https?::)?proxy|Check-Valid-Until|Check-Date' /etc/apt/apt.conf /etc/apt/apt.conf.d/* 2>/dev/null); do
  cp "$f" "$R/etc/apt/apt.conf.d/"
done
printf 'Acquire::Languages "none";\n' > "$R/etc/apt/apt.conf.d/90no-languages"
# Documentation, man pages and locales are not needed in a container (as in Debian's slim images):
# those of the base go now, those of packages installed later are never unpacked.
find "$R/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
rm -rf "$R"/usr/share/man/* "$R"/usr/share/locale/* "$R"/usr/share/info/*
printf 'path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\npath-exclude /usr/share/man/*\npath-exclude /usr/share/locale/*\npath-exclude /usr/share/info/*\n' \
  > "$R/etc/dpkg/dpkg.cfg.d/90container-nodoc"
tar --numeric-owner -C "$R" -c . | podman import -q --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "base-image: imported $IMAGE"
