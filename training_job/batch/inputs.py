"""A batch run's inputs: the run folder (index, recipe, histories), an optional users file, optional events.

Every failure here is a clear `BatchInputError` (exit code 2): an unknown run, a run without embeddings,
an events export that is not one. A users file's bad lines and unknown users are counted, never fatal.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.config.log import get_logger
from shared.contract import artifacts, objectstore
from shared.serving.event_fold import Event
from shared.serving.recipe import ExactIndex, Recipe
from training_job.batch.compute import UserInput

logger = get_logger(__name__)


class BatchInputError(ValueError):
    """The run or an input file cannot be used: the message says which and why."""


@dataclass
class Run:
    run_id: str
    run_uri: str
    recipe: Recipe
    index: ExactIndex
    reader: artifacts.RunReader


def open_run(run_uri: str) -> Run:
    reader = artifacts.RunReader(run_uri)
    try:
        manifest = reader.manifest()
    except artifacts.RunFormatError as exc:
        raise BatchInputError(f"unknown run {run_uri}: {exc}") from exc
    if artifacts.EMBEDDINGS not in manifest.files or not objectstore.exists(reader.uri(artifacts.EMBEDDINGS)):
        raise BatchInputError(f"run {manifest.run_id} has no {artifacts.EMBEDDINGS}: nothing to recommend from")
    table = reader.open_parquet(artifacts.EMBEDDINGS).read()
    ids = table.column("movie_id").to_numpy()
    if len(ids) == 0:
        raise BatchInputError(f"run {manifest.run_id}: {artifacts.EMBEDDINGS} has no rows")
    flat = np.asarray(table.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32)
    index = ExactIndex(ids, flat.reshape(len(ids), -1))  # the API's index over the same float32 vectors
    return Run(manifest.run_id, reader.run_uri, Recipe.from_dict(manifest.recipe), index, reader)


@dataclass
class UsersFile:
    user_ids: set[int]
    lines: int = 0
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)


def read_users(uri: str) -> UsersFile:
    """One user id per line (an optional `user_id` header, blank lines ignored); bad lines are counted."""
    try:
        text = objectstore.read_bytes(uri).decode("utf-8-sig", errors="replace")
    except FileNotFoundError as exc:
        raise BatchInputError(f"users file {uri} does not exist") from exc
    out = UsersFile(set())
    for i, raw in enumerate(text.splitlines()):
        line = raw.strip().split(",")[0].strip()
        if not line or (i == 0 and line.lower() == "user_id"):
            continue
        out.lines += 1
        try:
            out.user_ids.add(int(line))
        except ValueError:
            out.bad_lines += 1
            if len(out.bad_examples) < 5:
                out.bad_examples.append(f"line {i + 1}: {raw[:80]!r}")
    return out


def read_events(uri: str, run: Run, realtime_max: int) -> dict[int, list[Event]]:
    """The events export folded as the API folds it: each person's latest `realtime_max` events, oldest first."""
    from training_job.data.events import parse_events

    try:
        raw = objectstore.read_bytes(uri)
    except FileNotFoundError as exc:
        raise BatchInputError(f"events export {uri} does not exist") from exc
    try:
        parsed = parse_events(raw, None)
    except ValueError as exc:
        raise BatchInputError(f"events export {uri}: {exc}") from exc
    latest: dict[int, deque[Event]] = defaultdict(lambda: deque(maxlen=realtime_max))
    for user_id, event in parsed.events:  # seq order = the order the API received them
        latest[int(user_id)].append(event)
    logger.info("events read", extra={"uri": uri, "people": len(latest), "rejected": parsed.rejected})
    return {u: list(e) for u, e in latest.items()}


def shard_bounds(n: int, shard: int, shards: int) -> tuple[int, int]:
    """Contiguous [lo, hi) of n items for shard `shard` of `shards` (sizes differ by at most one)."""
    return n * shard // shards, n * (shard + 1) // shards


def iter_users(
    run: Run,
    shard: int,
    shards: int,
    block: int,
    only: set[int] | None,
    events: dict[int, list[Event]],
    stats: dict[str, Any],
) -> Iterator[list[UserInput]]:
    """Blocks of this shard's users, in user_history.parquet order, then the people known only by events.

    Memory: one parquet batch and one block (histories are streamed, never all held)."""
    ids_table = run.reader.open_parquet(artifacts.USER_HISTORY).read(columns=["user_id"])
    all_ids = ids_table.column("user_id").to_numpy()
    in_run = set(all_ids.tolist()) if (only is not None or events) else set()
    if only is not None:
        stats["unknown_users"] = len(only - in_run - set(events))
        keep = np.fromiter((u in only for u in all_ids.tolist()), dtype=bool, count=len(all_ids))
    else:
        keep = np.ones(len(all_ids), dtype=bool)
    positions = np.flatnonzero(keep)  # rows of the file this run answers
    lo, hi = shard_bounds(len(positions), shard, shards)
    rows = set(positions[lo:hi].tolist()) if (lo, hi) != (0, len(all_ids)) else None
    extra = sorted(u for u in events if u not in in_run and (only is None or u in only))
    stats["users"] = (hi - lo) + len(shard_extra := extra[shard::shards])
    pending: list[UserInput] = []
    row = 0
    for batch in run.reader.iter_batches(artifacts.USER_HISTORY, batch_size=max(block, 1024)):
        uids = batch.column("user_id").to_pylist()
        hists = batch.column("movie_ids").to_pylist()
        for uid, hist in zip(uids, hists, strict=True):
            if (rows is None or row in rows) and keep[row]:
                pending.append(UserInput(int(uid), hist or [], events.get(int(uid), ())))
                if len(pending) >= block:
                    yield pending
                    pending = []
            row += 1
    for uid in shard_extra:  # signed-in people the run does not know: their events only (the API: known=True)
        pending.append(UserInput(uid, [], events[uid]))
        if len(pending) >= block:
            yield pending
            pending = []
    if pending:
        yield pending
