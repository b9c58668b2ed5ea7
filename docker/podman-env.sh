#!/usr/bin/env bash
# Sourced by docker/ci-container.sh: podman settings for a machine with no Docker engine and no
# container registry (a Debian 12 VM such as CI's). Everything lives under $DP_CTR_WORK:
#   - runc as the OCI runtime (crun 1.8 refuses hosts whose cgroups are in hybrid mode);
#   - container rlimits no higher than this shell's hard limits (podman asks for nofile=1048576
#     and nproc=4194304 by default, which fails without CAP_SYS_RESOURCE);
#   - image storage of its own (overlay), so nothing touches the machine's podman storage.
# After sourcing, plain `podman ...` commands use these settings.
DP_CTR_WORK=${DP_CTR_WORK:-/var/tmp/dualpipe-ctr}
mkdir -p "$DP_CTR_WORK"
_nofile=$(ulimit -Hn)
_nproc=$(ulimit -Hu)
_pidmax=$(cat /proc/sys/kernel/pid_max)
if [ "$_nofile" = unlimited ] || [ "$_nofile" -gt 1048576 ]; then _nofile=1048576; fi
if [ "$_nproc" = unlimited ] || [ "$_nproc" -gt "$_pidmax" ]; then _nproc=$_pidmax; fi
cat > "$DP_CTR_WORK/containers.conf" <<EOC
[containers]
default_ulimits = ["nofile=$_nofile:$_nofile", "nproc=$_nproc:$_nproc"]
[engine]
runtime = "runc"
EOC
cat > "$DP_CTR_WORK/storage.conf" <<EOC
[storage]
driver = "overlay"
runroot = "$DP_CTR_WORK/run"
graphroot = "$DP_CTR_WORK/storage"
EOC
export CONTAINERS_CONF="$DP_CTR_WORK/containers.conf" CONTAINERS_STORAGE_CONF="$DP_CTR_WORK/storage.conf"
unset _nofile _nproc _pidmax
