"""Raw MovieLens bytes into string columns, and the vectorised checks the parsers (data.py) run on them.

`split_lines` rewrites `::` to the unit separator once and lets pyarrow's C++ CSV reader split the lines
(wrong-field-count lines go to a callback), falling back to an exact Python split if pyarrow refuses the
bytes. `Validator` gives each row its first failing reason, so every line ends up kept or counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shared.config.log import get_logger
from training_job.data.report import _UNIT_SEP, BLANK, MAX_EXAMPLES, SEP, WRONG_FIELDS, FileReport

logger = get_logger(__name__)


def decode(raw: bytes) -> tuple[bytes, str]:
    """UTF-8 bytes for pyarrow plus the encoding we assumed.

    MovieLens-1M is latin-1. A file that is valid UTF-8 *and* non-ASCII was almost surely re-saved as
    UTF-8 (latin-1 accents are invalid UTF-8 sequences), so we take it as UTF-8 rather than double-encode.
    """
    if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (editors add it) is not part of user id 1
        return raw[3:], "utf-8"
    if raw.isascii():
        return raw, "ascii"
    try:
        raw.decode("utf-8")
        return raw, "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1").encode("utf-8"), "latin-1"


def count_lines(raw: bytes) -> int:
    if not raw:
        return 0
    return raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)


@dataclass
class Split:
    columns: list[pa.Array]  # one string array per field, rows in file order
    blank: list[str]
    malformed: list[str]
    lines: int


def _split(raw: bytes, n_fields: int) -> tuple[Split, str]:
    """Split `::`-separated lines into n_fields string columns; collect blank and wrong-field-count lines."""
    data, encoding = decode(raw)
    if b"\r" in data:  # what pyarrow treats as line ends anyway; normalised so lines are counted right
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    data = data.replace(SEP, _UNIT_SEP.encode())
    lines = count_lines(data)
    blank: list[str] = []
    malformed: list[str] = []

    def on_invalid(row: Any) -> str:
        (blank if not row.text.strip() else malformed).append(row.text)
        return "skip"

    names = [f"f{i}" for i in range(n_fields)]
    if data.strip():
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(
                column_names=names, block_size=max(1 << 20, min(len(data) + 1, 64 << 20))
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=_UNIT_SEP,
                quote_char=False,
                escape_char=False,
                ignore_empty_lines=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        columns = [table.column(n).combine_chunks() for n in names]
    else:
        columns = [pa.array([], pa.string()) for _ in names]
    # Empty lines never reach the callback (ignore_empty_lines): they are what is left unaccounted for.
    empty = lines - len(columns[0]) - len(blank) - len(malformed)
    blank.extend([""] * max(empty, 0))
    return Split(columns, blank, malformed, lines), encoding


def split_lines(raw: bytes, n_fields: int) -> tuple[Split, str]:
    """pyarrow split, falling back to a (slow, exact) Python split if pyarrow refuses the bytes.

    pyarrow can fail on pathological input (e.g. a single line longer than its block size); the data
    is still readable line by line, so we never let that crash the job.
    """
    try:
        return _split(raw, n_fields)
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        logger.warning("pyarrow split failed, using the Python fallback", extra={"error": str(exc)[:200]})
    data, encoding = decode(raw)
    text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    if text.endswith("\n"):
        text = text[:-1]
    rows: list[list[str]] = []
    blank: list[str] = []
    malformed: list[str] = []
    lines = text.split("\n") if text else []
    for line in lines:
        if not line.strip():
            blank.append(line)
            continue
        parts = line.split("::")
        if len(parts) != n_fields:
            malformed.append(line)
        else:
            rows.append(parts)
    columns = [pa.array([r[i] for r in rows], pa.string()) for i in range(n_fields)]
    return Split(columns, blank, malformed, len(lines)), encoding


def row_texts(columns: list[pa.Array], idx: np.ndarray) -> list[str]:
    """Rebuild the original lines of rows `idx` (for examples only: a handful of rows)."""
    take = pa.array(idx[:MAX_EXAMPLES], pa.int64())
    parts = [c.take(take).to_pylist() for c in columns]
    return ["::".join(fields) for fields in zip(*parts, strict=True)]


class Validator:
    """Assigns each split row its first failing reason (0 = still good), in check order."""

    def __init__(self, split: Split, report: FileReport, reasons: tuple[str, ...]) -> None:
        self.split = split
        self.report = report
        self.reasons = reasons
        self.n = len(split.columns[0])
        self.code = np.zeros(self.n, dtype=np.int8)  # (n,) 0 = ok, k = reasons[k-1]
        report.rejected = dict.fromkeys(reasons, 0)
        report.reject(BLANK, len(split.blank), split.blank)
        report.reject(WRONG_FIELDS, len(split.malformed), split.malformed)

    def fail(self, reason: str, bad: np.ndarray) -> None:
        """Mark rows where `bad` is True and that are still good with `reason`."""
        hit = bad & (self.code == 0)
        self.code[hit] = self.reasons.index(reason) + 1
        idx = np.flatnonzero(hit)
        self.report.reject(reason, len(idx), row_texts(self.split.columns, idx) if len(idx) else [])

    @property
    def ok(self) -> np.ndarray:
        return self.code == 0

    def finish(self) -> np.ndarray:
        ok = self.ok
        self.report.rows_kept = int(ok.sum())
        self.report.lines_read = self.split.lines
        assert self.report.lines_read == self.report.rows_kept + self.report.total_rejected, self.report
        return ok


def trim(col: pa.Array) -> pa.Array:
    return pc.utf8_trim_whitespace(col)


def matches(col: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.match_substring_regex(col, pattern).to_numpy(zero_copy_only=False), dtype=bool)


def to_int64(col: pa.Array, ok: np.ndarray) -> np.ndarray:
    """int64 values where ok (validated by regex first), 0 elsewhere."""
    out = np.zeros(len(col), dtype=np.int64)
    if ok.any():
        out[ok] = pc.cast(col.filter(pa.array(ok)), pa.int64()).to_numpy()
    return out


def to_float(col: pa.Array, ok: np.ndarray) -> np.ndarray:
    out = np.zeros(len(col), dtype=np.float64)
    if ok.any():
        out[ok] = pc.cast(col.filter(pa.array(ok)), pa.float64()).to_numpy()
    return out


def repeated_ids(ids: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """True for rows whose id (among ok rows) was already seen earlier in the file."""
    dup = np.zeros(len(ids), dtype=bool)
    sub = np.flatnonzero(ok)
    dup[sub] = pd.Series(ids[sub]).duplicated(keep="first").to_numpy()
    return dup
