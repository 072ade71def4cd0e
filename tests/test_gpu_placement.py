"""GPU placement on fake GPUs: a local Ray that declares 4 GPUs on this GPU-less machine.

``--gpus-per-worker 0.5`` on 2 fake GPUs must place 4 actors, 2 per GPU, each seeing exactly its
GPU in ``CUDA_VISIBLE_DEVICES`` (read inside the actors): fractional packing and the spread over
GPUs, with as few actors as show both (each actor start costs seconds of CPU on a small machine). As the GPUs are not real, torch in the
actors sees no CUDA device: each actor falls back to CPU with a warning that names its node,
and still scores. (Real CUDA scoring is checked by the ``gpu`` tests, scripts/gpu_check.sh.)
"""
from __future__ import annotations

import re
import warnings
from collections import Counter

import pytest
import ray
import torch
from executor_helpers import CONFIG, drain, genotypes

from evonas.execution import RayExecutor, RaySession

pytestmark = pytest.mark.timeout(240)


def test_half_gpus_place_4_actors_on_2_fake_gpus_and_fall_back_to_cpu_with_a_warning():
    assert not ray.is_initialized()
    real = torch.cuda.device_count()  # 0 here; on a GPU machine the actors of GPU 0..real-1 use CUDA
    session = RaySession(num_cpus=4, num_gpus=2)  # loopback-only local Ray declaring 2 GPUs
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pool = RayExecutor(CONFIG, gpus_per_worker=0.5, start_timeout=180)
        with pool:
            placement = pool.placement()
            assert pool.started == 4 and len(placement) == 4
            for name, info in placement.items():
                assert len(info["gpu_ids"]) == 1, (name, info)  # half of exactly one GPU
                assert info["cuda_visible_devices"] == info["gpu_ids"][0]  # and it sees only that one
                assert info["device"] == ("cuda" if int(info["gpu_ids"][0]) < real else "cpu"), (name, info)
            per_gpu = Counter(info["gpu_ids"][0] for info in placement.values())
            assert per_gpu == {"0": 2, "1": 2}
            fallbacks = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            assert len(fallbacks) == sum(info["device"] == "cpu" for info in placement.values())
            assert all(re.fullmatch(r"Ray node 127\.0\.0\.1/[0-9a-f]{8} gave a worker GPU \d but torch there sees "
                                    r"no CUDA device \(torch .+\); that worker scores on CPU", m) for m in fallbacks)
            gens = genotypes(4, seed=7)
            for job, genotype in enumerate(gens):
                pool.submit(job, genotype)
            results = drain(pool)
            assert sorted(r.job_id for r in results) == [0, 1, 2, 3] and all(r.ok for r in results)
    finally:
        session.close()
    assert not ray.is_initialized()
