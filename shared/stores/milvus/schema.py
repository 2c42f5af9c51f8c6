"""The layout of a run's Milvus collection: its fields, its index, how a batch becomes rows and how a query's
filters become a boolean expression. shared/stores/milvus/store.py does the calls; shared/stores/milvus/bulk.py writes the
same fields to bulk-import files.

pymilvus is imported lazily (through import_pymilvus) so that importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.stores.milvus.client import import_pymilvus

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from pymilvus import MilvusClient

PK = "movie_id"
VECTOR = "embedding"
GENRES = "genres"
YEAR = "year"
MAX_GENRES = 32
MAX_GENRE_LEN = 128
MAX_TOPK = 16384
# Milvus before 2.5 has no nullable fields (2.3.5 ignores `nullable` and then refuses a None: "the num_rows
# (1681) of field (year) is not equal to passed num_rows (1682)"), so an unknown year is stored as this
# sentinel on every backend (one layout everywhere) and read back as None; no movie is from year 0.
# No genres is an empty array, which every supported server stores as it is.
YEAR_UNKNOWN = 0


def schema(dim: int) -> Any:
    """movie_id (primary key), the L2-normalised embedding, genres (for ANY-of filters) and year
    (YEAR_UNKNOWN when the movie has none). No nullable fields: Milvus 2.3/2.4 servers have none."""
    import_pymilvus()
    from pymilvus import DataType, MilvusClient

    s = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field(PK, DataType.INT64, is_primary=True)
    s.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=dim)
    s.add_field(
        GENRES,
        DataType.ARRAY,
        element_type=DataType.VARCHAR,
        max_capacity=MAX_GENRES,
        max_length=MAX_GENRE_LEN,
    )
    s.add_field(YEAR, DataType.INT32)
    return s


def index_params(client: MilvusClient, uri: str, is_lite: bool) -> Any:
    """Inner product on the vectors: FLAT (exact) on Milvus Lite, AUTOINDEX on Zilliz Cloud, HNSW elsewhere."""
    params = client.prepare_index_params()
    if is_lite:
        params.add_index(field_name=VECTOR, index_type="FLAT", metric_type="IP")
    elif "zilliz" in uri:
        params.add_index(field_name=VECTOR, index_type="AUTOINDEX", metric_type="IP")
    else:
        params.add_index(
            field_name=VECTOR,
            index_type="HNSW",
            metric_type="IP",
            params={"M": 16, "efConstruction": 200},
        )
    return params


@dataclass
class PreparedRows:
    """One batch converted to Milvus rows by prepare_rows()."""

    ids: list[int]
    rows: list[dict[str, Any]]


def prepare_rows(
    movie_ids: Sequence[int],
    vectors: np.ndarray,
    genres: Sequence[list[str]],
    years: Sequence[int | None],
) -> PreparedRows:
    """Validate and convert one batch to Milvus rows (CPU work, separable from the network call so the loader
    can prepare batch i+1 while batch i is being ingested)."""
    import numpy as np

    vecs = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, dim)
    n = len(movie_ids)
    if vecs.ndim != 2 or vecs.shape[0] != n or len(genres) != n or len(years) != n:
        raise ValueError(
            f"insert: lengths differ (ids {n}, vectors {vecs.shape}, genres {len(genres)}, years {len(years)})"
        )
    ids = [int(x) for x in movie_ids]
    rows: list[dict[str, Any]] = []
    for mid, vec, gs, year in zip(ids, vecs.tolist(), genres, years, strict=True):
        gl = [str(g) for g in (gs or [])]
        if len(gl) > MAX_GENRES or any(len(g) > MAX_GENRE_LEN for g in gl):
            raise ValueError(f"movie {mid}: at most {MAX_GENRES} genres of <= {MAX_GENRE_LEN} chars")
        rows.append({PK: mid, VECTOR: vec, GENRES: gl, YEAR: stored_year(year)})
    return PreparedRows(ids, rows)


def stored_year(year: int | None) -> int:
    """A movie's year as the collection stores it: YEAR_UNKNOWN for None (see YEAR_UNKNOWN)."""
    if year is None:
        return YEAR_UNKNOWN
    if int(year) == YEAR_UNKNOWN:
        raise ValueError(f"year {YEAR_UNKNOWN} is the 'unknown year' sentinel; pass None for a movie without a year")
    return int(year)


def year_of_stored(value: int | None) -> int | None:
    """stored_year() undone: None for the sentinel (and for a null from a collection made before it)."""
    return None if value is None or int(value) == YEAR_UNKNOWN else int(value)


def _literal(values: Sequence[Any]) -> str:
    """A Milvus expression list literal. JSON string escaping is what Milvus' parser expects."""
    return json.dumps(list(values), ensure_ascii=False)


def build_filter(
    exclude_ids: Sequence[int] = (),
    genres: Sequence[str] | None = None,
    *,
    year_min: int | None = None,
    year_max: int | None = None,
) -> str:
    """Milvus boolean expression: not in excluded ids AND (any-of the genres) AND year in [year_min,
    year_max]. Values are coerced (ints) or JSON-escaped (strings), so user input cannot change the
    expression's structure. A movie without genres (empty array) matches no genre filter; a movie without a
    year (YEAR_UNKNOWN) matches no year bound, however low."""
    parts = []
    if year_min is not None or year_max is not None:
        parts.append(f"{YEAR} != {YEAR_UNKNOWN}")
        if year_min is not None:
            parts.append(f"{YEAR} >= {int(year_min)}")
        if year_max is not None:
            parts.append(f"{YEAR} <= {int(year_max)}")
    if exclude_ids:
        parts.append(f"{PK} not in {_literal(sorted({int(i) for i in exclude_ids}))}")
    if genres:
        gl = sorted({str(g) for g in genres})
        parts.append(f"ARRAY_CONTAINS_ANY({GENRES}, {_literal(gl)})")
    return " and ".join(parts)
