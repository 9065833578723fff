"""Which written fold runs are runs of a recipe: --resume keeps those only."""
from __future__ import annotations

from dataclasses import asdict

from rt_mer.training.recipe import RETIRED, Recipe, in_full, same_recipe


def test_a_run_written_before_a_field_existed_counts_at_the_value_it_trained_with():
    before_mixup = {k: v for k, v in asdict(Recipe()).items() if not k.startswith("mixup")}
    assert same_recipe(before_mixup, Recipe(mixup=0.0))
    assert not same_recipe(before_mixup, Recipe())
    assert not same_recipe(asdict(Recipe()), Recipe(mixup=0.0))
    assert same_recipe(asdict(Recipe()), Recipe()) and not same_recipe(None, Recipe())


def test_a_run_of_a_retired_option_is_no_run_of_todays_recipes():
    """A run written with an option since removed counts where that option
    was at the value today's training equals, and not otherwise."""
    shipped_then = {**asdict(Recipe()), **RETIRED}
    assert same_recipe(shipped_then, Recipe())
    for name, value in (("dynamics", 1.0), ("moods", 0.5), ("masking", 0.3), ("running_level", True),
                        ("causal", True), ("mixup_recordings", True)):
        assert not same_recipe({**shipped_then, name: value}, Recipe()), name
    assert same_recipe(asdict(Recipe()), Recipe())          # written today: without the retired fields
    # before mixup_recordings (and width, answers) existed, recordings were mixed whenever windows were
    early = {"steps": 8, "batch": 24, "recordings": 0.55, "procedural": 0.15, "procedural_weight": 0.5,
             "distill": 1.0, "teacher_output": "penultimate", "mixup": 0.4}
    as_then = Recipe(steps=8, width=1.0, answers=0.0, answers_until=1.0)
    assert not same_recipe(early, as_then) and same_recipe({**early, "mixup_recordings": False}, as_then)
    without_mixup = {**shipped_then, "mixup": 0.0, "mixup_recordings": True}      # nothing to mix: the same
    assert same_recipe(without_mixup, Recipe(mixup=0.0))
    assert in_full({"steps": 8}) == in_full({"steps": 8, "answers": 0.0, "dynamics": 0.0})
