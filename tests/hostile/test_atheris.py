"""The atheris target (fuzz/fuzz_verify.py) runs a bounded number of inputs without a finding.

``COMPASS_ATHERIS_RUNS`` sets the count (default 20000: the CI size, a few seconds); ``make fuzz
FUZZ_RUNS=...`` or ``-max_total_time=`` run it for longer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ..helpers import ROOT

RUNS = int(os.environ.get("COMPASS_ATHERIS_RUNS", "20000"))


def test_atheris_target_runs_clean(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "fuzz/fuzz_verify.py", f"-runs={RUNS}", "-seed=1",
         f"-artifact_prefix={tmp_path}/"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=600, check=False,
    )
    tail = result.stderr[-4000:]
    assert "No module named 'atheris'" not in tail, (
        "atheris is missing: pip install '.[test]' (wheels for Linux x86_64)")
    assert result.returncode == 0, tail
    done = re.search(r"Done (\d+) runs in (\d+) second", result.stderr)
    assert done is not None, tail
    assert int(done.group(1)) == RUNS
    print(f"\natheris: {done.group(1)} inputs in {done.group(2)} s")
    assert list(tmp_path.iterdir()) == []  # no crash-* or timeout-* artifacts
