"""One way to wait for a condition: tenacity, with the last reason in the timeout message.

A check raises ``NotYet("what is still missing")`` until the condition holds (the
pattern of Ray's ``wait_for_condition``); ``wait_until`` retries it and, on
timeout, raises an ``InfrastructureError`` that says what was awaited and why it
never came, with a hint.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from serve_chaos.runtime.errors import InfrastructureError

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a check whose condition does not hold yet; its message says why."""


def wait_until(check: Callable[[], T], timeout_s: float, period_s: float = 1.0, what: str = "a condition",
               hint: str = "", evidence: str = "",
               retry_on: tuple[type[BaseException], ...] = (NotYet,)) -> T:
    """Call ``check`` every ``period_s`` seconds until it returns without raising one of
    ``retry_on``; give up after ``timeout_s`` seconds.  Returns what ``check`` returned."""
    try:
        for attempt in Retrying(stop=stop_after_delay(timeout_s), wait=wait_fixed(period_s),
                                retry=retry_if_exception_type(retry_on), reraise=False):
            with attempt:
                return check()
    except RetryError as err:
        last = err.last_attempt.exception()
        reason = getattr(last, "what", None) or str(last) or type(last).__name__
        raise InfrastructureError(f"timed out after {timeout_s:.0f} s waiting for {what}: {reason}",
                                  hint=hint, evidence=evidence) from None
    raise AssertionError("unreachable")  # pragma: no cover - Retrying either returns or raises
