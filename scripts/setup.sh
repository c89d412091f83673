#!/usr/bin/env bash
# Installs everything pyrunc and its tests need on a fresh Debian 12 machine, as root:
# the apt packages, a virtualenv in .venv with pyrunc and its test extra, and
# /usr/local/bin/pyrunc pointing into it (runc's bats suite and the engines call
# the runtime by path).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(
	libcap-dev libseccomp2 # python-prctl builds against libcap; pyseccomp loads libseccomp
	python3.11-venv python3.11-dev # the interpreter pyrunc's venv is made from, and its headers
	busybox-static         # the root filesystem of every test container
	runc                   # the reference runtime, tested side by side
	crun                   # the second runtime benchmarks/bench.py compares against
	bats gawk jq dpkg-dev bsdutils procps iproute2 # runc's own integration tests
	tmux # a real terminal for the exec-session tests (tests/test_sessions.py)
	# The engines tests/test_engines.py drives pyrunc through (../shared/clients);
	# without recommends is enough: the scripts run private daemons, no network.
	podman containerd docker.io umoci skopeo
	# The pure cgroup v2 guest (scripts/cgroup2-vm.sh, tests/test_cgroup2_guest.py):
	# qemu boots Debian's kernel with a busybox initramfs built by cpio; its
	# --systemd mode runs the host's systemd and dbus there as PID 1 and the bus.
	qemu-system-x86 cpio systemd dbus
)
missing=()
for pkg in "${apt_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	# Packages install services (dockerd, containerd, systemd's own units): none
	# may start on this host. policy-rc.d answering 101 forbids it during the install.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The guest's kernel: the pinned Debian package, fetched once into the cache.
./scripts/cgroup2-vm.sh --fetch

# Debian's own interpreter, not whichever python3.11 comes first on PATH: every
# pyrunc command is mostly interpreter start-up and imports, and Debian's build
# (libpython linked into the executable) runs them ~18% faster than a default
# source build with a shared libpython, such as pyenv's (benchmarks/bench.py,
# README "Speed"). PYTHON overrides it.
python=${PYTHON:-/usr/bin/python3.11}
command -v "$python" >/dev/null || python=$(command -v python3.11 || command -v python3)
# A virtualenv of its own keeps pyrunc's start-up free of whatever site-packages
# .pth files the system interpreter runs on every start. One made from another
# interpreter is made again.
home=$("$python" -c 'import os, sys; print(os.path.dirname(sys.executable))')
if [ -x .venv/bin/python ] && ! grep -qxF "home = $home" .venv/pyvenv.cfg; then
	rm -rf .venv
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
# compat mode puts the checkout on sys.path with a plain .pth line; the default
# mode installs an import finder whose own imports cost ~15 ms on every start.
.venv/bin/python -m pip install -q --disable-pip-version-check \
	--config-settings editable_mode=compat -e '.[test]'
# The venv's own setuptools (pip builds in an isolated environment and does
# not need it) ships a .pth that imports _distutils_hack on every start (~0.5 ms).
.venv/bin/python -m pip uninstall -q -y setuptools 2>/dev/null || true
# Bytecode now, so a start never pays for compiling (PYTHONDONTWRITEBYTECODE
# may be set, which stops Python from caching it by itself).
.venv/bin/python -m compileall -q runpy_exec
ln -sf "$PWD/.venv/bin/pyrunc" /usr/local/bin/pyrunc
