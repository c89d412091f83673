"""How a new process (exec's, or create's first child) enters a container's cgroups.

The obvious way, the child writing "0" to each cgroup.procs, moves a whole
thread group, for which the kernel takes cgroup_threadgroup_rwsem for
writing; once that lock has been idle, taking it waits for an RCU grace
period: 9-13 ms on these machines, on nearly every exec a probe makes.  Two
ways need no such lock:

* v1: a single-threaded process writes "0" to each hierarchy's ``tasks``
  file.  Moving only the writing thread, the kernel skips the thread-group
  lock; a child just forked has one thread, so the whole process moves.
* v2: clone3 with ``CLONE_INTO_CGROUP`` (:mod:`runpy_exec.linux.clone3`)
  creates the child in its cgroup; nothing is written at all.

A hybrid host gets both: clone3 into the unified cgroup, ``tasks`` for every
v1 hierarchy.  Where clone3 or ``CLONE_INTO_CGROUP`` is missing (kernels
before 5.7, seccomp profiles that hide clone3), or pyrunc has more than one
thread, the child is forked by os.fork and writes "0" to the unified
cgroup.procs as before: the same result, with the wait.

CVE-2021-4197: the kernel checks a write to ``tasks`` or cgroup.procs
against the credentials of whoever opened the file, so every file is opened
here in the parent, privileged on the host, before the child drops anything;
clone3's check is of the parent's own credentials, at the clone.  "0" names
the writer itself, which a child born in the container's pid namespace could
not name by its host pid.

A v2 cgroup may refuse processes although it exists: it has controllers
enabled for children (EBUSY) or was made threaded (EOPNOTSUPP), as
Docker-in-Docker, kind and systemd in a container do to their cgroup; or the
container removed it after moving its init elsewhere.  Then, as runc 1.4 does
(runc#5101), an exec goes to the cgroup its init is in now, unless the caller
named the cgroup (``exec --cgroup``).
"""

from __future__ import annotations

import errno
import os
import posixpath

from runpy_exec.errors import os_reason
from runpy_exec.linux import clone3
from runpy_exec.linux.cgroups.common import UNIFIED, CgroupError, fail, mountpoints

TYPE_CHECKING = False
if TYPE_CHECKING:
    # A hint only: at run time collections.abc would import collections (~2 ms per exec).
    from collections.abc import Mapping

# Why a v2 cgroup takes no process: see the module's last paragraph.
_REFUSED = frozenset({errno.EBUSY, errno.EOPNOTSUPP, errno.ENODEV, errno.ENOENT})
_DIRECTORY = os.O_PATH | os.O_DIRECTORY


