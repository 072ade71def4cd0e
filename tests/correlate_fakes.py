"""Test doubles for the correlate store tests: a gradient-norm estimator that can be slowed down
and counts its calls, importable both in the test process and in a child `evonas` process
(the same module, so the same code fingerprint)."""
from __future__ import annotations

import sys
import time

import estimators
from estimators.grad_norm import GradNorm


class SlowGradNorm(GradNorm):
    """``grad_norm`` (data-dependent, so batches and init matter), ``delay`` seconds slower per cell."""

    name = "test_slow_grad_norm"
    delay = 0.0
    calls = 0

    def score(self, model, batches, depth_units=None):
        type(self).calls += 1
        time.sleep(self.delay)
        return super().score(model, batches, depth_units)


def main() -> None:
    """``python -c 'import correlate_fakes; correlate_fakes.main()' DELAY ARGS...``: `evonas ARGS` with the slow estimator."""
    from evonas import cli

    SlowGradNorm.delay = float(sys.argv[1])
    sys.argv = ["evonas", *sys.argv[2:]]
    with estimators.registered(SlowGradNorm):
        cli.main()
