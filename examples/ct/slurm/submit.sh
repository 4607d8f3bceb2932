#!/usr/bin/env bash
# The paper's CT protocol on a SLURM cluster: one array task per patient prepares OUT/train/<patient>.h5 or
# OUT/val/<patient>.h5 or OUT/test/<patient>.h5; once all have succeeded, one multi-node job trains on the train folder.
#   examples/ct/slurm/submit.sh LDCT_ROOT OUT [Z_STEP_MM]      (run from the repository root)
# Patients and groups: examples/ct/slurm/ldct_patients.txt (the split of data_manifests/ldct-grand-challenge.toml).
set -euo pipefail
root=$1; out=$2; step=${3:-5}
here=examples/ct/slurm
patients=$here/ldct_patients.txt
n=$(grep -c . "$patients")
prep=$(sbatch --parsable --array=0-$((n - 1)) "$here/prepare_patient.sbatch" "$root" "$out" "$patients" "$step")
sbatch --dependency=afterok:"$prep" --nodes=2 --gpus-per-node=1 "$here/train_folder.sbatch" "$out"
