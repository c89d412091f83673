"""PID 1 of the guest in the plain mode: set up, run the command, reap orphans, report.

A shell as PID 1 would leave orphaned processes (engine shims, daemons) as
zombies, which tests that look for stray processes in /proc would see; this
init reaps every child, as an init must.
"""
import os
import signal
import subprocess
import sys
import time

SHARE = "/cgroup2-vm"

def power_off(status: int) -> None:
    """End qemu: isa-debug-exit makes it exit (status << 1) | 1; a plain power-off else."""
    os.sync()
    try:
        fd = os.open("/dev/port", os.O_WRONLY)
        os.pwrite(fd, bytes([status & 0x7F]), 0xF4)
    finally:
        import ctypes

        ctypes.CDLL(None).reboot(0x4321FEDC)  # RB_POWER_OFF


def stamp(what: str) -> None:
    """A progress mark in the kernel log (seen with --verbose)."""
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(f"cgroup2-vm: {what}\n")


def main() -> int:
    stamp("guest init")
    subprocess.run(["/bin/sh", f"{SHARE}/guest-setup.sh"], check=False)
    stamp("setup done")
    os.environ.clear()
    for line in open(f"{SHARE}/env"):
        key, _, value = line.rstrip("\n").partition("=")
        os.environ[key] = value
    console = os.open("/dev/console", os.O_RDWR)
    subprocess.run(["stty", "-onlcr"], stdin=console, check=False)
    null = os.open("/dev/null", os.O_RDONLY)
    child = subprocess.Popen(["/bin/sh", f"{SHARE}/command"], stdin=null, stdout=console,
                             stderr=console, cwd=os.environ["CGROUP2_VM_PROJECT"],
                             start_new_session=True)
    status = None
    while True:
        try:
            pid, wstatus = os.wait()
        except ChildProcessError:
            break
        if pid == child.pid:
            status = os.waitstatus_to_exitcode(wstatus)
            break
    if status is not None and status < 0:
        status = 128 - status
    stamp(f"command exited {status}")
    with open(f"{SHARE}/status", "w") as f:
        f.write(f"{status}\n")
    os.kill(-1, signal.SIGKILL)
    time.sleep(0.2)
    return status or 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException as error:  # noqa: BLE001 - PID 1 must never just die
        print(f"cgroup2-vm guest init: {error!r}", file=sys.stderr)
        code = 125
    power_off(code)
