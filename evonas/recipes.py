"""The published final-training recipes, and how overrides resolve against them.

A ``Recipe`` is everything that determines a final training besides the genotype; it is
recorded in ``recipe.json`` and ``result.json`` so a trained number can be reproduced.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from evonas.errors import EvonasError


@dataclass(frozen=True)
class Recipe:
    """One final-training recipe; ``layers`` is NB-201's cells per stage or DARTS' cell count."""

    space: str
    name: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    channels: int
    layers: int
    cutout: int = 0
    drop_path: float = 0.0
    aux_weight: float = 0.0
    grad_clip: float | None = None
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_images: int | None = None
    test_images: int | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def build_options(self) -> dict[str, Any]:
        """Keyword options for ``space.build`` (the evaluation network, not the search proxy)."""
        if self.space == "nb201":
            return {"channels": self.channels, "cells_per_stage": self.layers}
        return {
            "channels": self.channels,
            "layers": self.layers,
            "auxiliary": self.aux_weight > 0,
            "drop_path_prob": self.drop_path,
        }

    def inference_build_options(self) -> dict[str, Any]:
        """Options for the network as it is used after training: no auxiliary head, no drop-path."""
        options = self.build_options()
        if "auxiliary" in options:
            options.update(auxiliary=False, drop_path_prob=0.0)
        return options

    def drop_path_at(self, epoch: int) -> float:
        """Drop-path probability for 0-based ``epoch``: ramped linearly from 0 (as in DARTS)."""
        return self.drop_path * epoch / self.epochs


#: NB-201 ``200E`` (the recipe of the NAS-Bench-201 ground truth) and the DARTS evaluation recipe.
RECIPES: dict[str, Recipe] = {
    "nb201": Recipe(
        space="nb201", name="200E", epochs=200, batch_size=256, lr=0.1, momentum=0.9,
        nesterov=True, weight_decay=5e-4, channels=16, layers=5,
    ),
    "darts": Recipe(
        space="darts", name="darts-600", epochs=600, batch_size=96, lr=0.025, momentum=0.9,
        nesterov=False, weight_decay=3e-4, channels=36, layers=20, cutout=16, drop_path=0.2,
        aux_weight=0.4, grad_clip=5.0,
    ),
}

#: Knobs that only exist in the DARTS evaluation network.
_DARTS_ONLY = ("drop_path", "aux_weight")
_OVERRIDABLE = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("space", "name"))


def default_recipe(space: str) -> Recipe:
    """The published recipe for ``space``."""
    if space not in RECIPES:
        raise EvonasError(f"no training recipe for space {space!r}; choose one of: {', '.join(RECIPES)}")
    return RECIPES[space]


def resolve_recipe(space: str, overrides: Mapping[str, Any] | None = None, base: Recipe | None = None) -> Recipe:
    """``base`` (default: the published recipe) with the non-None ``overrides`` applied and checked."""
    recipe = base or default_recipe(space)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(_OVERRIDABLE))
    if unknown:
        raise EvonasError(f"unknown recipe setting(s) {', '.join(unknown)}; known: {', '.join(_OVERRIDABLE)}")
    if "grad_clip" in changes and changes["grad_clip"] <= 0:
        changes["grad_clip"] = None  # --grad-clip 0 turns clipping off
    recipe = dataclasses.replace(recipe, **changes)
    _check(recipe, changes)
    return recipe


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """A recipe read back from ``recipe.json``."""
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise EvonasError(f"recorded recipe is not readable ({exc}); start a fresh training folder") from None


def _check(recipe: Recipe, changes: Mapping[str, Any]) -> None:
    """One-line errors for settings no training can run with."""
    positive_ints = ("epochs", "batch_size", "channels", "layers")
    for name in positive_ints:
        if getattr(recipe, name) < 1:
            raise EvonasError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(recipe, name)}")
    for name in ("train_images", "test_images"):
        value = getattr(recipe, name)
        if value is not None and value < 1:
            raise EvonasError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if recipe.lr <= 0:
        raise EvonasError(f"--lr must be positive, not {recipe.lr}")
    if not 0 <= recipe.momentum < 1:
        raise EvonasError(f"--momentum must be in [0, 1), not {recipe.momentum}")
    if recipe.nesterov and recipe.momentum == 0:
        raise EvonasError("Nesterov momentum needs --momentum > 0 (or pass --no-nesterov)")
    if recipe.weight_decay < 0 or recipe.cutout < 0 or recipe.aux_weight < 0:
        raise EvonasError("--weight-decay, --cutout and --aux-weight must not be negative")
    if not 0 <= recipe.drop_path < 1:
        raise EvonasError(f"--drop-path must be in [0, 1), not {recipe.drop_path}")
    if recipe.space != "darts":
        used = [f"--{k.replace('_', '-')}" for k in _DARTS_ONLY if changes.get(k)]
        if used:
            raise EvonasError(f"{', '.join(used)} only apply to the darts space, not {recipe.space}")
