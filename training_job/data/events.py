"""Merge the exported interaction events into the base ratings before training (`train --events-uri`).

The events export (shared/stores/mysql/events_export.py) writes every event people sent the API as one CSV snapshot;
this module reads it and folds it into the MovieLens ratings with shared.serving.event_fold.fold_ratings, the same
definition of what events mean that the API serves from. Per (user, movie) pair an event touched:

- a base rating counts as an earlier `rated` event of that pair (so `watched` keeps it, `like` and `rated`
  replace it), then the pair's events apply in the order they were received (`seq`);
- the pair's final outcome replaces the base rating: `unlike` last removes the pair (from the base ratings
  too), anything else sets its rating and its timestamp (the last event's, Unix seconds), so the movie
  takes its place at the end of the person's chronological history.

People the base data does not know (new people have ids >= 1e9; users.dat does not list them) are added to
the users with unknown attributes. Events for movies the catalogue lacks are dropped and counted, bad lines
too; nothing here stops training: a missing, empty or unreadable export logs a warning and training goes on
with the base ratings. What happened is recorded in the run's manifest (`source.events`) and metrics.json
(`data.rejected.notes.events`).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import time
from typing import Any

import numpy as np
import pandas as pd

from shared.config.log import get_logger
from shared.contract import objectstore
from shared.serving.event_fold import EVENT_TYPES, Event, EventType, fold_ratings
from shared.stores.mysql.events_export import metadata_uri
from training_job.data.report import MAX_EXAMPLES, RATING_MAX, RATING_MIN, UNKNOWN_ATTR, MovieLensData

logger = get_logger(__name__)

REQUIRED_COLUMNS = ("user_id", "movie_id", "type", "rating", "timestamp")  # `seq` optional: file order
# Rejection reasons of export lines, counted under the first one that applies.
WRONG_FIELDS = "wrong_field_count"
BAD_ID = "non_numeric_id"
BAD_TYPE = "unknown_type"
BAD_RATING = "bad_rating"
BAD_TIMESTAMP = "bad_timestamp"
UNKNOWN_MOVIE = "unknown_movie"
REASONS = (WRONG_FIELDS, BAD_ID, BAD_TYPE, BAD_RATING, BAD_TIMESTAMP, UNKNOWN_MOVIE)

MERGED, NONE, MISSING, EMPTY, UNREADABLE = "merged", "none", "missing", "empty", "unreadable"


@dataclasses.dataclass
class ParsedEvents:
    """Valid events of an export in application order, plus what was rejected."""

    events: list[tuple[int, Event]]  # (user_id, event), sorted by seq (file order on ties / without seq)
    rows_read: int
    rejected: dict[str, int]
    examples: dict[str, list[str]]


def parse_events(raw: bytes, movie_ids: np.ndarray | None = None) -> ParsedEvents:
    """The export's CSV -> valid events in seq order. Raises ValueError when the header is not the export's."""
    text = raw.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return ParsedEvents([], 0, dict.fromkeys(REASONS, 0), {})
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"not an events export: header {header[:8]} lacks {missing}")
    col = {n: i for i, n in enumerate(names)}
    known = set(np.asarray(movie_ids, dtype=np.int64).tolist()) if movie_ids is not None else None
    rejected = dict.fromkeys(REASONS, 0)
    examples: dict[str, list[str]] = {}
    keyed: list[tuple[int, int, int, Event]] = []  # (seq, line, user, event)
    rows = 0

    def reject(reason: str, row: list[str]) -> None:
        rejected[reason] += 1
        ex = examples.setdefault(reason, [])
        if len(ex) < MAX_EXAMPLES:
            ex.append(",".join(row)[:200])

    for line, row in enumerate(reader):
        if not row or not "".join(row).strip():
            continue  # blank line
        rows += 1
        if len(row) != len(names):
            reject(WRONG_FIELDS, row)
            continue
        try:
            user_id, movie_id = int(row[col["user_id"]]), int(row[col["movie_id"]])
            seq = int(row[col["seq"]]) if "seq" in col else line
        except ValueError:
            reject(BAD_ID, row)
            continue
        etype = row[col["type"]].strip().lower()
        if etype not in EVENT_TYPES:
            reject(BAD_TYPE, row)
            continue
        rating: float | None = None
        if row[col["rating"]].strip():
            try:
                rating = float(row[col["rating"]])
            except ValueError:
                rating = math.nan
            if not RATING_MIN <= rating <= RATING_MAX:  # NaN fails too
                reject(BAD_RATING, row)
                continue
        try:
            ts = float(row[col["timestamp"]])
        except ValueError:
            ts = math.nan
        if not math.isfinite(ts):
            reject(BAD_TIMESTAMP, row)
            continue
        if known is not None and movie_id not in known:
            reject(UNKNOWN_MOVIE, row)
            continue
        keyed.append((seq, line, user_id, Event(movie_id, EventType(etype), rating, ts)))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return ParsedEvents([(u, e) for _, _, u, e in keyed], rows, rejected, examples)


@dataclasses.dataclass
class MergeResult:
    ratings: pd.DataFrame
    stats: dict[str, Any]


def merge_ratings(ratings: pd.DataFrame, events: list[tuple[int, Event]]) -> MergeResult:
    """Fold `events` (user_id, Event) in application order onto `ratings` (user_id, movie_id, rating,
    timestamp; one row per pair). Returns the new ratings (base rows of untouched pairs first, in their
    order, then the touched pairs in the order of their last event) and counts."""
    touched_users = {u for u, _ in events}
    pairs = {(u, e.movie_id) for u, e in events}
    sub = ratings[ratings["user_id"].isin(touched_users)]
    base: dict[tuple[int, int], tuple[float, int]] = {}
    for u, m, r, t in zip(
        sub["user_id"].to_numpy(), sub["movie_id"].to_numpy(), sub["rating"].to_numpy(), sub["timestamp"].to_numpy(),
        strict=True,
    ):
        key = (int(u), int(m))
        if key in pairs:
            base[key] = (float(r), int(t))
    # A base rating is the pair's earliest event, so `watched` keeps it (shared.serving.event_fold's rule).
    seeded = [(u, Event(m, EventType.RATED, r, float(t))) for (u, m), (r, t) in base.items()]
    outcomes = fold_ratings([*seeded, *events])
    last_index: dict[tuple[int, int], int] = {}
    for i, (u, e) in enumerate(events):
        last_index[(u, e.movie_id)] = i
    added = updated = unchanged = removed = cancelled = 0
    rows: list[tuple[int, int, float, int]] = []
    for key in sorted(outcomes, key=lambda k: last_index[k]):
        out = outcomes[key]
        before = base.get(key)
        if out.rating is None:
            removed += before is not None
            cancelled += before is None
            continue
        ts = int(math.floor(out.timestamp)) if out.timestamp is not None else (before[1] if before else 0)
        rows.append((key[0], key[1], float(out.rating), ts))
        if before is None:
            added += 1
        elif before == (float(out.rating), ts):
            unchanged += 1
        else:
            updated += 1
    keep = ~pd.MultiIndex.from_frame(ratings[["user_id", "movie_id"]].astype("int64")).isin(list(base))
    merged = pd.concat(
        [
            ratings[keep],
            pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"]).astype(
                {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
            ),
        ],
        ignore_index=True,
    )
    kept_users = {u for (u, _), o in outcomes.items() if o.rating is not None}
    stats = {
        "events": len(events),
        "users": len(touched_users),
        "users_with_ratings": len(kept_users),
        "pairs": len(outcomes),
        "pairs_added": added,
        "pairs_updated": updated,
        "pairs_unchanged": unchanged,
        "pairs_removed": removed,
        "pairs_unliked_without_rating": cancelled,
        "ratings_before": len(ratings),
        "ratings_after": len(merged),
    }
    return MergeResult(merged, stats)


def add_users(users: pd.DataFrame, user_ids: np.ndarray) -> tuple[pd.DataFrame, int]:
    """`users` plus a row (attributes unknown) for every id in user_ids it does not list."""
    new = np.setdiff1d(np.unique(np.asarray(user_ids, dtype=np.int64)), users["user_id"].to_numpy(dtype=np.int64))
    if len(new) == 0:
        return users, 0
    extra = pd.DataFrame({"user_id": new, **{c: UNKNOWN_ATTR for c in users.columns if c != "user_id"}})
    out = pd.concat([users, extra], ignore_index=True)
    for c in out.columns:
        if c != "user_id" and isinstance(users[c].dtype, pd.CategoricalDtype):
            out[c] = pd.Categorical(out[c].astype(str))
    return out, len(new)


def _read_metadata(uri: str) -> dict[str, Any] | None:
    try:
        if not objectstore.exists(metadata_uri(uri)):
            return None
        meta = json.loads(objectstore.read_bytes(metadata_uri(uri)))
    except Exception as exc:  # noqa: BLE001 - informative only
        logger.warning("events export metadata unreadable", extra={"uri": metadata_uri(uri), "error": str(exc)[:300]})
        return None
    return meta if isinstance(meta, dict) else None


def merge_events(data: MovieLensData, uri: str) -> MovieLensData:
    """`data` with the events at `uri` merged into its ratings (and new people into its users); the stats
    go to data.source["events"] (the manifest) and data.report.notes["events"] (metrics.json). Never raises
    for a bad export: it warns and returns the base data."""
    t0 = time.perf_counter()
    stats: dict[str, Any] = {"uri": uri, "status": NONE}
    if not uri:
        return data
    try:
        if not objectstore.exists(uri):
            stats["status"] = MISSING
            raw = b""
        else:
            raw = objectstore.read_bytes(uri)
        parsed = parse_events(raw, data.movies["movie_id"].to_numpy()) if raw else None
    except Exception as exc:  # noqa: BLE001 - never block training on the export
        stats.update(status=UNREADABLE, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        parsed, raw = None, b""
    if stats["status"] == NONE:
        stats["sha256"] = hashlib.sha256(raw).hexdigest()
        stats["bytes"] = len(raw)
        meta = _read_metadata(uri)
        if meta is not None:
            stats["export"] = {k: meta.get(k) for k in ("exported_at", "rows", "users", "max_seq", "sha256")}
            stats["export_matches_metadata"] = meta.get("sha256") == stats["sha256"]
    if parsed is not None:
        stats.update(rows_read=parsed.rows_read, rejected=parsed.rejected, examples=parsed.examples)
    if parsed is None or not parsed.events:
        if stats["status"] == NONE:
            stats["status"] = EMPTY
        logger.warning("no events merged; training on the base ratings", extra={k: v for k, v in stats.items() if k != "examples"})
        return _with_stats(data, data.ratings, data.users, {**stats, "seconds": round(time.perf_counter() - t0, 3)})
    result = merge_ratings(data.ratings, parsed.events)
    users, new_users = add_users(data.users, result.ratings["user_id"].to_numpy())
    stats.update(status=MERGED, **result.stats, new_users=new_users, seconds=round(time.perf_counter() - t0, 3))
    logger.info("events merged", extra={k: v for k, v in stats.items() if k != "examples"})
    return _with_stats(data, result.ratings, users, stats)


def _with_stats(data: MovieLensData, ratings: pd.DataFrame, users: pd.DataFrame, stats: dict[str, Any]) -> MovieLensData:
    report = dataclasses.replace(data.report, notes={**data.report.notes, "events": stats})
    source = {**(data.source or {}), "events": stats}
    return dataclasses.replace(data, ratings=ratings, users=users, report=report, source=source)
