"""What a training run does (`Recipe`): the cross-validation and the shipped
model share one. Fold runs are written with their recipe, so a trial cut
short resumes with the runs of the same recipe only (`same_recipe`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Recipe:
    """The shipped recipe's defaults. A new field goes into AS_BEFORE too,
    at the value that trains as before it existed: --resume and compare read
    runs written without it that way."""
    steps: int = 19200
    batch: int = 24                # split by the shares, each rounded: 13 + 7 + 4 = 24 windows
    recordings: float = 0.55       # share of each batch from the 4Q recordings
    procedural: float = 0.15       # ... from the procedural corpus; EMOPIA has the rest
    procedural_weight: float = 0.5
    distill: float = 1.0           # weight of the teacher's loss (0: none); needs the teacher's outputs first
    teacher_output: str = "penultimate"     # which of the teacher's outputs the network learns to predict
    mixup: float = 0.4             # rendered windows mixed with another of their corpus, share ~ Beta(mixup, mixup)
    width: float = 1.5             # channels of the branches after the harmonic filters, x this (HarmonicCNN)
    answers: float = 0.5           # weight of the teacher's answer per window (TeacherAnswers; 0: none)
    answers_through: str = "all"   # the drivers the answers train, comma-separated (all: every branch and the bias)
    answers_until: float = 0.75    # share of the steps the answers train; the rest learn from the labels alone


# Fields added to Recipe since runs were written, at the values that trained as before.
AS_BEFORE = {"mixup": 0.0, "mixup_recordings": True, "dynamics": 0.0, "width": 1.0, "moods": 0.0, "masking": 0.0,
             "answers": 0.0, "answers_through": "all", "answers_until": 1.0, "running_level": False, "causal": False}
# Fields of earlier recipes (options since removed), at the values today's training equals: a run
# written with another value trained otherwise, and no recipe today's code runs is its recipe.
RETIRED = {"mixup_recordings": False, "dynamics": 0.0, "moods": 0.0, "masking": 0.0, "running_level": False,
           "causal": False}


def in_full(recipe: dict | None) -> dict:
    """A written recipe with every field it lacks at the value it trained
    with: a field added since it was written at its AS_BEFORE value, a
    retired one (absent from what today's Recipe writes: it has every field
    of Recipe) at its RETIRED value."""
    recipe = recipe or {}
    written_today = set(asdict(Recipe())) <= set(recipe)
    full = {**AS_BEFORE, **(RETIRED if written_today else {}), **recipe}
    if not full["mixup"]:
        full["mixup_recordings"] = False         # without mixup there is nothing to mix
    return full


def same_recipe(written: dict | None, recipe: Recipe) -> bool:
    """Whether a run was made with `recipe`: every field as written (a field
    added since it was written at its AS_BEFORE value) and every retired
    one at the value today's training equals."""
    if written is None:
        return False
    full = {**asdict(Recipe()), **in_full(written)}
    retired = {name: full.pop(name) for name in RETIRED if name in full}
    return full == asdict(recipe) and all(value == RETIRED[name] for name, value in retired.items())
