"""The benchmark suite runs end to end on its tiny setting (the figures are not asserted: they are
measurements, recorded in docs/performance.md, not tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .helpers import ROOT


def test_the_suite_runs_on_the_quick_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--chart", "",
         "--json", str(tmp_path / "figures.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = result.stdout
    for scenario in ("no auth", "known token", "fresh token per request", "wrong audience",
                     "TokenReview fallback, cached", "10% garbage mixed in",
                     "naive peer: PyJWT per request", "ASGI: known token", "ASGI: no auth",
                     "ASGI: fresh token per request",
                     "ASGI: known token, 10% of traces sampled"):
        assert re.search(rf"^{re.escape(scenario)}\s+\d+", report, re.MULTILINE), report
    for goal in ("1. known token / no auth", "2. fresh token", "3. known token req/s",
                 "4. TokenReview cached", "5. ", "issue 23 goals",
                 "ASGI known token / ASGI no auth"):
        assert goal in report, report
    # Issue 21: the revocation confirmations of the known-token scenario, counted from the
    # emulator's request log. The one known token is first seen by the main instance in that
    # scenario (the "no auth" scenario before it does not verify), so exactly one review.
    reviews = re.search(r"^revocation confirmations under load .*AUTH_REVOCATION_CHECK on, "
                        r"window 120 s, 1 rounds x 1 s, 1 distinct token\(s\)\): (\d+) "
                        r"TokenReviews = ([\d.]+) reviews per token per window", report,
                        re.MULTILINE)
    assert reviews is not None, report
    assert int(reviews.group(1)) == 1, report
    assert float(reviews.group(2)) == 1.0, report
    # Denials are counted as such: the wrong-audience scenario got only non-2xx answers.
    wrong = re.search(r"^wrong audience\s+(\d+).*\s(\d+)$", report, re.MULTILINE)
    assert wrong is not None
    assert int(wrong.group(2)) > 0
    assert (tmp_path / "figures.json").stat().st_size > 0


def test_the_telemetry_overhead_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.telemetry_overhead", "--iterations", "20",
         "--rounds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for variant in ("no SDK", "SDK, all sampled", "SDK, 10% sampled", "SDK, none sampled"):
        # median, min, max, ratio (range), collection time, ratio including it
        assert re.search(rf"^{re.escape(variant)}\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+ \(.*\)"
                         r"\s+[\d.]+\s+[\d.]+$", result.stdout, re.MULTILINE), result.stdout
