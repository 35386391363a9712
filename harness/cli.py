"""``serve-chaos``: up / status / down / list / run (main job and game day)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from runtime.errors import ConfigError, ServeChaosError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Chaos experiments for Ray Serve end-to-end fault tolerance.")
console = Console()
err_console = Console(stderr=True)


# ---------------------------------------------------------------------- cluster config
def _local_config(config_file: Optional[str], workers: Optional[int], gcs_ft: Optional[bool],
                  isolation: Optional[str], front_port: Optional[int]):
    from runtime.local.cluster import load_config_file

    cfg = load_config_file(config_file)
    changes: dict[str, Any] = {}
    if workers is not None:
        changes["workers"] = workers
    if gcs_ft is not None:
        changes["gcs_ft"] = gcs_ft
    if isolation is not None:
        changes["isolation"] = isolation
    if front_port is not None:
        changes["front_port"] = front_port
    return cfg.with_(**changes) if changes else cfg


@app.command()
def up(
    config: Optional[str] = typer.Option(None, help="JSON file with local cluster settings"),
    workers: Optional[int] = typer.Option(None, help="worker pods (default 2)"),
    gcs_ft: Optional[bool] = typer.Option(None, "--gcs-ft/--no-gcs-ft", help="GCS fault tolerance (default on)"),
    isolation: Optional[str] = typer.Option(None, help="auto | netns (root) | loopback"),
    front_port: Optional[int] = typer.Option(None, help="front door port on 127.0.0.1 (default 18000)"),
) -> None:
    """Start the embedded cluster in the background (it keeps running until `down`)."""
    from runtime.local.cluster import LocalCluster

    cfg = _local_config(config, workers, gcs_ft, isolation, front_port)
    cluster = LocalCluster(cfg, owner_pid=None)
    if cluster.attach():
        console.print(f"a cluster is already up (run {cluster.label}); `serve-chaos down` stops it")
        _print_status(cluster)
        return
    with console.status("bringing the cluster up (about 35 s) ..."):
        cluster.up()
    console.print(f"cluster {cluster.label} is up")
    _print_status(cluster)


@app.command()
def down() -> None:
    """Stop the embedded cluster and remove everything it left (processes, namespaces, cgroups, dirs)."""
    from runtime.local import leftovers
    from runtime.local.cluster import LocalCluster
    from runtime.local.config import DEFAULT_HOME

    cluster = LocalCluster()
    if cluster.attach():
        label = cluster.label
        with console.status("tearing down ..."):
            cluster.down()
        console.print(f"cluster {label} is down")
        return
    cleaned = leftovers.reap_all(DEFAULT_HOME)
    for line in cleaned:
        console.print(f"removed leftovers of {line}")
    if not cleaned:
        console.print("no cluster is up")


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Pods, IPs, PIDs, replicas per pod, proxies, controller and GCS FT of the running cluster."""
    from runtime.local.cluster import LocalCluster

    cluster = LocalCluster()
    if not cluster.attach():
        raise ServeChaosError("no serve-chaos cluster is up", hint="start one with `serve-chaos up`")
    if as_json:
        state = cluster.state()
        state.pop("config", None)
        snap = _snapshot(cluster)
        console.print_json(json.dumps({"cluster": state, "serve": snap.to_dict()}, default=str))
        return
    _print_status(cluster)


def _snapshot(cluster: Any):
    from harness.observe import Prober

    prober = Prober(cluster.endpoints().dashboard, lambda: [p.to_dict() for p in cluster.pods()])
    try:
        return prober.snapshot()
    finally:
        prober.stop()


