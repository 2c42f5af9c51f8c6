"""Request validation rules: strict types, bounds, no unknown fields, a safe genre alphabet."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.schemas import INT64_MAX, RecommendRequest


def test_defaults() -> None:
    req = RecommendRequest.model_validate_json('{"liked": [1, 2]}')
    assert (req.k, req.genres, req.exclude) == (10, None, [])


@pytest.mark.parametrize(
    "body",
    [
        "{}",
        '{"liked": []}',
        '{"liked": [1], "k": 0}',
        '{"liked": [1], "k": 101}',
        '{"liked": ["1"]}',
        '{"liked": [1.0]}',
        '{"liked": [true]}',
        '{"liked": [1], "k": "10"}',
        '{"liked": [-1]}',
        f'{{"liked": [{INT64_MAX + 1}]}}',
        '{"liked": [1], "liked_ids": [2]}',
        '{"liked": [1], "genres": ["Comedy\\"]) or true or ARRAY_CONTAINS(genres, [\\"x"]}',
        '{"liked": [1], "genres": [""]}',
        '{"liked": 1}',
        '{"liked": [1], "exclude": "2"}',
    ],
)
def test_invalid_bodies_are_rejected(body: str) -> None:
    with pytest.raises(ValidationError):
        RecommendRequest.model_validate_json(body)


def test_liked_is_capped_at_500() -> None:
    RecommendRequest(liked=list(range(500)))
    with pytest.raises(ValidationError):
        RecommendRequest(liked=list(range(501)))


@pytest.mark.parametrize("genre", ["Comedy", "Sci-Fi", "Children's", "Film-Noir", "(no genres listed)"])
def test_real_movielens_genres_are_accepted(genre: str) -> None:
    assert RecommendRequest(liked=[1], genres=[genre]).genres == [genre]
