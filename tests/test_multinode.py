"""Two "nodes" on one machine: two torchrun launchers (--nnodes 2, c10d rendezvous on 127.0.0.1, gloo)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tomoconsensus.data.patches import PatchSampler
from tomoconsensus.learn.checkpoints import load_checkpoint
from tomoconsensus.learn.loop import train

from tests.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[1]
STEPS = 30

pytestmark = pytest.mark.slow  # three two-node runs: about a minute on 2 shared cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(data: Path, run_dir: Path, stop_after: int | None = None, resume: bool = False) -> None:
    """Launch the worker on two torchrun "nodes" (one process each) and wait for both."""
    port, env = _free_port(), {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launchers = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_dir.name,
               "--node-rank", str(node), "--max-restarts", "0", str(ROOT / "tests" / "multinode_worker.py"),
               str(data), str(run_dir), str(STEPS), str(stop_after or "none"), "resume" if resume else "new"]
        launchers.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=600)[0] for p in launchers]
    assert all(p.returncode == 0 for p in launchers), "\n".join(o[-3000:] for o in outputs)


def _totals(run: Path) -> dict[int, float]:
    lines = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines()]
    return {ln["step"]: ln["total"] for ln in lines if ln["split"] == "train"}


def test_two_nodes_train_like_one_process_read_their_share_and_resume_exactly(prepared_ct, tmp_path):
    two_nodes(prepared_ct, tmp_path / "nodes")
    one = train(tiny_config(method="consensus", max_steps=STEPS, epochs=100, checkpoint_every_steps=4), prepared_ct,
                tmp_path / "single", progress=False, data_in_memory="yes")
    assert one.steps == STEPS
    single, nodes = _totals(tmp_path / "single"), _totals(tmp_path / "nodes")
    assert sorted(nodes) == list(range(1, STEPS + 1))
    rel = {s: abs(nodes[s] - single[s]) / abs(single[s]) for s in single}
    assert max(rel.values()) < 1e-4, rel  # the global batch's loss, batch norm over both nodes' patches
    assert abs(single[STEPS] - single[1]) / abs(single[1]) > 1e-2  # the 30 steps moved the loss

    rank0 = torch.load(tmp_path / "nodes" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "nodes" / "rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[n][k], rank1[n][k]) for n in rank0 for k in rank0[n])

    # each rank asked only for the slices of its half of each batch: its share of step k, then (prefetch) k + 1
    sampler = PatchSampler(4, 128, 128, 32, 4, 4, 0)
    for rank in (0, 1):
        reads = json.loads((tmp_path / "nodes" / f"reads{rank}.json").read_text())
        shares = [sorted(set(sampler.epoch_coordinates(0)[k][rank::2][:, 0].tolist())) for k in range(4)]
        # step 0; then step k + 1 read ahead in the background and asked again (from the cache) by step k + 1
        assert reads[0] == shares[0] and reads[1:7:2] == shares[1:] and reads[2:7:2] == shares[1:]
        assert all(len(r) <= 2 for r in reads)  # 2 patches per rank and step: never the whole dataset

    # stopped at step 13 (last checkpoint 12 + the stop's checkpoint), resumed on two nodes: the same weights
    two_nodes(prepared_ct, tmp_path / "resumed", stop_after=13)
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")["step"] == 13
    two_nodes(prepared_ct, tmp_path / "resumed", resume=True)
    straight = load_checkpoint(tmp_path / "nodes" / "model.pt")["models"]
    resumed = load_checkpoint(tmp_path / "resumed" / "model.pt")["models"]
    assert all(torch.equal(straight[n][k], resumed[n][k]) for n in straight for k in straight[n])
    assert _totals(tmp_path / "resumed") == nodes