def _print_status(cluster: Any) -> None:
    state = cluster.state()
    snap = _snapshot(cluster)
    by_pod: dict[str, dict[str, list]] = {}
    for actor in snap.actors:
        entry = by_pod.setdefault(actor.get("pod") or "?", {"replica": [], "proxy": [], "controller": []})
        entry[actor["role"]].append(actor)
    table = Table(title=f"serve-chaos cluster {state['label']} ({state['mode']}, GCS FT {'on' if state['gcs_ft'] else 'off'})")
    for col in ("pod", "role", "node", "ip", "phase", "ready", "pid", "restarts", "replicas (pid:state)", "proxy", "controller"):
        table.add_column(col)
    for pod in state["pods"]:
        actors = by_pod.get(pod["name"], {"replica": [], "proxy": [], "controller": []})
        reps = " ".join(f"{a['pid']}:{a['state'][:4]}" for a in sorted(actors["replica"], key=lambda a: a["pid"] or 0))
        proxy = " ".join(f"{a['pid']}:{a['state']}" for a in actors["proxy"])
        ctrl = " ".join(str(a["pid"]) for a in actors["controller"])
        table.add_row(pod["name"], pod["role"], pod["node"], pod["ip"], pod["phase"], "yes" if pod["ready"] else "no",
                      str(pod["pid"] or "-"), str(pod["restarts"]), reps or "-", proxy or "-", ctrl or "-")
    console.print(table)
    lost = [n["name"] for n in state["nodes"] if n["state"] != "Ready"]
    console.print(f"front door {state['front_door']}   dashboard {state['dashboard']}   "
                  f"app {snap.app_status or 'unknown'}   replicas RUNNING {snap.replicas_running}"
                  + (f"   lost nodes: {', '.join(lost)}" if lost else ""))
    if snap.errors:
        console.print(f"probe errors: {snap.errors}")


# ---------------------------------------------------------------------- scenarios
@app.command("list")
def list_scenarios() -> None:
    """The scenarios with their promises and SLOs."""
    from harness.catalog import load_scenarios

    table = Table(title="serve-chaos scenarios")
    for col in ("scenario", "fault", "promise", "SLOs", "expected churn"):
        table.add_column(col, overflow="fold")
    for sc in load_scenarios().values():
        slo = {k: v for k, v in sc.describe()["slo"].items() if v not in (None, {}, "front")}
        table.add_row(sc.name, sc.fault.describe(), sc.promise,
                      "\n".join(f"{k}={v}" for k, v in slo.items()),
                      ", ".join(f"{k}:{v}" for k, v in sc.expected_churn.items()))
    console.print(table)


def _parse_seed(seed: Optional[str]) -> Optional[int]:
    if seed is None:
        return None
    try:
        return int(seed)
    except ValueError:
        raise ConfigError(f"--seed {seed!r} is not an integer", hint="pass e.g. --seed 42") from None


@app.command()
def run(
    scenarios: list[str] = typer.Argument(..., help="scenario names, or `all`"),
    seed: Optional[str] = typer.Option(None, help="seed for victims and schedule (default: random, recorded)"),
    report_dir: Path = typer.Option(Path("reports"), help="where run artifacts go"),
    keep_cluster: bool = typer.Option(False, help="leave the cluster running afterwards"),
    dry_run: bool = typer.Option(False, help="print the plan and touch nothing"),
    step: bool = typer.Option(False, help="ask before each fault"),
    load_rate: Optional[float] = typer.Option(None, help="requests/s per endpoint"),
    config: Optional[str] = typer.Option(None, help="JSON file with local cluster settings"),
) -> None:
    """Run scenarios against the embedded cluster (brought up if needed) and print verdicts."""
    from harness.catalog import select

    chosen = select(scenarios)
    if load_rate is not None:
        if not 0 < load_rate <= 2000:
            raise ConfigError(f"--load-rate {load_rate} must be in (0, 2000] requests/s")
        chosen = [replace(sc, load=replace(sc.load, rate=load_rate)) for sc in chosen]
    seed_value = _parse_seed(seed)
    if dry_run:
        _print_plan(chosen, seed_value)
        return
    from harness.engine import Engine, ScenarioSkipped
    from runtime.local.cluster import LocalCluster

    cfg = _local_config(config, None, None, None, None)
    if config is None:
        from runtime.app.serve_config import SCENARIO_APP

        cfg = cfg.with_(app=SCENARIO_APP)
    cluster = LocalCluster(cfg, owner_pid=None if keep_cluster else os.getpid())
    results = []
    try:
        with console.status("bringing the cluster up ..."):
            cluster.up()
        engine = Engine(cluster, report_dir, seed=seed_value, observer=_print_progress,
                        confirm=_confirm if step else None, run_label=cluster.label)
        for sc in chosen:
            console.rule(f"[bold]{sc.name}[/bold]: {sc.title}")
            try:
                results.append(engine.run(sc))
            except ScenarioSkipped as err:
                console.print(f"skipped: {err.one_line()}")
    except KeyboardInterrupt:
        last = getattr(locals().get("engine"), "last_result", None)
        err_console.print("interrupted: the cluster was healed" + (f"; artifacts in {last.run_dir}" if last else ""))
        raise
    finally:
        if results:
            _print_verdicts(results, report_dir)
        # A cluster that was already up (`serve-chaos up`) is not ours to remove.
        if not keep_cluster and cluster.created:
            with console.status("tearing the cluster down ..."):
                cluster.down()
    if any(r.status not in ("pass",) for r in results):
        unexplained = [r for r in results if r.status != "pass" and not _only_known_broken(r)]
        if unexplained:
            raise typer.Exit(1)


