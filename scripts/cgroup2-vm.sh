#!/usr/bin/env bash
# cgroup2-vm.sh — run a command on a real, pure cgroup v2 Linux: a qemu guest.
#
# usage: scripts/cgroup2-vm.sh [options] -- COMMAND [ARGS...]
#
#   --project DIR   the guest's working directory (default: this checkout);
#                   the host's whole / is visible in the guest anyway
#   --systemd       systemd as PID 1 in the guest (D-Bus up; the command runs
#                   in a service with Delegate=yes), for the systemd cgroup driver
#   --timeout S     seconds before qemu is killed (default 3600; exit 124)
#   --results DIR   the writable share: the command sees it as $CGROUP2_VM_RESULTS
#                   (junit XML, logs); kept after the run (default: a temp dir, removed)
#   --env K=V       an environment variable for the command (repeatable); CI is
#                   passed on as it is on the host
#   --memory MB     guest memory (default 3072)   --cpus N   guest CPUs (default 2)
#   --verbose       show the kernel's and systemd's messages on the console
#   --fetch         only fetch the kernel into the cache (no COMMAND; scripts/setup.sh)
#
# Prints the command's output as it runs and exits with its status; 124 when
# the guest timed out, 125 when it died without reporting one.
#
# The guest: Debian's qemu-system-x86 in TCG mode (KVM hangs on the project's
# machines) booting Debian's linux-image kernel (the pinned version below,
# fetched with apt-get download into $PYRUNC_CGROUP2_CACHE, default
# /var/cache/pyrunc-cgroup2) with a busybox initramfs. The host's / is shared
# read-only over 9p under a tmpfs overlay (writes in the guest never reach the
# host), cgroup2 is mounted with nsdelegate at /sys/fs/cgroup with every
# controller enabled at the root, and /tmp, /var/tmp and /var/lib/{containers,
# containerd,docker,cni} are fresh tmpfs (overlayfs cannot stack on the overlay
# root): anything the command needs from the host's /tmp must live elsewhere.
# Needs root (scripts/setup.sh installs qemu-system-x86 and busybox-static).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$HERE/cgroup2-vm
# The kernel apt offered when this was written; if the archive no longer has it
# (Debian drops superseded ABIs), the current linux-image-amd64 is used instead.
KERNEL_PACKAGE=linux-image-6.1.0-57-amd64
KERNEL_VERSION=6.1.192-3
CACHE=${PYRUNC_CGROUP2_CACHE:-/var/cache/pyrunc-cgroup2}
# Loaded in this order by the initramfs: virtio PCI, 9p over virtio, overlay.
MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci 9pnet
9pnet_virtio netfs fscache 9p overlay"

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
die() {
	echo "cgroup2-vm: $*" >&2
	exit 125
}

project=$(cd "$HERE/.." && pwd) systemd=0 timeout=3600 results="" memory=3072 cpus=2
extra_env=() verbose=0 fetch_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--project) project=$(cd "$2" && pwd) || die "no such project dir: $2"; shift 2 ;;
	--systemd) systemd=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--results) results=$2; shift 2 ;;
	--env) extra_env+=("$2"); shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--cpus) cpus=$2; shift 2 ;;
	--verbose) verbose=1; shift ;;
	--fetch) fetch_only=1; shift ;;
	--) shift; break ;;
	-h | --help) usage ;;
	*) usage ;;
	esac
