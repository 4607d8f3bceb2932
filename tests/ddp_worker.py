"""Run by tests/test_train.py under torchrun: train a few steps and save this rank's weights."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tomoconsensus.learn.loop import train  # noqa: E402

from tests.conftest import tiny_config  # noqa: E402

data, run_dir = sys.argv[1], Path(sys.argv[2])
summary = train(tiny_config(method="consensus", max_steps=4), data, run_dir, progress=False)
rank = torch.distributed.get_rank()
torch.save({k: m.state_dict() for k, m in summary.models.items()}, run_dir / f"rank{rank}.pt")
torch.distributed.destroy_process_group()
