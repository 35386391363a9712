"""Running short system commands (ip, nft) with errors that carry command, stderr and a hint."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence

from serve_chaos.runtime.errors import InfrastructureError

#: Held while a short command runs, so the supervisor's zombie reaper (which
#: waits on any child) cannot steal the exit status subprocess.run waits for.
CHILD_WAIT_LOCK = threading.RLock()


def run(
    cmd: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    timeout_s: float = 30.0,
    hint: str = "",
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd``; on failure raise InfrastructureError naming the command and its stderr."""
    with CHILD_WAIT_LOCK:
        try:
            proc = subprocess.run(
                list(cmd),
                input=input_text,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise InfrastructureError(
                f"command not found: {cmd[0]}", hint=hint or f"install {cmd[0]}"
            ) from None
        except subprocess.TimeoutExpired:
            raise InfrastructureError(
                f"command timed out after {timeout_s:.0f} s: {' '.join(cmd)}", hint=hint
            ) from None
    if check and proc.returncode != 0:
        stderr = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise InfrastructureError(
            f"command failed (exit {proc.returncode}): {' '.join(cmd)}",
            evidence=stderr[-1] if stderr else "no output",
            hint=hint,
        )
    return proc
