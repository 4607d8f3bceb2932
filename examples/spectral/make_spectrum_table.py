"""Write the X-ray spectrum table shipped in the package (``tomoconsensus/embedded/spectrum_120kvp.csv``).

Run once, offline, with SpekPy (Poludniowski et al., Med. Phys. 48 (2021) 3630; MIT licence), which is
large (about 160 MB) and therefore not a run-time dependency::

    python -m venv /tmp/spek && /tmp/spek/bin/pip install spekpy
    /tmp/spek/bin/python examples/spectral/make_spectrum_table.py tomoconsensus/embedded/spectrum_120kvp.csv

The table: tungsten anode, 120 kVp, 12 degree anode angle, 2.5 mm Al total filtration, 1 keV
energy bins (centres 10.5 ... 119.5 keV; below 10 keV the fluence is negligible after the
filter), photon fluence per bin normalised to sum to 1.
"""

import sys

import numpy as np
import spekpy

KVP, ANODE_ANGLE_DEG, AL_MM = 120, 12.0, 2.5


def main(out: str) -> None:
    spek = spekpy.Spek(kvp=KVP, th=ANODE_ANGLE_DEG, dk=1.0)
    spek.filter("Al", AL_MM)
    energies, fluence = spek.get_spectrum()
    keep = energies >= 10.0
    energies, fluence = energies[keep], fluence[keep] / fluence[keep].sum()
    header = (f"X-ray spectrum: W anode, {KVP} kVp, {ANODE_ANGLE_DEG:g} deg anode angle, {AL_MM} mm Al; "
              f"SpekPy {spekpy.__version__} (Poludniowski et al., Med Phys 2021); "
              "written by examples/spectral/make_spectrum_table.py\nenergy_kev,fraction")
    np.savetxt(out, np.column_stack([energies, fluence]), delimiter=",", fmt=["%.1f", "%.8e"], header=header)


if __name__ == "__main__":
    main(sys.argv[1])
