"""The dense CRF in worker processes: the same numbers as in this process, and a worker that dies
(SIGKILL: the OOM killer) is one error line within seconds, never the hang of STEGO issue 16
(``multiprocessing.Pool.map`` waits forever for the result a dead worker held)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from equss.eval import crf
from equss.eval.crf import crf_batch, dense_crf, worker_pool

ROOT = Path(__file__).resolve().parent.parent


def _inputs(n: int = 3, size: int = 24, classes: int = 4):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    scores = torch.from_numpy(rng.normal(size=(n, classes, size // 4, size // 4)).astype(np.float32))
    return images, scores


@pytest.mark.slow
def test_a_reused_pool_gives_the_numbers_of_this_process():
    """``worker_pool`` (one per evaluation, reused for every batch, then terminate + join as the
    evaluation does) against dense_crf image by image here, for both backends."""
    images, scores = _inputs()
    backends = ["torch"] + (["pydensecrf"] if crf.have_pydensecrf() else [])
    pool = worker_pool(2)
    try:
        for backend in backends:
            here = torch.stack([dense_crf(im, s, backend=backend) for im, s in zip(images, scores)])
            for _ in range(2):  # the same pool twice
                there = crf_batch(images, scores, backend=backend, pool=pool)
                assert there.shape == here.shape
                # pydensecrf is single-threaded C++: bitwise; torch: one thread there, the default here
                assert torch.allclose(there, here, atol=0 if backend == "pydensecrf" else 1e-6), backend
    finally:
        pool.terminate()
        pool.join()


CHILD = textwrap.dedent("""
    import sys
    import numpy as np, torch
    from equss.errors import EqussError
    from equss.eval.crf import crf_batch, worker_pool
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(4)]
    scores = torch.from_numpy(rng.normal(size=(4, 3, 4, 4)).astype(np.float32))
    try:
        if sys.argv[1] == "pool":  # the evaluation's way: one pool, then terminate + join
            pool = worker_pool(2)
            try:
                crf_batch(images, scores, backend="torch", pool=pool)
            finally:
                pool.terminate()
                pool.join()
        else:
            crf_batch(images, scores, workers=2, backend="torch")
    except EqussError as exc:
        print(f"equss: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print("finished without error")
""")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["pool", "workers"])
def test_a_killed_crf_worker_is_one_error_line_not_a_hang(how, tmp_path):
    """Every worker kills itself (SIGKILL) before its first image (the test-only hook
    ``EQUSS_TEST_CRF_WORKER_KILL``): crf_batch raises one EqussError line naming the signal; the
    child process must end well within the timeout (a hang would be killed by it and fail here)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{crf.KILL_ENV: "1"})
    try:
        p = subprocess.run([sys.executable, "-c", CHILD, how], capture_output=True, text=True, env=env, timeout=240,
                           cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("crf_batch hung after its worker was killed (STEGO issue 16)")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(lines) == 1 and lines[0].startswith("equss: error: a dense-CRF worker process was killed by SIGKILL"), \
        p.stderr
    assert "out of memory?" in lines[0] and "CRF workers (now 2)" in lines[0]


@pytest.mark.slow
def test_without_the_hook_the_same_child_finishes(tmp_path):
    """The control of the test above: the same child without the kill finishes (so it is the dead
    worker that makes the error, not the script)."""
    env = {k: v for k, v in os.environ.items() if k != crf.KILL_ENV}
    env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-c", CHILD, "pool"], capture_output=True, text=True, env=env, timeout=240,
                       cwd=tmp_path)
    assert p.returncode == 0 and "finished without error" in p.stdout, p.stderr
