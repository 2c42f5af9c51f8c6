"""training_job/batch/compute.py answers blocks of users like the per-user served path, for every recipe kind."""

from __future__ import annotations

import numpy as np
import pytest

from shared.serving.interests import because
from shared.serving.recipe import ExactIndex, Recipe
from training_job.batch.compute import Audience, Computer, UserInput
from training_job.evaluation.served import plan_for, recommend


@pytest.mark.parametrize(
    "recipe",
    [Recipe(10, 0.9), Recipe(50, 1.0, interests=3, threshold=0.6), Recipe(5, 0.8, interests=2, threshold=0.5, diversity=0.2)],
)
def test_users_equal_the_per_user_path(recipe: Recipe) -> None:
    rng = np.random.default_rng(4)
    index = ExactIndex(np.arange(1, 801), rng.normal(size=(800, 16)).astype(np.float32))
    users = [UserInput(u, [int(m) for m in rng.choice(np.arange(1, 805), size=int(rng.integers(1, 40)))]) for u in range(200)]
    audience = Audience(5, len(index))
    got = Computer(index, recipe, 12).users(users, audience)
    for user, answer in zip(users, got, strict=True):
        assert answer.movie_ids == recommend(index, recipe, user.history, 12)
        p = plan_for(index, recipe, user.history)
        assert p is not None
        assert answer.because == because(p, index.vectors(answer.movie_ids))
    # the audience of a movie never contains a user who has seen it, and is ordered best first
    seen = {u.user_id: set(u.history) for u in users}
    for j, movie in enumerate(index.ids.tolist()):
        listed = [int(x) for x in audience.users[:, j] if x >= 0]
        assert listed and not any(movie in seen[x] for x in listed)
        assert np.all(np.diff(audience.scores[: len(listed), j]) <= 0)


def test_similar_equals_per_movie_search() -> None:
    rng = np.random.default_rng(5)
    index = ExactIndex(np.arange(100, 400), rng.normal(size=(300, 8)).astype(np.float32))
    recipe = Recipe(10, 0.9)
    got = Computer(index, recipe, 7).similar(index.ids.tolist())
    for m, hits in zip(index.ids.tolist(), got, strict=True):
        assert hits == index.search(recipe.query(index.vectors([m])), 7, banned=[m])