def _only_known_broken(result: Any) -> bool:
    if result.evaluation is None:
        return False
    return {c.name for c in result.evaluation.violations()} <= set(result.scenario.known_broken)


def _print_plan(chosen: list, seed: Optional[int]) -> None:
    import random

    from runtime.local.cluster import LocalCluster

    cluster = LocalCluster()
    live = False
    try:
        live = cluster.attach()
    except ServeChaosError:
        live = False
    snap = _snapshot(cluster) if live else None
    pods = cluster.pods() if live else []
    for sc in chosen:
        console.rule(f"[bold]{sc.name}[/bold] (dry run: nothing is touched)")
        console.print(f"promise: {sc.promise}")
        console.print(f"fault:   {sc.fault.describe()}")
        if snap is not None and seed is not None:
            try:
                plan = sc.fault.plan(snap, pods, random.Random(f"{seed}:{sc.name}"))
                console.print(f"victims: {plan.description}")
            except ServeChaosError as err:
                console.print(f"victims: none available now ({err.what})")
        else:
            console.print("victims: chosen at run time from the live cluster"
                          + (f" with seed {seed}" if seed is not None else " (random seed, recorded)"))
        t = sc.describe()["timing"]
        console.print(f"schedule: load {sc.load.rate:g} req/s on {', '.join(sc.load.endpoints)}; warm-up {t['warmup_s']:g} s; "
                      f"gate <= {t['gate_timeout_s']:g} s; inject once; observe >= {t['min_observe_s']:g} s, "
                      f"deadline {t['deadline_s']:g} s; heal always")
        slo = {k: v for k, v in sc.describe()["slo"].items() if v not in (None, {}, "front")}
        console.print(f"SLOs: {slo}")
        console.print(f"expected churn: {sc.expected_churn}")
        if sc.known_broken:
            console.print(f"known broken in Ray 2.60: {sc.known_broken}")


def _print_progress(event: str, data: dict[str, Any]) -> None:
    if event == "phase":
        extra = " ".join(f"{k}={v}" for k, v in data.items() if k != "name")
        console.log(f"{data['name']} {extra}")
    elif event == "plan":
        console.log(f"plan: {data['plan'].description}")


def _confirm(plan: Any) -> bool:
    return typer.confirm(f"inject: {plan.description}?", default=True)


def _print_verdicts(results: list, report_dir: Path) -> None:
    table = Table(title="serve-chaos verdicts")
    for col in ("scenario", "verdict", "availability", "longest outage s", "first success s", "recovery s", "churn", "run dir"):
        table.add_column(col)
    for res in results:
        metrics = res.evaluation.metrics if res.evaluation else {}
        primary = (metrics.get("endpoints") or {}).get(res.scenario.slo.primary_endpoint, {})
        churn = metrics.get("churn") or {}
        churn_txt = " ".join(f"{r}:-{len(c['left'])}+{len(c['appeared'])}" for r, c in churn.items()
                             if c["left"] or c["appeared"]) or "none"
        verdict = res.status + (" (known Ray bug)" if res.status == "fail" and _only_known_broken(res) else "")

        def f(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        table.add_row(res.scenario.name, verdict, f(primary.get("availability"), ".4f"),
                      f(primary.get("longest_outage_s"), ".2f"), f(primary.get("first_success_s"), ".2f"),
                      f(metrics.get("recovery_s"), ".2f"), churn_txt, str(res.run_dir))
    console.print(table)
    for res in results:
        for line in res.violation_lines():
            console.print(f"  {res.scenario.name}: {line}")
    console.print(f"artifacts: {report_dir.resolve()}")


# ---------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user mistakes end in one line on stderr and a non-zero exit, never a traceback."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv if argv is not None else sys.argv[1:], prog_name="serve-chaos",
                     standalone_mode=False)
    except ServeChaosError as exc:
        err_console.print(f"error: {exc.one_line()}", markup=False, highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - typer/click signal exits and usage errors this way
        return _click_exit(exc)
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
