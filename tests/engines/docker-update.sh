#!/bin/bash
# docker-update.sh RUNTIME : `docker update` on a container run by RUNTIME.
#
# A private dockerd 20.10 (temp dirs only, its own containerd) runs a busybox
# container with RUNTIME as its OCI runtime; `docker update` goes through
# containerd's Update API to containerd-shim-runc-v2, which calls
# `RUNTIME update --resources - ID` with the JSON on stdin, the call that
# `ctr task update` and the kubelet's resize make too.  A process inside the
# container then reads its cgroup.  Prints ok/not ok per step and
# "N passed, N failed".  The helpers (ok, run_cap, wait_for, the offline
# busybox image, cleanup by pid) are the shared client harness's.
set -u
# The shared harness sits beside the checkout (CI) or one level up (worktrees).
if [ -z "${CLIENTS:-}" ]; then
    for CLIENTS in "$(dirname "${BASH_SOURCE[0]}")"/../../../shared/clients \
                   "$(dirname "${BASH_SOURCE[0]}")"/../../../../shared/clients; do
        [ -f "$CLIENTS/common.sh" ] && break
    done
fi
. "$CLIENTS/common.sh"
[ $# -ge 1 ] || { echo "usage: $0 RUNTIME" >&2; exit 2; }

H_TMP=$(mktemp -d /tmp/engines-docker-update.XXXXXX)
C=eu-dk-$$
IMG=localhost/engines-busybox:local
SOCK="$H_TMP/docker.sock"
DOCKERD_PID=""
CID=""
RUNDIR_EXISTED=0; [ -d /run/containerd ] && RUNDIR_EXISTED=1
SDIR_EXISTED=0; [ -d /run/containerd/s ] && SDIR_EXISTED=1
CGP_EXISTED=0; ls -d /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker >/dev/null 2>&1 && CGP_EXISTED=1

cleanup() {
    set +e
    if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
        timeout 30 "$X" rm -f "$C" >/dev/null 2>&1
        timeout 20 "$X" rmi -f "$IMG" >/dev/null 2>&1
        kill "$DOCKERD_PID"
        for _ in $(seq 1 75); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
    fi
    kill_pids_mentioning "$H_TMP"
    kill_remembered_inits
    umount_under "$H_TMP"
    local g
    if [ -n "$CID" ]; then
        for g in /sys/fs/cgroup/*/docker/"$CID" /sys/fs/cgroup/docker/"$CID"; do
            [ -d "$g" ] && rmdir "$g" 2>/dev/null
        done
    fi
    if [ $CGP_EXISTED = 0 ]; then
        for g in /sys/fs/cgroup/*/docker /sys/fs/cgroup/docker; do
            [ -d "$g" ] && rmdir "$g" 2>/dev/null
        done
    fi
    [ $SDIR_EXISTED = 0 ] && rmdir /run/containerd/s 2>/dev/null
    [ $RUNDIR_EXISTED = 0 ] && rmdir /run/containerd 2>/dev/null
    rm -rf "$H_TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RT=$(setup_runtime "$1" "$H_TMP/rtbin") || exit 2
jq -n --arg rt "$RT" '{
    runtimes: {"eu-rt": {path: $rt}},
    "exec-opts": ["native.cgroupdriver=cgroupfs"],
    bridge: "none", iptables: false, "ip-masq": false, "ip-forward": false,
    "userland-proxy": false, "storage-driver": "overlay2" }' > "$H_TMP/daemon.json"
dockerd --config-file "$H_TMP/daemon.json" --data-root "$H_TMP/data" \
    --exec-root "$H_TMP/exec" --pidfile "$H_TMP/docker.pid" -H "unix://$SOCK" \
    >"$H_TMP/dockerd.log" 2>&1 </dev/null &
DOCKERD_PID=$!
X="$H_TMP/docker"
printf '#!/bin/sh\nexec /usr/bin/docker -H "unix://%s" "$@"\n' "$SOCK" > "$X"
chmod +x "$X"
T=$H_CMD_TIMEOUT
if ! wait_for 30 "$X" version; then
    not_ok "start private dockerd" "$(tail -n 5 "$H_TMP/dockerd.log")"
    summary; exit 1
fi
make_busybox_rootfs "$H_TMP/rootfs"
tar -C "$H_TMP/rootfs" --numeric-owner -cf "$H_TMP/rootfs.tar" .
run_cap 120 "$X" import "$H_TMP/rootfs.tar" "$IMG"
[ "$RC" = 0 ] || { not_ok "import busybox image" "$ERR"; summary; exit 1; }

is_running() { [ "$(timeout 20 "$X" inspect -f '{{.State.Status}}' "$C" 2>/dev/null)" = running ]; }
inside() {  # what a process in the container reads from its own cgroup (v2 name, v1 name)
    run_cap $T "$X" exec "$C" sh -c "cat /sys/fs/cgroup/$1 2>/dev/null || cat /sys/fs/cgroup/$2"
}

run_cap $T "$X" run -d --runtime eu-rt --network none --memory 64m --pids-limit 50 \
    --name "$C" "$IMG" sleep 1000
CID=$(timeout 20 "$X" inspect -f '{{.Id}}' "$C" 2>/dev/null)
remember_init "$(timeout 20 "$X" inspect -f '{{.State.Pid}}' "$C" 2>/dev/null)"
if [ "$RC" = 0 ] && wait_for 10 is_running; then ok "run -d --memory 64m --pids-limit 50"
else not_ok "run -d --memory 64m --pids-limit 50" "rc=$RC" "$ERR"; summary; exit 1; fi

inside memory.max memory/memory.limit_in_bytes
expect_rc "the process sees 64 MiB" 0 '^67108864$'

run_cap $T "$X" update --memory 128m --memory-swap 256m "$C"
expect_rc "docker update --memory 128m --memory-swap 256m" 0 ''
inside memory.max memory/memory.limit_in_bytes
expect_rc "the process sees 128 MiB" 0 '^134217728$'

run_cap $T "$X" update --pids-limit 42 --cpu-quota 50000 "$C"
expect_rc "docker update --pids-limit 42 --cpu-quota 50000" 0 ''
inside pids.max pids/pids.max
expect_rc "the process sees pids.max 42" 0 '^42$'
inside cpu.max cpu/cpu.cfs_quota_us
expect_rc "the process sees the CPU quota" 0 '^50000'

# Past docker's own checks (6 MiB at least), refused by the kernel: the
# container's tmpfs holds 16 MiB charged to its memory cgroup.
run_cap $T "$X" exec "$C" dd if=/dev/zero of=/dev/shm/fill bs=1M count=16
run_cap $T "$X" update --memory 8m "$C"
if [ "$RC" != 0 ] && printf '%s' "$ERR" | grep -q 'previous limits are kept'; then
    ok "a limit below the usage is refused, saying the old limits are kept"
else
    not_ok "a limit below the usage is refused, saying the old limits are kept" "rc=$RC" "$ERR"
fi
inside memory.max memory/memory.limit_in_bytes
expect_rc "after the refusal the process still sees 128 MiB" 0 '^134217728$'

run_cap $T "$X" exec "$C" echo still-running
expect_rc "the container still runs and execs" 0 '^still-running$'

summary
[ "$H_FAIL" = 0 ]
