"""The checkpoint of a run folder, shared by the search driver and the ask/tell loop.

A checkpoint is the strategy's ``state_dict()`` plus the counters of the history it covers: how
many lines, the next evaluation id, the proposals handed out but not yet answered, the elapsed
time. Resuming is always the same three steps: load the state, tell the strategy the history
lines written after the checkpoint (in their order), and hand out the pending proposals again.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from evonas.errors import EvonasError
from evonas.searching.strategy import Proposal, Strategy

CHECKPOINT_FORMAT = 1
#: Where a checkpoint holds the strategy's ``state_dict()``; the name dates from when aging evolution
#: was the only strategy, and is kept so that every run folder, old or new, reads the same way.
STATE_KEY = "evolution"


def checkpoint_data(strategy: Strategy, evaluations: int, lines: int, next_id: int,
                    pending: dict[int, Proposal], elapsed: float) -> dict[str, Any]:
    """What ``RunRecord.write_checkpoint`` stores (plain JSON)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "evaluations": evaluations,
        "lines": lines,
        "next_id": next_id,
        "pending": {str(i): p.to_dict() for i, p in pending.items()},
        "elapsed": elapsed,
        STATE_KEY: strategy.state_dict(),
    }


def load_state(strategy: Strategy, checkpoint: dict[str, Any], path: Path) -> None:
    """Restore the strategy from a checkpoint (a one-line EvonasError when it does not fit)."""
    try:
        strategy.load_state_dict(checkpoint[STATE_KEY])
    except (KeyError, TypeError, ValueError) as exc:
        raise EvonasError(f"checkpoint {path} does not fit this run ({exc}); "
                          "the run cannot be resumed") from None


def lines_covered(checkpoint: dict[str, Any]) -> int:
    """History lines a checkpoint covers (runs before constraints counted only evaluations)."""
    return int(checkpoint.get("lines", checkpoint["evaluations"]))


def replay(strategy: Strategy, lines: Iterable[dict[str, Any]]) -> None:
    """Tell the strategy history lines it has not seen (infeasible children were never told)."""
    for rec in lines:
        if rec["status"] != "infeasible":
            strategy.tell(rec["id"], rec["genotype"], rec["key"], rec["score"] if rec["status"] == "ok" else None,
                          rec.get("costs"))


def still_pending(checkpoint: dict[str, Any], history: list[dict[str, Any]]) -> list[tuple[int, Proposal]]:
    """The checkpoint's pending proposals that no history line answers, oldest first."""
    finished = {rec["id"] for rec in history}
    return [(int(i), Proposal(**p)) for i, p in sorted(checkpoint["pending"].items(), key=lambda kv: int(kv[0]))
            if int(i) not in finished]


def next_id(checkpoint: dict[str, Any], history: list[dict[str, Any]]) -> int:
    """The first evaluation id neither the checkpoint nor the history has used."""
    return max([int(checkpoint["next_id"]), *(int(rec["id"]) + 1 for rec in history)])
