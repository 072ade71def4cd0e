"""The key of a stored score: every setting that changes it and the code behind it, in one hash.

``evonas correlate``'s store and the search's score store both key scores by it, so a search can
read a correlate folder's scores (and a changed estimator is re-scored, an unchanged one never).
"""
from __future__ import annotations

import estimators
import search_spaces
from evonas.scoring.composite import estimator_class
from evonas.scoring.fingerprint import code_fingerprint, digest, scoring_fingerprint
from evonas.scoring.scorer import Scorer
from evonas.settings import ScoringSettings


def code_key(config: ScoringSettings) -> str:
    """Fingerprint of the code behind a score: the estimator (a composite's parts too), the space, the scorer."""
    cls = estimator_class(config.estimator)
    registry = estimators.available()
    parts = [registry[name] for name in getattr(cls, "names", ())]
    return code_fingerprint(cls, *parts, type(search_spaces.get(config.space)), Scorer)


def score_key(config: ScoringSettings) -> str:
    """The store key of scores made with ``config``: its settings' and its code's fingerprints."""
    return digest({"settings": scoring_fingerprint(config), "code": code_key(config)})
