"""Control groups through the cgroupfs files, for cgroup v1, v2 and hybrid hosts.

``common`` holds what both versions share (paths, creation, joining, freezing,
killing, removal); ``v1`` and ``v2`` each write ``linux.resources`` in their
own files and units; ``devices`` turns device rules into v2's eBPF program.
Callers use the names re-exported here.
"""

from __future__ import annotations

from runpy_exec.linux.cgroups.common import (
    UNIFIED,
    V1_CONTROLLERS,
    CgroupError,
    Target,
    check_unused,
    create,
    destroy,
    freeze,
    freezer_state,
    is_unified,
    join,
    kill_all,
    mountpoints,
    own_cgroup_paths,
    pids,
    resolve_paths,
    sub_paths,
    thaw,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

__all__ = [
    "UNIFIED", "V1_CONTROLLERS", "CgroupError", "apply_resources", "check_unused", "create",
    "destroy", "freeze", "freezer_state", "is_unified", "join", "kill_all", "mountpoints",
    "own_cgroup_paths", "pids", "resolve_paths", "sub_paths", "thaw",
]  # fmt: skip


def apply_resources(paths: Mapping[str, str], resources: Mapping[str, Any]) -> None:
    """Write an OCI ``linux.resources`` object to the container's cgroups.

    Only what is given is written, so the same call serves create and
    update.  Device rules are applied only when ``resources`` has a
    "devices" key: on cgroup v2 they become the cgroup's device program
    (see :mod:`.devices`), and an update without the key keeps the program
    as it is.  Kernel memory limits (memory.kernel, memory.kernelTCP) are not
    written: the kernel has deprecated them and runc 1.1 ignores them as well.
    """
    target = Target(paths)
    if is_unified(paths):
        from runpy_exec.linux.cgroups import v2

        v2.apply(target, resources)
    else:
        from runpy_exec.linux.cgroups import v1

        v1.apply(target, resources)