class CgroupJoin:
    """Everything a fork into the container's cgroups needs, opened before it.

    ``fork()`` replaces os.fork; the child then calls ``join_in_child()``
    before it enters any namespace or drops any privilege, and the parent
    calls ``close()`` once the child is started (the child's copies go with
    its execve: all are close-on-exec).
    """

    def __init__(self, paths: Mapping[str, str], init_pid: int | None = None) -> None:
        """``paths``: controller -> directory ("" for the unified hierarchy).

        ``init_pid``: the running container's init; its current v2 cgroup is
        the fallback for a v2 cgroup that refuses processes.  None when there
        is none (create) or when the caller named the cgroup itself.
        """
        self._init_pid = init_pid
        self._tasks: list[tuple[str, str, int]] = []
        unified = paths.get(UNIFIED)
        self._unified = None if unified is None else posixpath.normpath(unified)
        self._unified_fd: int | None = None
        self._procs: list[tuple[str, int]] = []
        try:
            for controller, path in paths.items():
                if controller != UNIFIED:
                    self._tasks.append((controller, path, _open(controller, path, "tasks")))
            if self._unified is not None:
                self._unified_fd = self._open_unified(self._unified)
        except BaseException:
            self.close()
            raise

    def _open_unified(self, path: str) -> int:
        """An O_PATH fd of the v2 cgroup directory, which is all clone3 needs."""
        try:
            return os.open(path, _DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            fallback = self._fallback(path, err)
            if fallback is None:
                raise fail(UNIFIED, "open", path, err) from err
            self._unified = fallback
            return _open(UNIFIED, fallback, "", _DIRECTORY)

    def _fallback(self, refused: str, err: OSError) -> str | None:
        """The init's current v2 cgroup, if it may stand in for ``refused``."""
        if self._init_pid is None or err.errno not in _REFUSED:
            return None
        current = init_cgroup(self._init_pid)
        return None if current in (None, refused) else current

    def fork(self) -> tuple[int, int]:
        """Fork the child into the unified cgroup where the kernel can; see the module.

        Returns ``(0, -1)`` in the child and ``(pid, pidfd)`` in the parent;
        the pidfd is the caller's to close.
        """
        if self._unified_fd is not None:
            if clone3.single_threaded():
                try:
                    return clone3.fork_into_cgroup(self._unified_fd)
                except OSError as err:
                    if err.errno not in clone3.UNSUPPORTED:
                        return self._fork_into_fallback(err)
            self._open_procs()
        pid = os.fork()
        if pid == 0:
            return 0, -1
        return pid, os.pidfd_open(pid)

    def _fork_into_fallback(self, err: OSError) -> tuple[int, int]:
        assert self._unified is not None and self._unified_fd is not None
        fallback = self._fallback(self._unified, err)
        if fallback is None:
            raise _refusal(self._unified, err) from None
        fd = _open(UNIFIED, fallback, "", _DIRECTORY)
        os.close(self._unified_fd)
        self._unified, self._unified_fd = fallback, fd
        try:
            return clone3.fork_into_cgroup(fd)
        except OSError as again:
            raise _refusal(fallback, again) from None

    def _open_procs(self) -> None:
        """Without clone3: the unified cgroup.procs for the child, and its fallback's."""
        assert self._unified is not None
        self._procs.append((self._unified, _open(UNIFIED, self._unified, "cgroup.procs")))
        if self._init_pid is not None:
            current = init_cgroup(self._init_pid)
            if current is not None and current != self._unified:
                self._procs.append((current, _open(UNIFIED, current, "cgroup.procs")))

    def join_in_child(self) -> None:
        """In the child, right after fork: join each v1 hierarchy (and v2 without clone3)."""
        for _, path, fd in self._tasks:
            try:
                os.write(fd, b"0")
            except OSError as err:
                raise OSError(err.errno, f"join {path}/tasks: {os_reason(err)}") from None
        for i, (path, fd) in enumerate(self._procs):
            try:
                os.write(fd, b"0")
                return
            except OSError as err:
                if i + 1 == len(self._procs) or err.errno not in _REFUSED:
                    raise OSError(err.errno, str(_refusal(path, err))) from None

    def close(self) -> None:
        fds = [fd for _, _, fd in self._tasks] + [fd for _, fd in self._procs]
        if self._unified_fd is not None:
            fds.append(self._unified_fd)
        for fd in fds:
            os.close(fd)
        self._tasks, self._procs, self._unified_fd = [], [], None


def init_cgroup(pid: int) -> str | None:
    """The directory of the v2 cgroup that ``pid`` is in now, or None.

    None when the process is gone or the unified hierarchy is not mounted.
    """
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            relative = next((line[3:].rstrip("\n") for line in f if line.startswith("0::")),
                            None)
    except OSError:
        return None
    mount = mountpoints().get(UNIFIED)
    if relative is None or mount is None:
        return None
    return posixpath.normpath(posixpath.join(mount, relative.lstrip("/")))


def _open(controller: str, directory: str, name: str, flags: int = os.O_WRONLY) -> int:
    path = os.path.join(directory, name) if name else directory
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as err:
        raise fail(controller, "open", path, err) from err


def _refusal(path: str, err: OSError) -> CgroupError:
    # The words of runc's message, which its callers and tests look for: the
    # kernel applies cgroup.procs's own rules to CLONE_INTO_CGROUP.
    reason = os.strerror(err.errno) if err.errno else str(err)
    return CgroupError(f"adding pid of the new process to cgroups: {path}/cgroup.procs: "
                       f"{reason[:1].lower()}{reason[1:]}", err.errno or 0)
