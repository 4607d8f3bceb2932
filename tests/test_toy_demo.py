"""``tomoconsensus demo counting --quick`` in a fresh process: the toy plugin's demo (examples/toy_modality/
toy_counting/demo.py) run by the study runner with no edit to tomoconsensus.

The package is "installed" without pip, as tests/test_toy_plugin.py does: copied beside a dist-info whose
entry_points.txt comes from its pyproject.toml, so the registry finds it only through the entry point.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_toy_plugin import _install as install

ROOT = Path(__file__).resolve().parents[1]

def run_toy_demo(site: Path, out: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """``python -m tomoconsensus demo counting --quick --out OUT --device cpu`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)]), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "tomoconsensus", "demo", "counting", "--quick", "--out", str(out),
                           "--device", "cpu"], cwd=out.parent, env=env, capture_output=True, text=True,
                          timeout=timeout_s)


@pytest.mark.demo
def test_toy_plugin_demo_runs_in_a_fresh_process(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    done = run_toy_demo(site, tmp_path / "demo_out")
    assert done.returncode == 0, done.stderr[-2000:]
    folder = tmp_path / "demo_out" / "counting"
    metrics = json.loads((folder / "report" / "metrics.json").read_text())
    assert {"All counts", "Consensus", "Noise2Noise", "Noise2Clean", "Distilled g(x_est)"} <= set(metrics["methods"])
    # ground truth of the measurement model: x_est = N / t with N ~ Poisson(t lambda) has error variance
    # lambda / t per pixel, so its RMSE against the activity is sqrt(mean(lambda) / t) (2 slices of 64^2 pixels)
    sys.path.insert(0, str(site))
    try:
        from toy_counting.demo import DEMO

        from tomoconsensus.study.protocol import load_protocol

        data = load_protocol(DEMO.protocol, DEMO.data, "quick").data
        first_test = data.train_slices + data.val_slices
        expected = np.mean([np.sqrt(np.mean(data.activity(first_test + i)) / data.scan_time_s)
                            for i in range(data.test_slices)])
    finally:
        sys.path.remove(str(site))
    assert metrics["methods"]["All counts"]["rmse"]["mean"] == pytest.approx(expected, rel=0.05)
    assert "Consensus RMSE <= 0.85 x All counts RMSE" in done.stdout  # its claims name its own baseline
