"""What a run's verdict is called: one vocabulary for the terminal, HTML, Markdown and JUnit.

A run is

- **kept**: every promise held;
- **known deviation**: it failed only where real Ray is known not to keep the
  promise (``Scenario.known_broken`` / ``known_intermittent``), each named
  deviation still failing -- never called a failure;
- **broken**: a promise failed that is not a known deviation, or a known
  deviation stopped reproducing (the entry must go);
- **inconclusive**: broken, but only while the harness's host was CPU-saturated: judged
  without the requests in flight then, the run keeps its promises (``checks/testbed.py``) --
  the testbed, not Ray, may have failed them;
- **skipped**: the scenario does not apply to this app or target;
- **error**: the cluster was not at steady state before the fault, or the run crashed;
- **interrupted**: stopped by Ctrl-C, a signal or the cluster taken away (a killed
  run's partial directory too);
- **aborted**: halted by ``--abort-below``;
- **unknown**: a check could not judge (too little data, or a check that crashed).

Everything here is a pure function of verdict dicts (``verdict.json``), so a
report rendered tomorrow from today's run directories says the same.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

KEPT = "kept"
KNOWN = "known deviation"
BROKEN = "broken"
INCONCLUSIVE = "inconclusive"
SKIPPED = "skipped"
ERROR = "error"
INTERRUPTED = "interrupted"
ABORTED = "aborted"
UNKNOWN = "unknown"
#: Every outcome, in the order a summary counts them.
OUTCOMES = (KEPT, KNOWN, BROKEN, INCONCLUSIVE, SKIPPED, ERROR, INTERRUPTED, ABORTED, UNKNOWN)
#: Outcomes the summary line always counts, even at zero (the others only when present).
ALWAYS_COUNTED = (KEPT, KNOWN, BROKEN, SKIPPED)
#: Outcomes a run command does not exit non-zero for.
ACCEPTED = frozenset({KEPT, KNOWN, SKIPPED})
#: The engine's raw statuses that are outcomes by themselves.
_DIRECT = {"inconclusive": INCONCLUSIVE, "skipped": SKIPPED, "error": ERROR, "interrupted": INTERRUPTED, "partial": INTERRUPTED,
           "aborted": ABORTED, "unknown": UNKNOWN}


@dataclass(frozen=True)
class Classified:
    """A run's outcome and the check names behind it.

    ``known``: failed checks that are known deviations (still reproducing);
    ``unexpected``: checks that did not pass and are not known;
    ``stale``: known deviations that no longer fail (they make the run broken).
    """

    outcome: str
    known: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()


def outcome_of(status: str, not_passed: Iterable[str], known: Iterable[str],
               intermittent: Iterable[str] = ()) -> Classified:
    """The outcome of a run from its raw status (pass / fail / unknown / error / skipped /
    interrupted / aborted / partial), the checks that did not pass, the known deviations
    this run could show, and the intermittent ones (a race: failing or not, both fine).

    A known deviation counts only while *each* one of them still fails."""
    failing = list(dict.fromkeys(not_passed))
    known_set, sometimes = set(known), set(intermittent)
    stale = tuple(k for k in known_set if k not in failing)
    expected = known_set | sometimes
    matched = tuple(c for c in failing if c in expected)
    unexpected = tuple(c for c in failing if c not in expected)
    if status in _DIRECT:
        return Classified(_DIRECT[status], matched, unexpected, ())
    if status == "pass":
        return Classified(BROKEN if stale else KEPT, (), (), tuple(sorted(stale)))
    if status == "fail" and failing and not unexpected and not stale:
        return Classified(KNOWN, matched)
    return Classified(BROKEN, matched, unexpected, tuple(sorted(stale)))


def known_in_play(verdict: dict[str, Any]) -> dict[str, str]:
    """The known deviations this run could show: a soak's phases that never ran cannot."""
    not_run = ((verdict.get("metrics") or {}).get("phases_not_run")) or []
    return {name: why for name, why in (verdict.get("known_broken") or {}).items()
            if not any(name.startswith(f"{phase}.") for phase in not_run)}


def classify(verdict: dict[str, Any]) -> Classified:
    """The outcome of one verdict (``verdict.json``)."""
    not_passed = [c["name"] for c in verdict.get("checks") or [] if c.get("status") != "pass"]
    return outcome_of(str(verdict.get("status", "unknown")), not_passed, known_in_play(verdict),
                      verdict.get("known_intermittent") or {})


def plural(n: int, word: str) -> str:
    """``3 known deviations``; outcomes that are adjectives (kept, broken) do not inflect."""
    if word in (KNOWN, ERROR) and n != 1:
        return f"{n} {word}s"
    return f"{n} {word}"


# ---------------------------------------------------------------------- headline figures
def primary_endpoint(verdict: dict[str, Any]) -> str:
    spec = verdict.get("scenario_spec") or {}
    return (spec.get("slo") or {}).get("primary_endpoint") or "front"


def headline(verdict: dict[str, Any]) -> dict[str, Any]:
    """The figures a verdict row shows: the primary endpoint's over the whole fault slice,
    and the recovery time of the (first) fault."""
    metrics = verdict.get("metrics") or {}
    primary = (metrics.get("endpoints") or {}).get(primary_endpoint(verdict)) or {}
    return {
        "availability": primary.get("availability"),
        "longest_outage_s": primary.get("longest_outage_s"),
        "longest_degraded_s": primary.get("longest_degraded_s"),
        "first_success_s": primary.get("first_success_s"),
        "recovery_s": metrics.get("recovery_s"),
        "faulted": metrics.get("t_fault") is not None,
    }


