"""Final-training recipes: the ``Recipe`` record, and how overrides resolve against a space's own.

A ``Recipe`` is everything that determines a final training besides the genotype; it is
recorded in ``recipe.json`` and ``result.json`` so a trained number can be reproduced. Each
search space publishes its recipe (``SearchSpace.training_recipe``; a generic SGD recipe for
spaces that give none) and says which network knobs its builder takes (``network_knobs``), so
nothing here knows any space by name. This module stays pure data: it sees a space only through
the three attributes of ``RecipeSource``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Protocol

from evonas.errors import EvonasError

#: Recipe settings that shape the network rather than the training loop; a space takes some of them.
NETWORK_KNOBS = ("channels", "layers", "drop_path", "aux_weight")


class RecipeSource(Protocol):
    """What a recipe needs of a search space (``search_spaces.SearchSpace`` provides it)."""

    name: str
    network_knobs: tuple[str, ...]

    def training_recipe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Recipe:
    """One final-training recipe; ``channels``/``layers`` mean what the space's network makes of them
    (NB-201: channels and cells per stage; DARTS: channels and cells), None: the network's default."""

    space: str
    name: str
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    channels: int | None = None
    layers: int | None = None
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

    def drop_path_at(self, epoch: int) -> float:
        """Drop-path probability for 0-based ``epoch``: ramped linearly from 0 (as in DARTS)."""
        return self.drop_path * epoch / self.epochs


_OVERRIDABLE = tuple(f.name for f in dataclasses.fields(Recipe) if f.name not in ("space", "name"))


def default_recipe(space: RecipeSource) -> Recipe:
    """The recipe ``space`` publishes, as a checked ``Recipe``."""
    values = dict(space.training_recipe())
    unknown = sorted(set(values) - {f.name for f in dataclasses.fields(Recipe)} - {"space"})
    if unknown:
        raise EvonasError(f"space {space.name!r} publishes a training recipe with unknown setting(s) "
                          f"{', '.join(unknown)}; known: {', '.join(_OVERRIDABLE)}")
    try:
        recipe = Recipe(**{**values, "space": space.name})
    except TypeError as exc:
        raise EvonasError(f"space {space.name!r} publishes an incomplete training recipe ({exc})") from None
    _check(recipe, {}, space.network_knobs)
    return recipe


def resolve_recipe(space: RecipeSource, overrides: Mapping[str, Any] | None = None,
                   base: Recipe | None = None) -> Recipe:
    """``base`` (default: the space's published recipe) with the non-None ``overrides`` applied and checked."""
    recipe = base or default_recipe(space)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(changes) - set(_OVERRIDABLE))
    if unknown:
        raise EvonasError(f"unknown recipe setting(s) {', '.join(unknown)}; known: {', '.join(_OVERRIDABLE)}")
    if "grad_clip" in changes and changes["grad_clip"] <= 0:
        changes["grad_clip"] = None  # --grad-clip 0 turns clipping off
    recipe = dataclasses.replace(recipe, **changes)
    _check(recipe, changes, space.network_knobs)
    return recipe


def recipe_from_dict(data: Mapping[str, Any]) -> Recipe:
    """A recipe read back from ``recipe.json``."""
    try:
        return Recipe(**data)
    except TypeError as exc:
        raise EvonasError(f"recorded recipe is not readable ({exc}); start a fresh training folder") from None


def _check(recipe: Recipe, changes: Mapping[str, Any], knobs: tuple[str, ...]) -> None:
    """One-line errors for settings no training can run with, or that the space's network ignores."""
    for name in ("epochs", "batch_size", "channels", "layers", "train_images", "test_images"):
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
    ignored = [f"--{k.replace('_', '-')}" for k in NETWORK_KNOBS if k not in knobs and changes.get(k)]
    if ignored:
        takes = ", ".join(f"--{k.replace('_', '-')}" for k in knobs) or "none of them"
        raise EvonasError(f"{', '.join(ignored)} do not apply to the {recipe.space} network (it takes {takes})")
