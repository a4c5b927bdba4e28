"""Stage 1: the container (where the tensors sit in a nested file) in use, or a better one."""
from __future__ import annotations

from ckptlab.align.suggest.prefix import prefix_suggestions
from ckptlab.align.suggest.state import State
from ckptlab.align.types import Suggestion
from ckptlab.errors import CheckpointError
from ckptlab.io.checkpoint import Checkpoint
from ckptlab.recipe.model import Recipe
from ckptlab.recipe.parsing import quote


# -- stage 1: container -------------------------------------------------------------------
def _container_suggestion(source: Checkpoint, target: Checkpoint, recipe: Recipe) -> tuple[Suggestion | None, Checkpoint]:
    """The container in use (reported as applied), or a better one when another nested
    mapping would feed more target keys. Returns the suggestion and the source to go on with."""
    if recipe.container is not None or not source.path:
        return None, source
    chosen = Suggestion({"container": source.container}, "high",
                        f"the tensors sit under {quote(source.container)} (chosen when opening)"
                        + _twins(source), len(source), applied=True) if source.container else None
    others = [c for c in source.candidates if c.path != source.container and c.tensors >= 2]
    if not others:
        return chosen, source
    current = _best_feed(State.of(source, target, recipe))
    if 2 * current >= len(target):
        return chosen, source
    best, best_fed, best_ck = None, current, source
    from ckptlab.io.opener import open as open_checkpoint

    for cand in sorted(others, key=lambda c: -c.tensors)[:4]:
        try:
            ck = open_checkpoint(source.path, container=cand.path)
        except CheckpointError:
            continue
        fed = _best_feed(State.of(ck, target, recipe))
        if fed > best_fed:
            best, best_fed, best_ck = cand.path, fed, ck
    if best is None:
        return chosen, source
    where = f" (the chosen {quote(source.container)} feeds {current})" if source.container else ""
    return Suggestion({"container": best}, "high",
                      f"the tensors under {quote(best)} feed {best_fed} target keys{where}", best_fed), best_ck


def _twins(source: Checkpoint) -> str:
    """Other containers holding as many tensors (an EMA copy beside the raw weights): the
    user must know there was a choice, since timm, for one, loads the EMA by default."""
    mine = source.container
    twins = [c.path for c in source.candidates if c.path != mine and c.tensors == len(source)
             and not c.path.startswith(f"{mine}.") and not mine.startswith(f"{c.path}.")]
    if not twins:
        return ""
    return f"; also in the file with {len(source)} tensors: " + ", ".join(quote(t) for t in twins[:3]) + (
        " (choose it as the container to load it instead)")


def _best_feed(state: State) -> int:
    """Target keys fed once the high prefix suggestions are applied."""
    return len(prefix_suggestions(state)[1].stats().fed)