done
[ $# -gt 0 ] || [ "$fetch_only" = 1 ] || usage
[ "$(id -u)" = 0 ] || die "needs root (the guest shares the host's / as root sees it)"
for tool in apt-get dpkg flock qemu-system-x86_64 cpio gzip timeout; do
	command -v "$tool" >/dev/null || die "$tool is missing (run scripts/setup.sh)"
done
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || die "busybox is missing (apt-get install busybox-static)"
busybox=$(command -v busybox)

# ------------------------------------------------------------------ kernel ---
# Fetch and unpack once; concurrent runs serialise on a lock.
fetch_kernel() {
	local pkg=$KERNEL_PACKAGE version=$KERNEL_VERSION tmp
	if ! apt-cache show "$pkg=$version" >/dev/null 2>&1; then
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
		version=$(apt-cache show "$pkg" 2>/dev/null | awk '/^Version:/ {print $2; exit}')
		[ -n "$pkg" ] && [ -n "$version" ] || die "no kernel package: run apt-get update"
		echo "cgroup2-vm: $KERNEL_PACKAGE=$KERNEL_VERSION is gone from apt; using $pkg=$version" >&2
	fi
	tmp=$(mktemp -d "$CACHE/fetch.XXXXXX")
	(cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null 2>&1) || die "apt-get download $pkg=$version failed"
	dpkg -x "$tmp"/*.deb "$tmp/x"
	rm -rf "$CACHE/kernel"
	mkdir -p "$CACHE/kernel"
	mv "$tmp"/x/boot/vmlinuz-* "$CACHE/kernel/vmlinuz"
	mv "$tmp"/x/lib/modules/* "$CACHE/kernel/modules"
	echo "$pkg=$version" >"$CACHE/kernel/package"
	rm -rf "$tmp"
}
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
[ -s "$CACHE/kernel/vmlinuz" ] || fetch_kernel
flock -u 9
[ "$fetch_only" = 0 ] || exit 0
kernel=$CACHE/kernel/vmlinuz
modules=$CACHE/kernel/modules

# ---------------------------------------------------------- results share ---
if [ -n "$results" ]; then
	mkdir -p "$results"
	results=$(cd "$results" && pwd)
	keep=1
else
	results=$(mktemp -d /tmp/cgroup2-vm.XXXXXX)
	keep=0
fi
share=$(mktemp -d "$results/.share.XXXXXX")
work=$(mktemp -d /tmp/cgroup2-vm-boot.XXXXXX)
qemu_pid=""
cleanup() {
	[ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
	rm -rf "$work"
	if [ "$keep" = 1 ]; then
		# What the command wrote under $CGROUP2_VM_RESULTS moves up into --results.
		[ -d "$share/out" ] && cp -a "$share/out/." "$results/" 2>/dev/null
		rm -rf "$share"
	else
		rm -rf "$results"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$share/out"
cp "$GUEST/guest-init.py" "$GUEST/systemd-units" "$GUEST/systemd-command" "$share/"
echo "$modules" >"$share/modules-dir"
if [ "$systemd" = 1 ]; then echo systemd >"$share/mode"; else echo plain >"$share/mode"; fi
{
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$share/command"
env_lines=(
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	"HOME=/root" "TERM=dumb" "LANG=C.UTF-8" "USER=root" "LOGNAME=root"
	"CGROUP2_VM=1" "CGROUP2_VM_PROJECT=$project" "CGROUP2_VM_RESULTS=/cgroup2-vm/out"
)
[ -z "${CI:-}" ] || env_lines+=("CI=$CI")
env_lines+=("${extra_env[@]}")
: >"$share/env"
: >"$share/env.sh"
for line in "${env_lines[@]}"; do
	case $line in *=*) ;; *) die "--env wants K=V, not $line" ;; esac
	printf '%s\n' "$line" >>"$share/env"
	printf '%s=%q\n' "${line%%=*}" "${line#*=}" >>"$share/env.sh"
done

# -------------------------------------------------------------- initramfs ---
mkdir -p "$work/root/bin" "$work/root/modules" "$work/root/proc" "$work/root/sys" "$work/root/dev"
cp "$busybox" "$work/root/bin/busybox"
cp "$GUEST/initramfs-init" "$work/root/init"
chmod +x "$work/root/init"
for m in $MODULES; do
	f=$(find "$modules/kernel" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -1)
	[ -n "$f" ] || die "module $m not found in $modules"
	case $f in
	*.xz) xz -dc "$f" >"$work/root/modules/$m.ko" ;;
	*.zst) zstd -qdc "$f" >"$work/root/modules/$m.ko" ;;
	*) cp "$f" "$work/root/modules/$m.ko" ;;
	esac
	echo "$m" >>"$work/root/modules/order"
done
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initramfs.gz"

# -------------------------------------------------------------------- boot ---
cmdline="console=ttyS0 panic=-1 rdinit=/init mitigations=off"
if [ "$verbose" = 1 ]; then cmdline+=" printk.time=1"; else cmdline+=" quiet loglevel=1"; fi
if [ "$systemd" = 1 ]; then
	cmdline+=" systemd.unified_cgroup_hierarchy=1 systemd.unit=cgroup2-vm.target"
	[ "$verbose" = 1 ] || cmdline+=" systemd.show_status=0 systemd.log_level=warning"
fi
p9="security_model=none,multidevs=remap"
timeout -k 10 "$timeout" qemu-system-x86_64 \
	-accel tcg -cpu max -smp "$cpus" -m "$memory" -no-reboot \
	-display none -monitor none -serial stdio -nodefaults \
	-kernel "$kernel" -initrd "$work/initramfs.gz" -append "$cmdline" \
	-virtfs "local,path=/,mount_tag=hostroot,$p9,readonly=on" \
	-virtfs "local,path=$share,mount_tag=results,$p9" \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 </dev/null &
qemu_pid=$!
rc=0
wait "$qemu_pid" || rc=$?
qemu_pid=""
if [ -s "$share/status" ]; then
	exit "$(cat "$share/status")"
fi
[ "$rc" = 124 ] && { echo "cgroup2-vm: the guest did not finish within ${timeout}s" >&2; exit 124; }
die "the guest ended without reporting a status (qemu exit $rc)"
