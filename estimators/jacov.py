"""Jacobian covariance (Mellor et al., "Neural Architecture Search without Training", v1, 2020).

The input Jacobians ``d(sum of logits)/dx`` of a batch are correlated with each other;
a network that maps different images to less correlated Jacobians separates them better.
With ``v`` the eigenvalues of the N x N correlation matrix and ``k = 1e-5``, the score is
``-sum(log(v + k) + 1 / (v + k))`` (maximal when the matrix is the identity).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from estimators import register
from estimators._shared_pass import INPUT_JACOBIAN, read
from estimators._torch_utils import batch_for, finite, preserved
from estimators.base import Batch, Estimator

K = 1e-5


@register
class JacobianCovariance(Estimator):
    name = "jacov"
    description = "Jacobian covariance: -sum(log(v+k) + 1/(v+k)) over eigenvalues of the input-Jacobian correlations"
    needs_labels = False
    shared_pass_reads = frozenset({INPUT_JACOBIAN})

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        with preserved(model):
            jacobians = read(model, batch_for(model, batches), INPUT_JACOBIAN)[0].double()
        eigenvalues = torch.linalg.eigvalsh(torch.corrcoef(jacobians))
        return finite(-(torch.log(eigenvalues + K) + 1.0 / (eigenvalues + K)).sum(), "jacov")
