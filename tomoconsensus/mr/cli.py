"""``tomoconsensus prepare mr``: its arguments and handler (found through :mod:`tomoconsensus.registry`).

Light on purpose: ``tomoconsensus --help`` imports this module; the preparation itself
(:mod:`tomoconsensus.mr.pipeline`, SigPy) is imported when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tomoconsensus.atomic import check_output_file
from tomoconsensus.cli_types import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE_INT, device, input_paths, number


def prepare(args: argparse.Namespace) -> None:
    """Multi-coil k-space (files or a folder) -> one prepared file of split halves and SENSE x_est."""
    from tomoconsensus.mr.io import read_kspace
    from tomoconsensus.mr.pipeline import mr_modality, write_mr

    check_output_file(args.out, input_paths(args.kspace), args.overwrite, read_folders=[args.kspace])
    modality = mr_modality(args.acceleration, args.center_lines, args.sense_lambda, args.device)
    print(write_mr(args.out, modality, read_kspace(args.kspace), args.seed, args.kspace, args.variable_density,
                   keep_measurement=args.keep_measurement, calib_width=args.calib_width,
                   virtual_coils=args.virtual_coils))


def add_prepare_parser(prep_sub) -> None:
    """Add ``prepare mr`` to the ``prepare`` sub-command's subparsers."""
    mr = prep_sub.add_parser("mr", help="multi-coil Cartesian MR: random 4x masks split into two halves, "
                             "unbiased zero-filled halves, SENSE x_est")
    mr.add_argument("--kspace", type=Path, required=True,
                    help="multi-coil k-space: .h5/.npz/.mat, ISMRMRD .h5/.mrd or Siemens twix .dat file, or a "
                    "folder of them; fully sampled data are undersampled with --acceleration, a scanner's "
                    "undersampled raw data keep their acquired lines")
    mr.add_argument("--acceleration", type=number(float, 1, what="a finite number > 1"), default=4.0)
    mr.add_argument("--center-lines", type=POSITIVE_INT, default=48)
    mr.add_argument("--calib-width", type=POSITIVE_INT, default=None,
                    help="ESPIRiT calibration region in central lines (default: all --center-lines; at least 6)")
    mr.add_argument("--virtual-coils", type=POSITIVE_INT, default=None,
                    help="compress each slice to N virtual coils (SVD of its pre-whitened central lines) before "
                    "ESPIRiT and SENSE (default: keep all coils)")
    mr.add_argument("--variable-density", type=NON_NEGATIVE, default=0.0, help="0: uniform; d > 0: p ~ |k|^-d")
    mr.add_argument("--sense-lambda", type=NON_NEGATIVE, default=0.01)
    mr.add_argument("--keep-measurement", action="store_true",
                    help="also store each slice's k-space, coil maps and lines (for denoise --data-consistency)")
    mr.add_argument("--seed", type=NON_NEGATIVE_INT, default=0)
    mr.add_argument("--device", type=device, default="auto",
                    help="ESPIRiT and SENSE on cpu, cuda[:N] (SigPy with CuPy) or auto")
    mr.add_argument("--out", type=Path, required=True)
    mr.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    mr.set_defaults(func=prepare)
