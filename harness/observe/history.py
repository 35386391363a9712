"""One timeline of a run: requests, faults, probe snapshots and cluster events.

Everything is keyed by epoch seconds.  The frames here are what the checks
(pure functions in ``checks.py``) and the report read; a run directory holds
the same data as files, so a history can be rebuilt from disk.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from serve_chaos.harness.observe.probe import Snapshot
from serve_chaos.harness.load.slots import VACANT

REQUEST_COLUMNS = ["seq", "t", "t_sent", "endpoint", "route", "request_id", "ok", "error", "status", "pid", "pod",
                   "role", "latency_ms", "address", "incarnation", "worker"]
#: Error class of a send the load did not make: its slot had no pod.
UNSENT_ERROR = VACANT
#: Added by ``History.build``: the replica that served a request, from Serve's logs
#: (``replica``) and, for an app that returns its PID, from the body (``replica_by_body``).
SERVED_BY_COLUMNS = ["replica", "replica_by_body", "downstream"]

REQUESTS_FILE = "requests.jsonl"
SNAPSHOTS_FILE = "probes.jsonl"
SERVED_BY_FILE = "served_by.jsonl"
FAULTS_FILE = "faults.json"
EVENTS_FILE = "events.jsonl"
META_FILE = "history.json"


@dataclass
class FaultRecord:
    """One injected fault.

    ``t_inject`` is when the fault took effect (epoch s), ``t_end`` when the
    injecting call returned.  ``victims`` are what the fault is expected to
    replace: dicts with ``role`` (replica / proxy / controller / pod / node)
    and whatever identifies them (actor_id, pid, pod, uid, node).
    """

    fault: str
    t_inject: float
    t_end: float
    victims: list[dict[str, Any]] = field(default_factory=list)
    action: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    heal_actions: list[dict[str, Any]] = field(default_factory=list)
    t_heal: float | None = None
    #: Which phase of the scenario injected it ("main" or a follow-up's name).
    phase: str = "main"
    #: When the engine saw steady state again while observing (epoch s), from the
    #: history as it was then -- kept so the verdict does not depend on what the
    #: next fault did to requests still in flight.
    t_recovered_observed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FaultRecord":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def requests_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Request records -> frame sorted by intended send time ``t``."""
    df = pd.DataFrame.from_records(records, columns=REQUEST_COLUMNS) if records else pd.DataFrame(columns=REQUEST_COLUMNS)
    if not df.empty:
        df["ok"] = df["ok"].astype(bool)
        df = df.sort_values("t", kind="stable").reset_index(drop=True)
    return df


