#!/usr/bin/env bash
# The paper's CT protocol end to end (Wu et al. 2019): quarter-dose LDCT, odd/even FBP halves,
# consensus vs Noise2Noise vs Noise2Clean vs FBP vs TV.
#   usage: examples/ct/run_paper_protocol.sh TRAIN_DICOM_DIR TEST_DICOM_DIR OUT_DIR
# Full-dose DICOMs of the LDCT Grand Challenge (data_manifests/ldct-grand-challenge.toml).
# On one H100 each training run takes minutes; on a CPU, hours.
set -euo pipefail
train_dir=$1; test_dir=$2; out=${3:-paper_ct}
tc=${TOMOCONSENSUS:-.venv/bin/tomoconsensus}
mkdir -p "$out"
$tc prepare ct --images "$train_dir" --geometry ldct-fanbeam --dose-fraction 0.25 --seed 0 --out "$out/train.h5"
$tc prepare ct --images "$test_dir" --geometry ldct-fanbeam --dose-fraction 0.25 --seed 1 --tv --out "$out/test.h5"
results=(); runs=()
for label in Consensus Noise2Noise Noise2Clean; do
  method=${label,,}
  $tc train --data "$out/train.h5" --config examples/ct/train.toml --method "$method" --val "$out/test.h5" --out "$out/runs/$method"
  $tc denoise --run "$out/runs/$method" --data "$out/test.h5" --out "$out/denoised_$method.h5"
  results+=("$label=$out/denoised_$method.h5"); runs+=("$label=$out/runs/$method")
done
$tc evaluate --data "$out/test.h5" --results "${results[@]}" --runs "${runs[@]}" --out "$out/report"
