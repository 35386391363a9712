"""``serve-chaos``: up / down / status / list / show / schema / run / nightly / soak / matrix / report / advise / versions / kind / k8s."""

from __future__ import annotations

import sys

import typer

from serve_chaos.harness.cli import advise, cluster, experiments, k8s, kind, matrix, reports, runs, versions
from serve_chaos.harness.cli.common import console, err_console
from serve_chaos.harness.interrupts import interrupt_on_stop_signals
from serve_chaos.runtime.errors import ServeChaosError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Chaos experiments for Ray Serve end-to-end fault tolerance.")
for module in (cluster, runs, experiments, matrix, reports, advise, versions, kind, k8s):
    module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes end in one line on stderr and a non-zero exit, never a traceback."""
    command = typer.main.get_command(app)
    interrupt_on_stop_signals()
    try:
        # Without standalone mode, click returns (not raises) the code of a typer.Exit.
        code = command.main(args=argv if argv is not None else sys.argv[1:], prog_name="serve-chaos",
                            standalone_mode=False)
    except ServeChaosError as exc:
        err_console.print(f"error: {exc.one_line()}", markup=False, highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - typer/click signal exits and usage errors this way
        return _click_exit(exc)
    return code if isinstance(code, int) else 0


def _click_exit(exc: Exception) -> int:
    """Map click's (or typer's vendored click's) control-flow exceptions to exit codes.

    Matched by name because typer >= 0.29 vendors click under a private module.
    """
    name = type(exc).__name__
    if name == "Exit":
        return int(getattr(exc, "exit_code", 0) or 0)
    if name == "Abort":
        err_console.print("aborted")
        return 130
    if name == "NoArgsIsHelpError":
        ctx = getattr(exc, "ctx", None)
        console.print(ctx.get_help() if ctx is not None else "serve-chaos --help")
        return 2
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        err_console.print(f"error: {exc.format_message()}{where}", markup=False, highlight=False, soft_wrap=True)
        return int(exc.exit_code) or 2
    raise exc
