"""Seccomp profiles shaped like the ones engines handed runc before close_range existed.

Built here rather than copied: Docker's default profile of 2019 (19.03) is
an allow list of the syscalls known then, the newest being rseq, with a
default of ERRNO (EPERM), a few dangerous syscalls left out (mount,
pivot_root, unshare, setns, bpf, ...) and clone and personality allowed
only with some arguments.  What matters for a runtime is that shape: every
syscall newer than the list (close_range, clone3, faccessat2, openat2) is
denied by the default.
"""

from __future__ import annotations

from typing import Any

import pyseccomp

# The newest syscall such a profile names (x86_64 number 334).
NEWEST_NAMED = "rseq"
# Left out of the allow list, as Docker's profile leaves them out (or grants
# them only with a capability this container has not got).
DENIED = frozenset({
    "acct", "add_key", "bpf", "chroot", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "get_kernel_syms", "get_mempolicy", "init_module",
    "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "mount", "move_pages", "name_to_handle_at", "nfsservctl", "open_by_handle_at",
    "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "ptrace",
    "query_module", "quotactl", "reboot", "request_key", "set_mempolicy", "setns",
    "settimeofday", "swapon", "swapoff", "sysfs", "_sysctl", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vhangup",
    # allowed below only with arguments
    "clone", "personality",
})
_NAMESPACE_FLAGS = 0x7E020000  # CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET


def docker_2019_profile() -> dict[str, Any]:
    """An OCI ``linux.seccomp`` object in the shape described above, for x86_64."""
    native = pyseccomp.Arch.NATIVE
    newest = pyseccomp.resolve_syscall(native, NEWEST_NAMED)
    allowed = []
    for number in range(newest + 1):
        try:
            name = pyseccomp.resolve_syscall(native, number).decode()
        except ValueError:
            continue
        if name not in DENIED:
            allowed.append(name)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": allowed, "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": _NAMESPACE_FLAGS, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
        ],
    }
