"""The telemetry benchmarks run end to end on a tiny setting (their figures are measurements,
reported in docs/telemetry.md and the performance notes, not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_service_cpu_measures_every_scenario_of_each_variant() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.service_cpu", "--variants", "off,sampled",
         "--rounds", "1", "--duration", "1", "--connections", "4", "--fresh-tokens", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for variant in ("off", "sampled"):
        for scenario in ("whoami", "healthz", "fresh"):
            assert re.search(rf"^{variant}\s+{scenario}\s+\d+\.\d", result.stdout,
                             re.MULTILINE), result.stdout


def test_fresh_path_measures_each_telemetry() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.fresh_path", "--iterations", "20", "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in ("read_bearer + verify_local", "first sight, telemetry off",
                 "cache hit, 10% sampled"):
        assert re.search(rf"^{re.escape(name)}\s+\d+\.\d µs", result.stdout, re.MULTILINE)
