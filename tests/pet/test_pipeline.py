"""The PET example at smoke-test size (the study runner): simulate -> prepare -> train -> denoise -> evaluate/report."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("pet_pipeline", ROOT / "examples" / "pet" / "run_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.demo
def test_quick_pet_pipeline(tmp_path, capsys):
    result = load_example().run(tmp_path, quick=True, progress=False, methods=("consensus",))
    out = capsys.readouterr().out
    assert "| RMSE (0.01 activity units) |" in out and "| Contrast recovery (%) |" in out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["modality"] == "pet"  # the PET demo's quick protocol, consensus only (both its outputs)
    assert set(metrics["methods"]) == {"FBP (all counts)", "Consensus", "Consensus z (paper)"}
    quality = result["pet_quality"]
    assert quality["Reference"]["suv_mean_bias"] == 0.0
    # the noiseless reference recovers part of the 4:1 contrast (detector blur); the noisy FBP is noisier
    assert 0.1 < quality["Reference"]["contrast_recovery"] < 1.0
    assert quality["FBP (all counts)"]["background_cov"] > quality["Reference"]["background_cov"]
    assert (tmp_path / "report" / "comparison.png").exists()
