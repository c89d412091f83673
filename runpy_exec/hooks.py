"""OCI hooks: programs the bundle asks the runtime to run at points of the lifecycle."""

from __future__ import annotations

from runpy_exec import log
from runpy_exec.errors import PyruncError

# start and delete run here on every call, hooks or not: json, subprocess and
# typing are imported only when there is a hook to run.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runpy_exec.state import Container


# The hooks the container's init runs itself, after its children can no longer
# import (create_cmd loads subprocess for them beforehand).
IN_CONTAINER_POINTS = ("createContainer", "startContainer")


def run_hooks(container: Container, point: str, oci_state: dict[str, Any], fatal: bool) -> None:
    """A failing prestart/createRuntime hook fails create; poststart and poststop
    failures are only warnings (the runtime spec's rule)."""
    run_spec_hooks(container.config, point, oci_state, fatal)


def run_spec_hooks(spec: dict[str, Any], point: str, oci_state: dict[str, Any],
                   fatal: bool, default_env: list[str] | None = None) -> None:
    """Run each of the spec's hooks for ``point`` with the state on stdin, as the spec says.

    The init calls this too, for the hooks that run inside the container;
    there a hook without ``env`` gets ``default_env`` (the process's own, as
    runc gives startContainer hooks).
    """
    hooks = ((spec.get("hooks") or {}).get(point)) or []
    if not hooks:
        return
    import subprocess

    from runpy_exec import jsonio as json

    payload = json.dumps(oci_state).encode()
    for index, hook in enumerate(hooks):
        path = hook["path"]
        # runc's words, which its tests and users look for; #index counts from 0.
        failed = f"error running {point} hook #{index}: {path}"
        args = hook.get("args") or [path]
        try:
            result = subprocess.run(
                args, executable=path, input=payload, env=_env(hook.get("env") or default_env),
                capture_output=True, timeout=hook.get("timeout"), check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            message = f"{failed}: {err}"
        else:
            if result.returncode == 0:
                continue
            detail = result.stderr.decode(errors="replace").strip().splitlines()
            message = (f"{failed} exited with status {result.returncode}"
                       + (f": {detail[-1]}" if detail else ""))
        if fatal:
            raise PyruncError(message)
        log.warning(message)


def _env(entries: list[str] | None) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in entries or [] if "=" in entry)
