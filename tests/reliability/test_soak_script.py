"""The load and soak script works (its figures are not asserted: docs/reliability.md has them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ..helpers import ROOT


def test_soak_quick_mode_reports_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--quick", "--json", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    report = json.loads(output.read_text())
    assert [phase["phase"] for phase in report["phases"]] == ["c=1", "c=16"]
    assert report["wrong_decisions"] == 0
    assert report["server_errors"] == 0
    assert report["service_exit_code"] == 0
    for phase in report["phases"]:
        assert phase["requests"] > 0
        assert phase["per_second"] > 0
        assert 0 < phase["p50_ms"] <= phase["p99_ms"]
        assert {"200", "401"} <= set(phase["statuses"])  # valid and invalid callers both ran
        assert phase["rss_start_mib"] > 0
    assert len(report["rss_samples"]) >= 2
    assert "wrong decisions: 0, server errors: 0, service exit code: 0" in result.stdout
