#!/bin/sh
# Stage 2 setup in the guest (host's / as an overlay root): the mounts a
# pure cgroup v2 host has, and fresh tmpfs where engines put overlayfs
# (overlayfs cannot stack on the overlay root). Used by both modes.
set -u
kver=$(uname -r)
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in cpuset cpu io memory pids hugetlb rdma misc; do
	grep -qw "$c" /sys/fs/cgroup/cgroup.controllers &&
		echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done
mountpoint -q /dev/pts || {
	mkdir -p /dev/pts
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts
	mount --bind /dev/pts/ptmx /dev/ptmx
}
mountpoint -q /dev/shm || { mkdir -p /dev/shm; mount -t tmpfs -o mode=1777 shm /dev/shm; }
mountpoint -q /dev/mqueue || { mkdir -p /dev/mqueue; mount -t mqueue mqueue /dev/mqueue; }
mountpoint -q /run || mount -t tmpfs -o mode=0755 run /run
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null
for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777 tmp "$d"; done
for d in /var/lib/containers /var/lib/containerd /var/lib/docker /var/lib/cni; do
	mkdir -p "$d" && mount -t tmpfs -o mode=0711 varlib "$d"
done
# The guest kernel's modules (modprobe for engines: overlay, veth, bridge, ...).
mkdir -p "/lib/modules/$kver"
mount --bind "$(cat /cgroup2-vm/modules-dir)" "/lib/modules/$kver"
ip link set lo up 2>/dev/null
hostname cgroup2-vm
exit 0
