"""What a person's interaction events mean, in one place (pure Python, no I/O).

The API folds a person's recent events into the run's stored history to answer in real time, and the
training job folds the exported events into the base ratings before it trains. Both use these functions,
so the next run learns exactly what the API already served from.

Semantics (events applied in the order they were received):
- `like`, `watched`, `rated` are interactions: the movie joins the history at that position, exactly as
  a MovieLens rating does (training treats every rating as an interaction).
- `unlike` removes the movie's influence: every earlier occurrence leaves the history (stored history
  included). The movie stays "seen", so it is not recommended back to the person.
- For training, the last event of a (user, movie) pair decides: `unlike` drops the pair (also from the base
  ratings), `rated` gives its rating, `like` gives LIKE_RATING, `watched` gives WATCHED_RATING unless the pair
  already has a rating from an earlier event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    LIKE = "like"
    UNLIKE = "unlike"
    WATCHED = "watched"
    RATED = "rated"


EVENT_TYPES = tuple(t.value for t in EventType)
LIKE_RATING = 5.0
WATCHED_RATING = 4.0
INTERACTIONS = frozenset({EventType.LIKE, EventType.WATCHED, EventType.RATED})


@dataclass(frozen=True)
class Event:
    """One interaction as stored (the API's request schema validates before this is built)."""

    movie_id: int
    type: EventType
    rating: float | None = None
    timestamp: float | None = None  # seconds since the epoch (client time if given, else receipt time)


@dataclass(frozen=True)
class Folded:
    """A person's history after their events: `history` oldest first (what the recipe reads; a movie may
    repeat, the recipe counts it at its latest position), `seen` everything they interacted with."""

    history: list[int]
    seen: set[int]


def fold_history(stored: Sequence[int], events: Iterable[Event]) -> Folded:
    """The run's stored history (oldest first) followed by the person's events, unlikes removing."""
    history = [int(m) for m in stored]
    seen = set(history)
    for e in events:
        seen.add(e.movie_id)
        if e.type == EventType.UNLIKE:
            history = [m for m in history if m != e.movie_id]
        elif e.type in INTERACTIONS:
            history.append(e.movie_id)
    return Folded(history=history, seen=seen)


def liked(events: Iterable[Event]) -> list[int]:
    """Movies whose latest like/unlike is a like, in the order they were (last) liked."""
    state: dict[int, bool] = {}
    for e in events:
        if e.type in (EventType.LIKE, EventType.UNLIKE):
            state.pop(e.movie_id, None)  # re-insert: order of the latest like
            state[e.movie_id] = e.type == EventType.LIKE
    return [m for m, on in state.items() if on]


@dataclass(frozen=True)
class PairOutcome:
    """What a (user, movie) pair becomes in the training data: a rating, or removal (rating None)."""

    rating: float | None
    timestamp: float | None


def fold_ratings(events: Iterable[tuple[int, Event]]) -> dict[tuple[int, int], PairOutcome]:
    """(user_id, event) in received order -> the final outcome of every (user, movie) pair they touched."""
    out: dict[tuple[int, int], PairOutcome] = {}
    for user_id, e in events:
        key = (int(user_id), e.movie_id)
        before = out.get(key)
        if e.type == EventType.UNLIKE:
            out[key] = PairOutcome(None, e.timestamp)
        elif e.type == EventType.RATED and e.rating is not None:
            out[key] = PairOutcome(float(e.rating), e.timestamp)
        elif e.type == EventType.LIKE:
            out[key] = PairOutcome(LIKE_RATING, e.timestamp)
        elif e.type in INTERACTIONS:  # watched (or rated without a value): keep an earlier rating
            kept = before.rating if before is not None and before.rating is not None else WATCHED_RATING
            out[key] = PairOutcome(kept, e.timestamp)
    return out
