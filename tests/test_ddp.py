"""DistributedDataParallel on CPU: 2 processes, gloo backend, the same training script."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from equss.config import load_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data_root, out, result_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from equss.pipeline.train import Trainer

    cfg = load_config("camvid-equss", "smoke", overrides=[f"data.data_root={data_root}", "train.device=cpu",
                                                           "train.steps=3", "train.val_every=3"])
    trainer = Trainer(cfg, out, progress=False)
    summary = trainer.fit()
    torch.save({"model": trainer.model.state_dict(), "steps": summary["steps"]}, os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_on_cpu_stay_in_sync(data_root, tmp_path):
    out, res = tmp_path / "run", tmp_path / "res"
    res.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(data_root), str(out), str(res)), nprocs=2, join=True)
    a, b = torch.load(res / "rank0.pt"), torch.load(res / "rank1.pt")
    assert a["steps"] == b["steps"] == 3
    for k, v in a["model"].items():
        assert torch.allclose(v, b["model"][k], atol=1e-6), k  # DDP averaged the gradients on both ranks
    # only rank 0 writes the run folder, and it did
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["step"] == 3
