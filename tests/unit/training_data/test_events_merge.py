"""training_job/data/events.py: the exported events folded into the base ratings (shared.serving.event_fold rules),
bad lines and unknown movies counted, a missing export never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.serving.event_fold import LIKE_RATING, WATCHED_RATING
from shared.stores.mysql.events_export import EXPORT_COLUMNS, metadata_uri
from training_job.data.events import merge_events, parse_events
from training_job.data.report import UNKNOWN_ATTR, DataReport, MovieLensData

NEW = 1_000_000_000  # a person who signed in: not in users.dat
HEADER = ",".join(EXPORT_COLUMNS)


def _data() -> MovieLensData:
    users = pd.DataFrame({"user_id": [1, 2], "gender": pd.Categorical(["F", "M"]), "age": pd.Categorical(["1", "25"]),
                          "occupation": pd.Categorical(["10", "2"]), "zip": pd.Categorical(["48067", "70072"])})  # fmt: skip
    movies = pd.DataFrame({"movie_id": [10, 20, 30, 40], "title": ["A", "B", "C", "D"],
                           "year": pd.array([1999, 2000, None, 1995], dtype="Int64"), "genres": [["Drama"]] * 4,
                           "raw_title": ["A", "B", "C", "D"]})  # fmt: skip
    ratings = pd.DataFrame(
        {"user_id": [1, 1, 1, 2], "movie_id": [10, 20, 30, 10], "rating": np.array([2, 3, 4, 5], np.float32),
         "timestamp": [100, 200, 300, 150]}  # fmt: skip
    ).astype({"user_id": "int64", "movie_id": "int64", "timestamp": "int64"})
    return MovieLensData(users=users, movies=movies, ratings=ratings, report=DataReport(), source={"kind": "test"})


def _export(tmp_path: Path, lines: list[str], name: str = "events.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return str(path)


def _pairs(data: MovieLensData) -> dict[tuple[int, int], tuple[float, int]]:
    r = data.ratings
    return {(int(u), int(m)): (float(x), int(t)) for u, m, x, t in zip(r.user_id, r.movie_id, r.rating, r.timestamp, strict=True)}


def test_unlike_removes_a_base_rating(tmp_path: Path) -> None:
    uri = _export(tmp_path, ["1,1,20,unlike,,1000.5"])
    merged = merge_events(_data(), uri)
    assert (1, 20) not in _pairs(merged)
    assert _pairs(merged)[(1, 10)] == (2.0, 100)  # untouched pairs stay as they were
    ev = merged.source["events"]
    assert ev["status"] == "merged" and ev["pairs_removed"] == 1 and ev["ratings_after"] == 3
    assert merged.report.notes["events"] == ev  # metrics.json carries the same figures


def test_rated_overrides_a_base_rating_and_moves_it_to_its_time(tmp_path: Path) -> None:
    uri = _export(tmp_path, ["1,1,10,rated,4.5,5000.9"])
    merged = merge_events(_data(), uri)
    assert _pairs(merged)[(1, 10)] == (4.5, 5000)  # Unix seconds, floored
    assert merged.source["events"]["pairs_updated"] == 1
    assert len(merged.ratings) == 4


def test_watched_keeps_an_existing_rating(tmp_path: Path) -> None:
    uri = _export(tmp_path, ["1,1,30,watched,,7000", "2,2,20,rated,1.5,7001", "3,2,20,watched,,7002", "4,2,40,watched,,7003"])
    pairs = _pairs(merge_events(_data(), uri))
    assert pairs[(1, 30)] == (4.0, 7000)  # the base rating (4) stays, the time is the event's
    assert pairs[(2, 20)] == (1.5, 7002)  # a rating from an earlier event stays too
    assert pairs[(2, 40)] == (WATCHED_RATING, 7003)  # no rating yet: watched's default


def test_like_and_unlike_in_received_order_for_a_new_person(tmp_path: Path) -> None:
    uri = _export(
        tmp_path,
        # seq order decides, not line order: the unlike of 20 (seq 5) comes after its like (seq 3)
        [f"5,{NEW},20,unlike,,9004", f"2,{NEW},10,like,,9001", f"3,{NEW},20,like,,9002", f"4,{NEW},30,like,,9003"],
    )
    merged = merge_events(_data(), uri)
    pairs = _pairs(merged)
    assert pairs[(NEW, 10)] == (LIKE_RATING, 9001) and pairs[(NEW, 30)] == (LIKE_RATING, 9003)
    assert (NEW, 20) not in pairs
    ev = merged.source["events"]
    assert ev["pairs_added"] == 2 and ev["pairs_unliked_without_rating"] == 1 and ev["new_users"] == 1
    new_row = merged.users[merged.users.user_id == NEW].iloc[0]
    assert new_row["gender"] == UNKNOWN_ATTR and len(merged.users) == 3


def test_unknown_movies_and_bad_lines_are_counted_never_fatal(tmp_path: Path) -> None:
    uri = _export(
        tmp_path,
        ["1,2,999,like,,10", "2,x,10,like,,10", "3,2,10,hate,,10", "4,2,10,rated,9,10", "5,2,10,like,,soon",
         "6,2,10", "", "7,2,30,like,,11"],  # fmt: skip
    )
    merged = merge_events(_data(), uri)
    ev = merged.source["events"]
    assert ev["rejected"] == {"wrong_field_count": 1, "non_numeric_id": 1, "unknown_type": 1, "bad_rating": 1,
                              "bad_timestamp": 1, "unknown_movie": 1}  # fmt: skip
    assert ev["rows_read"] == 7 and ev["events"] == 1
    assert ev["examples"]["unknown_movie"] == ["1,2,999,like,,10"]
    assert _pairs(merged)[(2, 30)] == (LIKE_RATING, 11)


@pytest.mark.parametrize("content", [None, "", HEADER + "\n", "movie,rating\n1,2\n"])
def test_missing_empty_or_foreign_export_trains_on_base_data(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "events.csv"
    if content is not None:
        path.write_text(content)
    base = _data()
    merged = merge_events(base, str(path))
    assert merged.ratings.equals(base.ratings) and merged.users.equals(base.users)
    expected = {None: "missing", "": "empty", HEADER + "\n": "empty"}.get(content, "unreadable")
    assert merged.source["events"]["status"] == expected


def test_no_uri_changes_nothing() -> None:
    base = _data()
    assert merge_events(base, "") is base


def test_metadata_is_reported_and_checked(tmp_path: Path) -> None:
    import hashlib

    uri = _export(tmp_path, ["1,1,40,like,,10"])
    digest = hashlib.sha256(Path(uri).read_bytes()).hexdigest()
    Path(metadata_uri(uri)).write_text(json.dumps({"rows": 1, "users": 1, "max_seq": 1, "sha256": digest,
                                                   "exported_at": "2026-01-01T00:00:00+00:00"}))  # fmt: skip
    ev = merge_events(_data(), uri).source["events"]
    assert ev["export"]["max_seq"] == 1 and ev["export_matches_metadata"] is True


def test_export_without_seq_applies_in_file_order() -> None:
    raw = b"user_id,movie_id,type,rating,timestamp\n7,10,like,,1\n7,10,unlike,,2\n7,20,rated,3,3\n"
    parsed = parse_events(raw)
    assert [(u, e.movie_id, e.type.value) for u, e in parsed.events] == [(7, 10, "like"), (7, 10, "unlike"), (7, 20, "rated")]
