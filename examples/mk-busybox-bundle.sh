#!/usr/bin/env bash
# mk-busybox-bundle.sh DIR [--args 'CMD ARG...'] [--no-terminal]
#
# Makes an OCI bundle in DIR from Debian's static busybox, with no network:
# DIR/rootfs holds /bin/busybox and one hard link per applet, the users and
# groups tests expect, and DIR/config.json is the runtime's default spec
# (pyrunc's if it has `spec`, runc's otherwise).  --args replaces
# process.args (split on blanks); --no-terminal sets process.terminal false.
set -euo pipefail

usage() {
	echo "usage: $0 DIR [--args 'CMD ARG...'] [--no-terminal]" >&2
	exit 2
}

dir="" args="" no_terminal=""
while [ $# -gt 0 ]; do
	case $1 in
	--args) [ $# -ge 2 ] || usage; args=$2; shift 2 ;;
	--no-terminal) no_terminal=1; shift ;;
	-*) usage ;;
	*) [ -z "$dir" ] || usage; dir=$1; shift ;;
	esac
done
[ -n "$dir" ] || usage

busybox=${BUSYBOX:-/usr/bin/busybox}
if [ ! -x "$busybox" ]; then
	echo "$0: $busybox not found (apt-get install busybox-static)" >&2
	exit 1
fi
# The rootfs has no libc, so a dynamically linked busybox could not run in it.
if ldd "$busybox" >/dev/null 2>&1; then
	echo "$0: $busybox is dynamically linked; install busybox-static" >&2
	exit 1
fi

rootfs=$dir/rootfs
if [ -e "$rootfs" ]; then
	echo "$0: $rootfs already exists" >&2
	exit 1
fi
# No /proc, /sys or /dev contents: the runtime makes those mount points.
mkdir -p "$rootfs"/{bin,dev,etc,home,root,tmp}
chmod 0700 "$rootfs/root"
chmod 1777 "$rootfs/tmp"

install -m 0755 "$busybox" "$rootfs/bin/busybox"
for applet in $("$rootfs/bin/busybox" --list); do
	[ "$applet" = busybox ] || ln "$rootfs/bin/busybox" "$rootfs/bin/$applet"
done

cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
users:x:100:
nogroup:x:65534:
EOF

# `pyrunc spec` may not exist yet, or may fail: runc's default is the same.
if ! (cd "$dir" && rm -f config.json && pyrunc spec) 2>/dev/null; then
	(cd "$dir" && rm -f config.json && runc spec)
fi

edit() {
	jq "$@" "$dir/config.json" >"$dir/config.json.new"
	mv "$dir/config.json.new" "$dir/config.json"
}
if [ -n "$no_terminal" ]; then
	edit '.process.terminal = false'
fi
if [ -n "$args" ]; then
	edit --arg args "$args" '.process.args = ($args | split(" ") | map(select(. != "")))'
fi
