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
mkdir -p "$out/train" "$out/val" "$out/test"

series() {  # series folder of patient $1 whose name matches the pattern $2 (case-insensitive)
  local found
  found=$(find "$root/$1" -type d -iregex "$2" | sort | head -n 1)
  [[ -n $found ]] || { echo "error: $root/$1: no projection series matching $2" >&2; exit 2; }
  echo "$found"
}

prepare() {  # patient $1 into the folder $2: one prepared file per patient (skipped when already there)
  [[ -f $2/$1.h5 ]] && return 0
  local full low
  full=$(series "$1" '.*full[^/]*proj[^/]*')
  low=$(series "$1" '.*\(low\|quarter\)[^/]*proj[^/]*')
  $tc prepare ct --projections "$low" --reference-projections "$full" --z-mm "all:$step" \
      --image-size 512 --pixel-size-mm 0.75 --seed 0 --out "$2/$1.h5"
}
for patient in "${train[@]}"; do prepare "$patient" "$out/train"; done
for patient in "${val[@]}"; do prepare "$patient" "$out/val"; done
for patient in "${test[@]}"; do prepare "$patient" "$out/test"; done

# the folders are the datasets (one file per patient; train/denoise/evaluate --data take folders, and the
# patients of --val must differ from the training patients). On a cluster: examples/ct/slurm/.
results=(); runs=()
for label in Consensus Noise2Noise Noise2Clean; do
  method=${label,,}
  $tc train --data "$out/train" --config examples/ct/train.toml --method "$method" --val "$out/val" --out "$out/runs/$method"
  $tc denoise --run "$out/runs/$method" --data "$out/test" --out "$out/denoised_$method.h5"
  results+=("$label=$out/denoised_$method.h5"); runs+=("$label=$out/runs/$method")
done
$tc evaluate --data "$out/test" --results "${results[@]}" --runs "${runs[@]}" --out "$out/report"
