"""``prepare ct --jobs N``: the file --jobs 1 writes, from N processes."""

import h5py
import numpy as np
import pytest

from tomoconsensus.cli import main
from tomoconsensus.prepare_jobs import chunks

from tests.conftest import EMBEDDED_CT


@pytest.mark.parametrize("n, jobs", [(1, 2), (5, 2), (6, 2), (40, 3), (1000, 4)])
def test_chunks_cover_every_slice_once_in_order(n, jobs):
    flat = [i for c in chunks(n, jobs) for i in c]
    assert flat == list(range(n)) and max(len(c) for c in chunks(n, jobs)) <= 8


def test_jobs_2_writes_the_arrays_of_jobs_1(tmp_path):
    """Simulated noise (one stream per slice), odd/even halves, FBP, and reference: equal bit for
    bit; 5 slices over 2 processes cut into chunks of one, so the processes interleave."""
    files = {}
    for jobs in (1, 2):
        files[jobs] = tmp_path / f"jobs{jobs}.h5"
        assert main(["prepare", "ct", "--images", str(EMBEDDED_CT), "--geometry", "demo-fanbeam", "--max-slices", "5",
                     "--seed", "3", "--device", "cpu", "--jobs", str(jobs),
                     "--out", str(files[jobs])]) == 0
    with h5py.File(files[1], "r") as one, h5py.File(files[2], "r") as two:
        keys = ["x1", "x2", "x_est", "reference", "slice_id", "patient_id"]
        assert all(k in one and k in two for k in keys)
        for key in keys:
            assert one[key].shape[0] == 5
            np.testing.assert_array_equal(one[key][()], two[key][()], err_msg=key)
        assert float(np.abs(one["x1"][()] - one["x2"][()]).max()) > 0.01  # noisy halves, not a constant
        differing = [k for k in one.attrs if str(one.attrs[k]) != str(two.attrs.get(k))]
        assert set(differing) <= {"created_utc"}  # the writing time (equal when both fall in one second)
        assert set(one.attrs) == set(two.attrs)
