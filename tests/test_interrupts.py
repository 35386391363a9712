"""Stop signals reach the harness as KeyboardInterrupt, and healing holds them until done."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import os, signal, sys, time
    from serve_chaos.harness.interrupts import DeferredInterrupt, interrupt_on_stop_signals
    interrupt_on_stop_signals()
    sig = getattr(signal, sys.argv[1])
    with DeferredInterrupt() as held:
        os.kill(os.getpid(), sig)
        time.sleep(0.2)
        print("healed", held.interrupted, flush=True)
    try:
        os.kill(os.getpid(), sig)
        time.sleep(5)
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
""")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_stop_signal_is_held_while_healing_then_interrupts(sig):
    def start_like_a_background_job() -> None:
        # SIGINT ignored, as a background job of a non-interactive shell inherits it;
        # the others at their defaults (a harness under nohup keeps SIGHUP ignored).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)

    proc = subprocess.run(
        [sys.executable, "-c", CHILD, sig], capture_output=True, text=True, timeout=30,
        preexec_fn=start_like_a_background_job,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert proc.stdout.split("\n")[:2] == ["healed True", "interrupted"], proc.stdout + proc.stderr
