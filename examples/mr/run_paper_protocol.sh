#!/usr/bin/env bash
# The paper's MR protocol end to end (Wu et al. 2019): 4x random Cartesian masks with the central
# lines, two halves by weighted zero-filling, SENSE x_est; consensus vs Noise2Noise vs Noise2Clean vs
# zero-filling vs SENSE.
#   usage: examples/mr/run_paper_protocol.sh TRAIN_KSPACE VAL_KSPACE TEST_KSPACE OUT_DIR
# k-space: a .h5/.npz/.mat file or a folder of them (one volume each; docs/reproducing.md for the
# NYU knee data). Environment: CENTER_LINES (default 48), CONFIG (default examples/mr/train.toml).
# On shipped data (simulated from the package's anatomy as `tomoconsensus demo mr` does, with its
# training protocol, tomoconsensus/mr/demo.toml, written as mr_kspace/train.toml):
#   python examples/mr/make_shipped_kspace.py mr_kspace
#   CENTER_LINES=16 CONFIG=mr_kspace/train.toml examples/mr/run_paper_protocol.sh \
#       mr_kspace/train mr_kspace/val mr_kspace/test mr_out
set -euo pipefail
train=$1; val=$2; test=$3; out=${4:-paper_mr}
tc=${TOMOCONSENSUS:-.venv/bin/tomoconsensus}
centre=${CENTER_LINES:-48}; config=${CONFIG:-examples/mr/train.toml}
mkdir -p "$out"
$tc prepare mr --kspace "$train" --acceleration 4 --center-lines "$centre" --seed 0 --out "$out/train.h5"
$tc prepare mr --kspace "$val" --acceleration 4 --center-lines "$centre" --seed 1 --out "$out/val.h5"
$tc prepare mr --kspace "$test" --acceleration 4 --center-lines "$centre" --seed 2 --out "$out/test.h5"
results=(); runs=()
for label in Consensus Noise2Noise Noise2Clean; do
  method=${label,,}
  $tc train --data "$out/train.h5" --config "$config" --method "$method" --val "$out/val.h5" --out "$out/runs/$method"
  $tc denoise --run "$out/runs/$method" --data "$out/test.h5" --out "$out/denoised_$method.h5"
  results+=("$label=$out/denoised_$method.h5"); runs+=("$label=$out/runs/$method")
done
$tc evaluate --data "$out/test.h5" --results "${results[@]}" --runs "${runs[@]}" --out "$out/report"