class JsonlTail:
    """Reads a JSONL file that another process appends to, parsing each line once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[dict[str, Any]] = []
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        """All complete records so far (a half-written last line waits for the next call)."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return self.records
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.strip():
                try:
                    self.records.append(json.loads(line))
                except ValueError:
                    continue
        return self.records


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL file; a torn last line (writer killed mid-write) is skipped."""
    out = []
    try:
        with path.open() as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        pass
    return out


@dataclass
class History:
    """The timeline.  ``t_load_start``/``t_load_stop`` bracket the load (epoch s);
    ``t_heal_start`` is when the engine began to heal (the load keeps running while it
    heals, so what follows belongs to no fault);
    ``load_timeout_s`` is the per-request timeout (s); ``desired_replicas`` what
    the Serve config asks for."""

    requests: pd.DataFrame
    snapshots: list[Snapshot] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    t_load_start: float | None = None
    t_load_stop: float | None = None
    t_heal_start: float | None = None
    load_timeout_s: float = 5.0
    desired_replicas: int = 0
    #: ``request id -> replica`` records read from Serve's logs (``serve_chaos.harness.load.servedby``).
    served_by: list[dict[str, Any]] = field(default_factory=list)
    #: Sends the load did not make because their slot had no pod (``serve_chaos.harness.load.slots``): not
    #: requests, but their sequence numbers and times are known (see ``judged_until``).
    unsent: pd.DataFrame = field(default_factory=lambda: requests_frame([]))
    #: Requests left out of judging because the harness's host was CPU-saturated while they were
    #: in flight (``serve_chaos.harness.checks.testbed``): not judged, but their sequence is known.
    set_aside: pd.DataFrame = field(default_factory=lambda: requests_frame([]))

    @classmethod
    def build(cls, request_records: list[dict[str, Any]], **kwargs: Any) -> "History":
        from serve_chaos.harness.load.servedby import attribute

        sent = [r for r in request_records if r.get("error") != UNSENT_ERROR]
        unsent = [r for r in request_records if r.get("error") == UNSENT_ERROR]
        frame = requests_frame(sent)
        return cls(requests=attribute(frame, kwargs.get("served_by") or [], kwargs.get("snapshots") or []),
                   unsent=requests_frame(unsent), **kwargs)

    def ray_pods_before_faults(self) -> int | None:
        """How many Ray pods (head and workers) were Running in the last good snapshot before the
        first fault; None when no snapshot says (no pods probed, or no fault yet)."""
        first = min((f.t_inject for f in self.faults), default=None)
        if first is None:
            return None
        before = [s for s in self.snapshots if (s.t_end or s.t) < first and s.pods_ok]
        return ray_pods_running(before[-1]) if before else None

    def snapshots_in_effect(self, fault: FaultRecord) -> list[Snapshot]:
        """The probes taken while ``fault`` was in effect: from its injection until it was ended or
        healed (``t_heal``; to the end when it never was)."""
        end = fault.t_heal if fault.t_heal is not None else float("inf")
        return [s for s in self.snapshots if fault.t_inject <= s.t < end]

    def desired_at(self, t: float) -> int:
        """Replicas the Serve config asks for at ``t`` (epoch s): ``desired_replicas``, or what
        the latest operator change before ``t`` asked for (a scale-down: ``params.desired_replicas``)."""
        want = self.desired_replicas
        for fault in self.faults:
            if fault.t_inject <= t and fault.params.get("desired_replicas") is not None:
                want = int(fault.params["desired_replicas"])
        return want

    @property
    def t_data_end(self) -> float | None:
        """Where what the faults did ends: healing began, or the load stopped (epoch s)."""
        ends = [t for t in (self.t_heal_start, self.t_load_stop) if t is not None]
        return min(ends) if ends else None

    def judged_until(self, exclude: Mapping[str, float] | frozenset[str] | set[str] = frozenset()) -> float:
        """Intended send time up to which every request's outcome is recorded (epoch s).

        Records are written when a request completes, so while load runs the
        earliest request still in flight shows up as the first missing sequence
        number; nothing from its intended time on is judged yet.  A missing
        number older than the newest send minus the request timeout (and a 1 s
        margin) cannot be in flight any more: it was lost (the load process
        died mid-request) and does not hold judging back.  Sends to a vacant slot
        (``unsent``) are not missing.  Requests to the endpoints in ``exclude``
        (say, a slot aimed at a deleted pod, whose requests all hang until they
        time out) do not hold it back either -- those sent before the time
        ``exclude`` maps the endpoint to (a set: always): the load sends to its
        endpoints in turn, so ``seq % endpoints`` names the endpoint of a missing
        request.  ``inf`` when nothing is pending.
        """
        frames = [f[["seq", "t", "t_sent", "endpoint"]] for f in (self.requests, self.unsent, self.set_aside)
                  if not f.empty]
        if not frames:
            return float("inf")
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if df["seq"].isna().all():
            return float("inf")
        known = df.dropna(subset=["seq"])
        seqs = known["seq"].astype(int).to_numpy()
        lo, hi = int(seqs.min()), int(seqs.max())
        present = set(seqs.tolist())
        if hi - lo + 1 == len(present):
            return float("inf")
        t_lo = float(known.loc[known["seq"] == lo, "t"].iloc[0])
        t_hi = float(known.loc[known["seq"] == hi, "t"].iloc[0])
        interval = (t_hi - t_lo) / (hi - lo) if hi > lo else 0.0
        newest_send = float(known["t_sent"].max()) if known["t_sent"].notna().any() else t_hi
        horizon = newest_send - self.load_timeout_s - 1.0
        until = exclude if isinstance(exclude, Mapping) else dict.fromkeys(exclude, float("inf"))
        skip = self._excluded_residues(known, until)
        for seq in range(lo, hi + 1):
            if seq in present:
                continue
            t_missing = t_lo + (seq - lo) * interval
            if skip and t_missing < skip[1].get(seq % skip[0], float("-inf")):
                continue
            if t_missing > horizon:
                return t_missing
        return float("inf")

    @staticmethod
    def _excluded_residues(known: pd.DataFrame, until: Mapping[str, float]) -> tuple[int, dict[int, float]] | None:
        """(number of endpoints, residue of each excluded one -> until when) if every endpoint keeps one residue."""
        if not until:
            return None
        n = int(known["endpoint"].nunique())
        residues = known.groupby("endpoint")["seq"].agg(lambda s: frozenset((s.astype(int) % n).tolist()))
        if n < 2 or any(len(r) != 1 for r in residues):
            return None
        return n, {next(iter(residues[e])): t for e, t in until.items() if e in residues.index}

    def judged_requests(self, exclude: Mapping[str, float] | frozenset[str] | set[str] = frozenset()) -> pd.DataFrame:
        """Requests sent before the earliest one whose outcome is not yet known."""
        df = self.requests
        if df.empty:
            return df
        cut = self.judged_until(exclude)
        if cut == float("inf"):
            return df
        return df[df["t"] < cut]

    def snapshots_frame(self) -> pd.DataFrame:
        rows = [
            {
                "t": s.t,
                "serve_ok": s.serve_ok,
                "actors_ok": s.actors_ok,
                "ok": s.ok,
                "app_status": s.app_status,
                "replicas_running": s.replicas_running,
                "n_replicas": sum(a["role"] == "replica" for a in s.actors),
                "n_proxies": sum(a["role"] == "proxy" for a in s.actors),
                "n_controllers": sum(a["role"] == "controller" for a in s.actors),
            }
            for s in self.snapshots
        ]
        return pd.DataFrame(rows)

    def actors_frame(self) -> pd.DataFrame:
        """One row per live Serve actor per snapshot."""
        rows = [{"t": s.t, **a} for s in self.snapshots if s.actors_ok for a in s.actors]
        cols = ["t", "role", "actor_id", "name", "pid", "node_id", "node_ip", "pod", "state"]
        return pd.DataFrame(rows, columns=cols)

    def pods_frame(self) -> pd.DataFrame:
        rows = [{"t": s.t, **p} for s in self.snapshots if s.pods_ok for p in s.pods]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ files
    def save(self, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / REQUESTS_FILE).exists():
            records = self.requests.reindex(columns=REQUEST_COLUMNS).to_dict("records")
            records += self.unsent.reindex(columns=REQUEST_COLUMNS).to_dict("records")
            with (run_dir / REQUESTS_FILE).open("w") as fh:
                for rec in sorted(records, key=lambda r: r["t"]):
                    clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
                    fh.write(json.dumps(clean, default=_json_default) + "\n")
        if self.served_by and not (run_dir / SERVED_BY_FILE).exists():
            with (run_dir / SERVED_BY_FILE).open("w") as fh:
                fh.writelines(json.dumps(r, default=str) + "\n" for r in self.served_by)
        if not (run_dir / SNAPSHOTS_FILE).exists():
            with (run_dir / SNAPSHOTS_FILE).open("w") as fh:
                for snap in self.snapshots:
                    fh.write(json.dumps(snap.to_dict(), default=str) + "\n")
        (run_dir / FAULTS_FILE).write_text(json.dumps([f.to_dict() for f in self.faults], indent=2, default=str))
        with (run_dir / EVENTS_FILE).open("w") as fh:
            for event in self.events:
                fh.write(json.dumps(event, default=str) + "\n")
        meta = {
            "t_load_start": self.t_load_start,
            "t_load_stop": self.t_load_stop,
            "t_heal_start": self.t_heal_start,
            "load_timeout_s": self.load_timeout_s,
            "desired_replicas": self.desired_replicas,
        }
        (run_dir / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> "History":
        """The history a run left; a run killed early left no meta or faults file: defaults then."""
        meta = _read_json(run_dir / META_FILE, {})
        meta = {k: v for k, v in meta.items() if k in cls.__dataclass_fields__} if isinstance(meta, dict) else {}
        faults = [FaultRecord.from_dict(f) for f in _read_json(run_dir / FAULTS_FILE, []) if isinstance(f, dict)]
        return cls.build(
            read_jsonl(run_dir / REQUESTS_FILE),
            snapshots=[Snapshot.from_dict(d) for d in read_jsonl(run_dir / SNAPSHOTS_FILE)],
            faults=faults,
            events=read_jsonl(run_dir / EVENTS_FILE),
            served_by=read_jsonl(run_dir / SERVED_BY_FILE),
            **meta,
        )


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def ray_pods_running(snap: Any) -> int:
    """Ray pods (head and workers) Running in a snapshot (a pod's readiness is not asked: a worker
    that Serve left without replicas runs no proxy and is never Ready, yet the cluster is whole)."""
    return sum(1 for p in snap.pods if p.get("role") in ("head", "worker") and p.get("phase") == "Running")
