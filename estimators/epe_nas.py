"""EPE-NAS (Lopes et al., 2021): Jacobian correlations evaluated per class.

Input Jacobians are grouped by label; for each class ``c`` with at least two samples,
``s_c = sum(log(|corr| + k))`` over its Jacobian correlation matrix (``k = 1e-5``).
With at most 100 classes the score is ``sum_c |s_c|``; with more, each ``s_c`` is divided
by its number of samples and the score is ``sum_{c,c'} |s_c - s_c'|`` divided by the
number of classes seen (the paper's two variants). A class with one sample has no
correlations and contributes nothing.
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
MANY_CLASSES = 100


@register
class EpeNas(Estimator):
    name = "epe_nas"
    description = "EPE-NAS: per-class input-Jacobian correlation scores, combined across classes"
    shared_pass_reads = frozenset({INPUT_JACOBIAN})

    def score(self, model: nn.Module, batches: Sequence[Batch], depth_units=None) -> float:
        batch = batch_for(model, batches)
        labels = batch[1]
        with preserved(model):
            jacobians, logits = read(model, batch, INPUT_JACOBIAN)
        jacobians, num_classes = jacobians.double(), logits.shape[-1]
        per_class = []
        for c in torch.unique(labels):
            rows = jacobians[labels == c]
            if len(rows) < 2:
                continue
            s = torch.log(torch.corrcoef(rows).abs() + K).sum()
            per_class.append(s / len(rows) if num_classes > MANY_CLASSES else s)
        if not per_class:
            return 0.0
        s = torch.stack(per_class)
        if num_classes <= MANY_CLASSES:
            return finite(s.abs().sum(), "epe_nas")
        return finite((s[:, None] - s[None, :]).abs().sum() / len(s), "epe_nas")
