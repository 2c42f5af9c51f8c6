"""What events mean (shared/serving/event_fold.py): the API's real-time history and the training merge share it."""

from __future__ import annotations

from shared.serving.event_fold import (
    LIKE_RATING,
    WATCHED_RATING,
    Event,
    EventType,
    PairOutcome,
    fold_history,
    fold_ratings,
    liked,
)

LIKE, UNLIKE, WATCHED, RATED = EventType.LIKE, EventType.UNLIKE, EventType.WATCHED, EventType.RATED


def test_events_follow_the_stored_history_and_unlike_removes_every_occurrence() -> None:
    folded = fold_history([1, 2, 3], [Event(4, LIKE), Event(2, UNLIKE), Event(5, WATCHED), Event(2, RATED, 1.0)])
    assert folded.history == [1, 3, 4, 5, 2]  # rated again after the unlike: back, at its new position
    assert folded.seen == {1, 2, 3, 4, 5}
    gone = fold_history([7, 8, 7], [Event(7, UNLIKE)])
    assert gone.history == [8] and gone.seen == {7, 8}


def test_liked_is_the_latest_like_or_unlike_in_order() -> None:
    events = [Event(1, LIKE), Event(2, LIKE), Event(3, WATCHED), Event(1, UNLIKE), Event(4, LIKE), Event(2, LIKE)]
    assert liked(events) == [4, 2]


def test_training_outcome_is_the_last_event_per_pair() -> None:
    out = fold_ratings(
        [
            (10, Event(1, RATED, 2.0, 100.0)),
            (10, Event(1, WATCHED, None, 200.0)),  # keeps the explicit rating
            (10, Event(2, LIKE, None, 300.0)),
            (10, Event(3, LIKE, None, 400.0)),
            (10, Event(3, UNLIKE, None, 500.0)),  # drops the pair (base ratings too)
            (11, Event(1, WATCHED, None, 600.0)),
        ]
    )
    assert out == {
        (10, 1): PairOutcome(2.0, 200.0),
        (10, 2): PairOutcome(LIKE_RATING, 300.0),
        (10, 3): PairOutcome(None, 500.0),
        (11, 1): PairOutcome(WATCHED_RATING, 600.0),
    }
