"""The guest's stage 2 on the overlay root: the mounts of a pure cgroup v2 host, then the command.

`guest-init.py` is PID 1 in the plain mode: it sets up, runs the command and
reaps every orphan (a shell as PID 1 would leave orphaned engine shims and
daemons as zombies, which tests looking for stray processes in /proc would
see), then ends qemu with the command's status.  `guest-init.py --setup` only
sets up; the --systemd mode's service runs it before the command.

The setup calls mount(2) itself: under TCG every fork+exec costs ~0.3 s, and a
shell doing the same took ~9 s.
"""

import ctypes
import os
import signal
import subprocess
import sys

SHARE = "/cgroup2-vm"
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids", "hugetlb", "rdma", "misc")
# Fresh tmpfs: scratch space, and where engines put overlayfs (overlayfs cannot
# stack on the overlay root). The host's /tmp is hidden by it.
TMPFS = {
    "/dev/shm": "mode=1777", "/run": "mode=0755", "/tmp": "mode=1777", "/var/tmp": "mode=1777",
    "/var/lib/containers": "mode=0711", "/var/lib/containerd": "mode=0711",
    "/var/lib/docker": "mode=0711", "/var/lib/cni": "mode=0711",
}
MS_BIND = 4096
libc = ctypes.CDLL(None, use_errno=True)


def stamp(what: str) -> None:
    """A progress mark in the kernel log (seen with --verbose)."""
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"cgroup2-vm: {what}\n")


def mounted() -> set[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return {line.split()[4] for line in mountinfo}


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str = "") -> None:
    if not os.path.exists(target):
        os.makedirs(target)
    if libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                  flags, data.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} {source} on {target}: {os.strerror(err)}")


def setup() -> None:
    have = mounted()
    if "/sys/fs/cgroup" not in have:  # systemd mounts it itself
        mount("cgroup2", "/sys/fs/cgroup", "cgroup2", data="nsdelegate")
    with open("/sys/fs/cgroup/cgroup.controllers") as controllers:
        available = controllers.read().split()
    for controller in CONTROLLERS:
        if controller in available:
            with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as control:
                control.write(f"+{controller}")
    # What udev would add to devtmpfs: bash's process substitution needs /dev/fd.
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("core", "/proc/kcore")):
        if not os.path.lexists(f"/dev/{name}"):
            os.symlink(target, f"/dev/{name}")
    if "/dev/pts" not in have:
        mount("devpts", "/dev/pts", "devpts", data="newinstance,ptmxmode=0666,mode=0620,gid=5")
        mount("/dev/pts/ptmx", "/dev/ptmx", None, MS_BIND)
    if "/dev/mqueue" not in have:
        mount("mqueue", "/dev/mqueue", "mqueue")
    if "/sys/fs/bpf" not in have:
        mount("bpf", "/sys/fs/bpf", "bpf")
    for target, options in TMPFS.items():
        if target != "/run" or target not in have:
            mount("tmpfs", target, "tmpfs", data=options)
    # The guest kernel's modules, so modprobe works (engines load overlay, veth, ...).
    with open(f"{SHARE}/modules-dir") as modules:
        mount(modules.read().strip(), f"/lib/modules/{os.uname().release}", None, MS_BIND)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    with open("/proc/sys/kernel/hostname", "w") as hostname:
        hostname.write("cgroup2-vm")


def power_off(status: int) -> None:
    """End qemu: isa-debug-exit makes it exit (status << 1) | 1; a plain power-off else."""
    os.sync()
    try:
        fd = os.open("/dev/port", os.O_WRONLY)
        os.pwrite(fd, bytes([status & 0x7F]), 0xF4)
    finally:
        libc.reboot(0x4321FEDC)  # RB_POWER_OFF


def run_command() -> int:
    stamp("guest init")
    setup()
    stamp("setup done")
    os.environ.clear()
    with open(f"{SHARE}/env") as env:
        for line in env:
            key, _, value = line.rstrip("\n").partition("=")
            os.environ[key] = value
    console = os.open("/dev/console", os.O_RDWR)
    subprocess.run(["stty", "-onlcr"], stdin=console, check=False)
    child = subprocess.Popen(["/bin/bash", f"{SHARE}/command"], stdin=subprocess.DEVNULL,
                             stdout=console, stderr=console,
                             cwd=os.environ["CGROUP2_VM_PROJECT"], start_new_session=True)
    while True:  # reap everything; stop when the command itself has exited
        pid, wait_status = os.wait()
        if pid == child.pid:
            break
    status = os.waitstatus_to_exitcode(wait_status)
    if status < 0:
        status = 128 - status
    stamp(f"command exited {status}")
    with open(f"{SHARE}/status", "w") as report:
        report.write(f"{status}\n")
    os.kill(-1, signal.SIGKILL)
    return status


if __name__ == "__main__":
    if sys.argv[1:] == ["--setup"]:
        setup()
        sys.exit(0)
    try:
        code = run_command()
    except BaseException as error:  # PID 1 must never just die: report, then power off
        print(f"cgroup2-vm guest init: {error!r}", file=sys.stderr)
        code = 125
    power_off(code)
