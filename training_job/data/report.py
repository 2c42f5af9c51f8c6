"""The MovieLens format's names and the reader's line accounting (what was kept, what was rejected, why).

Every input line ends up either in a frame or in a counted rejection reason with a few truncated examples:
`lines_read == rows_kept + sum(rejected)` per file; the report travels into metrics.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

ZIP_NAME = "ml-1m.zip"
USERS_FILE = "users.dat"
MOVIES_FILE = "movies.dat"
RATINGS_FILE = "ratings.dat"
FILES = (USERS_FILE, MOVIES_FILE, RATINGS_FILE)

SEP = b"::"
_UNIT_SEP = "\x1f"  # never appears in MovieLens text; a stray one just makes the line malformed (counted)

RATING_MIN = 0.5  # ML-1M uses 1..5; half stars (0.5..5.0) are accepted so ML-10M/latest-style files load
RATING_MAX = 5.0
MAX_EXAMPLES = 5
EXAMPLE_CHARS = 200

# Rejection reasons. Each rejected line is counted under the FIRST reason it fails, in this order.
BLANK = "blank_line"
WRONG_FIELDS = "wrong_field_count"
NON_NUMERIC_ID = "non_numeric_id"
NON_NUMERIC_RATING = "non_numeric_rating"
NON_NUMERIC_TIMESTAMP = "non_numeric_timestamp"
RATING_RANGE = "rating_out_of_range"
UNKNOWN_USER = "unknown_user"
UNKNOWN_MOVIE = "unknown_movie"
DUPLICATE_RATING = "duplicate_rating"
DUPLICATE_ID = "duplicate_id"

ENTITY_REASONS = (BLANK, WRONG_FIELDS, NON_NUMERIC_ID, DUPLICATE_ID)
RATING_REASONS = (
    BLANK,
    WRONG_FIELDS,
    NON_NUMERIC_ID,
    NON_NUMERIC_RATING,
    NON_NUMERIC_TIMESTAMP,
    RATING_RANGE,
    UNKNOWN_USER,
    UNKNOWN_MOVIE,
    DUPLICATE_RATING,
)

# Genre names meaning "no genre" in the MovieLens family (ML-100k 'unknown', ML-latest '(no genres listed)').
NO_GENRE = {"", "unknown", "(no genres listed)"}
KNOWN_GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
UNKNOWN_ATTR = "unknown"  # what a blank user attribute (gender/age/occupation/zip) becomes

_ID_RE = r"^[0-9]{1,18}$"  # fits int64
_RATING_RE = r"^[0-9]{1,3}(\.[0-9]+)?$"
_TS_RE = r"^-?[0-9]{1,18}$"


class MovieLensError(ValueError):
    """The source cannot be read as MovieLens data (missing files, nothing usable, download failed...)."""


@dataclass
class FileReport:
    """What happened to one file's lines. Invariant: lines_read == rows_kept + sum(rejected.values())."""

    lines_read: int = 0
    rows_kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    encoding: str = "latin-1"
    seconds: float = 0.0

    @property
    def total_rejected(self) -> int:
        return sum(self.rejected.values())

    def reject(self, reason: str, count: int, examples: list[str]) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + int(count)
        if count and examples:
            room = MAX_EXAMPLES - len(self.examples.get(reason, []))
            if room > 0:
                self.examples.setdefault(reason, []).extend(_truncate(e) for e in examples[:room])


@dataclass
class DataReport:
    """Per-file line accounting plus notes on kept-but-notable rows (movies without year, etc.)."""

    files: dict[str, FileReport] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def total_rejected(self) -> int:
        return sum(f.total_rejected for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name, fr in self.files.items():
            out["files"][name]["total_rejected"] = fr.total_rejected
        out["total_rejected"] = self.total_rejected
        return out

    def summary(self) -> dict[str, Any]:
        """Flat figures for one log line."""
        out: dict[str, Any] = {}
        for name, fr in self.files.items():
            stem = name.split(".")[0]
            out[f"{stem}_read"] = fr.lines_read
            out[f"{stem}_kept"] = fr.rows_kept
            out[f"{stem}_rejected"] = {k: v for k, v in fr.rejected.items() if v}
        return out


@dataclass
class MovieLensData:
    users: pd.DataFrame  # user_id int64, gender/age/occupation/zip category (strings)
    movies: pd.DataFrame  # movie_id int64, title str, year Int64, genres list[str], raw_title str
    ratings: pd.DataFrame  # user_id int64, movie_id int64, rating float32, timestamp int64
    report: DataReport
    source: dict[str, Any]


def _truncate(text: str) -> str:
    text = text.replace(_UNIT_SEP, "::")
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "..."