@dataclass(frozen=True)
class Summary:
    """How a set of runs went, in one line.  Availability is a ratio, recovery seconds."""

    counts: dict[str, int]
    worst_availability: tuple[float, str] | None = None
    slowest_recovery: tuple[float, str] | None = None
    not_recovered: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        counted = [plural(self.counts.get(o, 0), o) for o in OUTCOMES
                   if o in ALWAYS_COUNTED or self.counts.get(o)]
        parts = [f"{self.total} run{'s' if self.total != 1 else ''}: " + ", ".join(counted)]
        if self.worst_availability is not None:
            value, where = self.worst_availability
            parts.append(f"worst availability {value:.4f} ({where})")
        if self.slowest_recovery is not None:
            value, where = self.slowest_recovery
            parts.append(f"slowest recovery {value:.1f} s ({where})")
        if self.not_recovered:
            parts.append("never recovered: " + ", ".join(self.not_recovered))
        return "; ".join(parts)


def summarize(verdicts: Iterable[dict[str, Any]]) -> Summary:
    """Counts by outcome, the worst availability and the slowest recovery over ``verdicts``."""
    counts = {o: 0 for o in OUTCOMES}
    worst: tuple[float, str] | None = None
    slowest: tuple[float, str] | None = None
    never: list[str] = []
    for verdict in verdicts:
        outcome = classify(verdict).outcome
        counts[outcome] += 1
        if outcome in (SKIPPED, INTERRUPTED):
            continue
        figures = headline(verdict)
        name = str(verdict.get("scenario", "?"))
        avail = figures["availability"]
        if avail is not None and (worst is None or avail < worst[0]):
            worst = (float(avail), name)
        rec = figures["recovery_s"]
        if rec is not None and (slowest is None or rec > slowest[0]):
            slowest = (float(rec), name)
        elif rec is None and figures["faulted"]:
            never.append(name)
    return Summary(counts, worst, slowest, tuple(dict.fromkeys(never)))


# ---------------------------------------------------------------------- settings
#: Settings that are measurements or identities, not settings: never listed as such.
NOT_SETTINGS = frozenset({"app_code", "app_dir", "ray_cluster", "replica_starts_s", "replica_start_s"})
#: The settings that shape recovery, listed first; any other scalar setting follows by name.
SETTINGS_ORDER = ("ray_version", "target", "app", "gcs_ft", "workers", "isolation", "health_check_period_s",
                  "health_check_timeout_s", "graceful_shutdown_timeout_s", "max_replicas_per_node",
                  "gcs_rpc_server_reconnect_timeout_s_workers", "health_check_period_ms", "health_check_timeout_ms",
                  "health_check_failure_threshold", "readiness_period_s", "front_door_lag_s",
                  "node_replacement_delay_s")


def _scalar_settings(verdict: dict[str, Any]) -> dict[str, Any]:
    settings = verdict.get("settings") or {}
    return {k: v for k, v in settings.items()
            if k not in NOT_SETTINGS and (v is None or isinstance(v, (str, int, float, bool)))}


def _ordered(keys: Iterable[str]) -> list[str]:
    rank = {k: i for i, k in enumerate(SETTINGS_ORDER)}
    return sorted(keys, key=lambda k: (rank.get(k, len(rank)), k))


@dataclass(frozen=True)
class SettingsSplit:
    """The settings of the runs, said once: ``shared`` holds each setting's usual value (the
    one most runs had; every run's when they agree), ``differing`` per run only the settings
    whose value is not the usual one."""

    shared: dict[str, Any] = field(default_factory=dict)
    differing: tuple[dict[str, Any], ...] = ()


def split_settings(verdicts: list[dict[str, Any]]) -> SettingsSplit:
    """A run that never reached its fault (skipped, killed early) records next to no
    settings: it takes no part in the usual values and shows none of its own.  A setting
    is shared when at least half the judged runs have the same value."""
    judged = [_scalar_settings(v) if classify(v).outcome != SKIPPED and not v.get("partial") else None
              for v in verdicts]
    present = [s for s in judged if s]
    shared: dict[str, Any] = {}
    for key in _ordered({k for s in present for k in s}):
        values = Counter(repr(s[key]) for s in present if key in s)
        usual, count = values.most_common(1)[0]
        if 2 * count >= len(present):
            shared[key] = next(s[key] for s in present if key in s and repr(s[key]) == usual)
    differing = tuple({k: s[k] for k in _ordered(s) if k not in shared or repr(s[k]) != repr(shared[k])}
                      if s else {} for s in judged)
    return SettingsSplit(shared, differing)


#: How every output introduces the shared settings.
SHARED_SETTINGS_LABEL = "Settings of every run, unless its row says otherwise"


def settings_text(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items())


# ---------------------------------------------------------------------- formatting
def fmt(value: Any, spec: str = ".2f", unit: str = "") -> str:
    """A figure for a table cell: ``-`` when there is none."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec) + unit
    return f"{value}{unit}"


def churn_text(churn: dict[str, Any] | None) -> str:
    """``replica -1+1, pod -1+1``: what left and appeared per role; ``none``; ``-`` unknown."""
    if not churn:
        return "-"
    parts = [f"{role} -{len(c['left'])}+{len(c['appeared'])}" for role, c in churn.items()
             if c.get("left") or c.get("appeared")]
    return ", ".join(parts) or "none"
