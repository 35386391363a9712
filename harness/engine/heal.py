"""Heal: every fault undone (latest first) before the load is drained, then steady state again."""

from __future__ import annotations

import time

from serve_chaos.harness.checks import first_steady_state
from serve_chaos.harness.engine.base import EngineBase
from serve_chaos.harness.engine.run import RunState
from serve_chaos.harness.observe.history import History, requests_frame
from serve_chaos.runtime.errors import ServeChaosError
from serve_chaos.runtime.waiting import NotYet, wait_until


class HealPhase(EngineBase):
    """every fault undone (latest first) before the load is drained, then steady state again."""

    def _heal_and_stop(self, run: RunState) -> None:
        """Heal first, then drain the load, then wait for the cluster to settle."""
        self._emit("phase", name="heal")
        run.t_heal_start = time.time()
        if self.cluster.lost():
            run.load.stop()  # nothing left to heal, nor to settle
            run.t_load_stop = time.time()
            return
        healed = self._heal(run)
        run.load.stop()
        run.t_load_stop = time.time()
        try:
            self.cluster.wait_ready(timeout_s=max(180.0, self.cluster.capabilities.ready_timeout_s))
            if run.faults and (healed or not run.all_recovered):
                # Something was undone or never recovered: wait for steady state so the
                # next scenario starts clean.  (Without a fault there is nothing to settle
                # from: a cluster the gate found unhealthy stays the gate's finding.)
                self._settle(run)
        except ServeChaosError as err:
            run.cluster_healthy = False
            run.error = run.error or f"cluster did not return to steady state after healing: {err.what}"

    def _heal(self, run: RunState) -> bool:
        """Heal every injected fault (latest first), then whatever the cluster still has in effect.

        A fault Ray fully recovered from is healed only if its heal still has work
        to do (``heal_after_recovery``).  Returns whether anything was healed.
        """
        by_name = {p.name: p for p in run.phases}
        healed = False
        for record in reversed(run.faults):
            fault = by_name[record.phase].fault
            if run.all_recovered and not fault.heal_after_recovery:
                continue
            try:
                actions = fault.heal(self.cluster, record)
                record.heal_actions += [a.to_dict() for a in actions]
                record.t_heal = record.t_heal or time.time()
                healed = healed or bool(actions)
            except ServeChaosError as err:
                run.error = run.error or f"heal of {record.fault} failed: {err.one_line()}"
        try:
            healed = bool(self.cluster.heal()) or healed
        except ServeChaosError as err:
            run.error = run.error or f"heal failed: {err.one_line()}"
        return healed

    def _settle(self, run: RunState, timeout_s: float = 180.0) -> None:
        """Wait until the probes (no load) show steady state: the next scenario starts clean."""
        t0 = time.time()
        want = run.app.desired_replicas()

        def steady() -> None:
            history = History(requests=requests_frame([]), snapshots=run.prober.copy(), desired_replicas=want)
            t_ok, reason = first_steady_state(history, t0, run.scenario.hold_s)
            if t_ok is None:
                raise NotYet(reason)

        wait_until(steady, timeout_s, self.tick_s, what="steady state after healing")
