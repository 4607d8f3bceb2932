"""Run by tests/test_multinode.py under torchrun (two "nodes" on one machine): train lazily read data and save
this rank's weights and the slices each of its reads asked for.

usage: multinode_worker.py DATA RUN_DIR MAX_STEPS STOP_AFTER|none resume|new
"""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tomoconsensus.data.lazy import SliceCache  # noqa: E402
from tomoconsensus.learn.loop import train  # noqa: E402

from tests.conftest import tiny_config  # noqa: E402

data, run_dir, max_steps, stop_after, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
requested: list[list[int]] = []
original_get = SliceCache.get


def recording_get(self, indices):
    indices = [int(i) for i in indices]
    requested.append(indices)
    return original_get(self, indices)


SliceCache.get = recording_get
config = tiny_config(method="consensus", max_steps=max_steps, epochs=100, checkpoint_every_steps=4)
summary = train(config, data, run_dir, progress=False, data_in_memory="no", resume=mode == "resume",
                stop_after_steps=None if stop_after == "none" else int(stop_after))
rank = torch.distributed.get_rank()
torch.save({k: m.state_dict() for k, m in summary.models.items()}, run_dir / f"rank{rank}.pt")
(run_dir / f"reads{rank}.json").write_text(json.dumps(requested))
torch.distributed.destroy_process_group()
