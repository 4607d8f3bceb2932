#!/usr/bin/env bash
# The paper's CT protocol end to end (Wu et al. 2019) on the raw TCIA data: quarter-dose helical
# DICOM-CT-PD scans of the LDCT Grand Challenge, rebinned to fan-beam slices, split halves of the
# views (FFS-aware), FBP reference from the same patient's full-dose scan; consensus vs Noise2Noise
# vs Noise2Clean vs FBP.
#   usage: examples/ct/run_paper_protocol.sh LDCT_ROOT OUT_DIR [Z_STEP_MM]
# LDCT_ROOT holds one folder per patient (L067, L096, ... as in data_manifests/ldct-grand-challenge.toml),
# each with a full-dose and a quarter-dose projection series folder anywhere below it, as TCIA
# delivers them (series folder names contain "Full" / "Low" or "Quarter" and "Proj"; one scan per folder).
# On one H100 each training run takes minutes; on a CPU, hours. Rebinning: ~1 s per slice on a CPU core.
set -euo pipefail
root=$1; out=${2:-paper_ct}; step=${3:-5}
tc=${TOMOCONSENSUS:-.venv/bin/tomoconsensus}
# the paper's 10 patients: 7 train, 1 validation (epoch selection on its *noisy* halves), 2 test (final table only)
train=(L067 L096 L109 L143 L192 L286 L291)
val=(L310)
test=(L333 L506)
mkdir -p "$out/patients"

series() {  # series folder of patient $1 whose name matches the pattern $2 (case-insensitive)
  local found
  found=$(find "$root/$1" -type d -iregex "$2" | sort | head -n 1)
  [[ -n $found ]] || { echo "error: $root/$1: no projection series matching $2" >&2; exit 2; }
  echo "$found"
}

for patient in "${train[@]}" "${val[@]}" "${test[@]}"; do
  full=$(series "$patient" '.*full[^/]*proj[^/]*')
  low=$(series "$patient" '.*\(low\|quarter\)[^/]*proj[^/]*')
  $tc prepare ct --projections "$low" --reference-projections "$full" --z-mm "all:$step" \
      --image-size 512 --pixel-size-mm 0.75 --seed 0 --out "$out/patients/$patient.h5"
done

# one training, one validation and one test file (the prepared files of several patients, concatenated)
python3 - "$out" "${train[*]}" "${val[*]}" "${test[*]}" <<'PY'
import sys
from pathlib import Path
import h5py
import numpy as np
out, groups = Path(sys.argv[1]), {"train": sys.argv[2].split(), "val": sys.argv[3].split(), "test": sys.argv[4].split()}
for name, patients in groups.items():
    parts = [h5py.File(out / "patients" / f"{p}.h5", "r") for p in patients]
    with h5py.File(out / f"{name}.h5", "w") as dst:
        dst.attrs.update(parts[0].attrs)
        for key in ("x1", "x2", "x_est", "reference", "slice_id", "patient_id"):
            data = [f[key][()] for f in parts]
            stacked = sum((list(d) for d in data), []) if data[0].dtype.kind == "O" else None
            if stacked is not None:
                dst.create_dataset(key, data=stacked, dtype=h5py.string_dtype("utf-8"))
            else:
                dst.create_dataset(key, data=np.concatenate(data), compression="gzip", shuffle=True)
PY

results=(); runs=()
for label in Consensus Noise2Noise Noise2Clean; do
  method=${label,,}
  $tc train --data "$out/train.h5" --config examples/ct/train.toml --method "$method" --val "$out/val.h5" --out "$out/runs/$method"
  $tc denoise --run "$out/runs/$method" --data "$out/test.h5" --out "$out/denoised_$method.h5"
  results+=("$label=$out/denoised_$method.h5"); runs+=("$label=$out/runs/$method")
done
$tc evaluate --data "$out/test.h5" --results "${results[@]}" --runs "${runs[@]}" --out "$out/report"
