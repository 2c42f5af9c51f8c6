"""The MovieLens reader on clean and dirty files: every line kept or counted, never a crash, never wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from training_job.data import movielens as data
from training_job.data import report as data_report
from training_job.data import split as data_split
from training_job.data.movielens import MovieLensError, load_movielens, parse_genres, parse_title

from ._helpers import MOVIES, RATINGS, USERS, write_ml


def _assert_accounted(d: data.MovieLensData) -> None:
    for name, rep in d.report.files.items():
        assert rep.lines_read == rep.rows_kept + rep.total_rejected, name
        for reason, examples in rep.examples.items():
            assert 0 < len(examples) <= data.MAX_EXAMPLES
            assert rep.rejected[reason] >= len(examples)


def test_clean_folder_types_and_values(tmp_path: Path) -> None:
    d = load_movielens(str(write_ml(tmp_path / "ml")))
    assert d.report.total_rejected == 0
    assert list(d.users.columns) == ["user_id", "gender", "age", "occupation", "zip"]
    assert d.users["user_id"].dtype == np.int64
    assert all(
        isinstance(d.users[c].dtype, pd.CategoricalDtype) for c in ("gender", "age", "occupation", "zip")
    )
    assert d.users["age"].tolist() == ["1", "56", "25"]  # categorical strings, not numbers
    assert d.movies["movie_id"].dtype == np.int64
    assert d.movies["year"].dtype == "Int64"
    assert d.movies["title"].tolist() == ["Toy Story", "The Matrix", "Heat"]
    assert d.movies["year"].tolist() == [1995, 1999, 1995]
    assert d.movies["genres"].tolist()[0] == ["Animation", "Children's", "Comedy"]
    assert d.ratings.dtypes.to_dict() == {
        "user_id": np.int64,
        "movie_id": np.int64,
        "rating": np.float32,
        "timestamp": np.int64,
    }
    assert d.ratings.shape == (5, 4)
    assert d.ratings.iloc[0].tolist() == [1, 1, 5.0, 978300760]
    rep = d.report.to_dict()
    assert rep["files"]["ratings.dat"]["lines_read"] == 5
    assert rep["files"]["ratings.dat"]["rows_kept"] == 5
    assert rep["total_rejected"] == 0
    assert d.source["kind"] == "folder"
    assert set(d.source["files"]) == {"users.dat", "movies.dat", "ratings.dat"}
    assert len(d.source["files"]["ratings.dat"]["sha256"]) == 64


def test_every_rating_defect_is_counted_once(tmp_path: Path) -> None:
    ratings = (
        "1::1::5::100\n"  # kept
        "\n"  # blank
        "   \t \n"  # blank (whitespace only)
        "1::2::3\n"  # wrong field count (too few)
        "1::2::3::4::5\n"  # wrong field count (too many)
        "1,2,3,4\n"  # wrong field count (other separator)
        "x::2::3::100\n"  # non-numeric user id
        "1::2.5::3::100\n"  # non-numeric movie id
        "1::2::good::100\n"  # non-numeric rating
        "1::2::::100\n"  # empty rating
        "1::2::3::yesterday\n"  # non-numeric timestamp
        "1::2::0::100\n"  # rating out of range
        "1::2::7::100\n"  # rating out of range
        "9::2::3::100\n"  # unknown user
        "1::99::3::100\n"  # unknown movie
        "2::3::2::500\n"  # superseded by the later rating below
        "2::3::4::900\n"  # kept (latest)
        "3::3::1::50\n"  # same timestamp as next line: the later line wins
        "3::3::2::50\n"  # kept
        "2::1::4.5::200\n"  # half star kept
    )
    d = load_movielens(str(write_ml(tmp_path / "ml", ratings=ratings)))
    rep = d.report.files["ratings.dat"]
    assert rep.lines_read == 20
    assert rep.rows_kept == 4
    assert rep.rejected == {
        "blank_line": 2,
        "wrong_field_count": 3,
        "non_numeric_id": 2,
        "non_numeric_rating": 2,
        "non_numeric_timestamp": 1,
        "rating_out_of_range": 2,
        "unknown_user": 1,
        "unknown_movie": 1,
        "duplicate_rating": 2,
    }
    assert rep.examples["unknown_user"] == ["9::2::3::100"]
    assert rep.examples["duplicate_rating"] == ["2::3::2::500", "3::3::1::50"]
    assert sorted(rep.examples["wrong_field_count"]) == sorted(["1::2::3", "1::2::3::4::5", "1,2,3,4"])
    kept = d.ratings.sort_values(["user_id", "movie_id"])
    assert kept[["user_id", "movie_id", "rating", "timestamp"]].values.tolist() == [
        [1, 1, 5.0, 100],
        [2, 1, 4.5, 200],
        [2, 3, 4.0, 900],
        [3, 3, 2.0, 50],
    ]
    _assert_accounted(d)


def test_crlf_trailing_whitespace_and_missing_final_newline(tmp_path: Path) -> None:
    users = "1::F::1::10::48067  \r\n2::M::56::16::70072\r\n3::M::25::15::55117"
    ratings = "1::1::5::978300760 \r\n 2::2::4::978298413\t\r\n3::1::1::978300001"
    d = load_movielens(str(write_ml(tmp_path / "ml", users=users, ratings=ratings)))
    assert d.report.total_rejected == 0
    assert d.users["zip"].tolist() == ["48067", "70072", "55117"]
    assert d.ratings["timestamp"].tolist() == [978300760, 978298413, 978300001]
    assert d.report.files["ratings.dat"].lines_read == 3


def test_duplicate_ids_keep_first_and_ratings_still_resolve(tmp_path: Path) -> None:
    users = USERS + "2::F::18::3::12345\n"
    movies = MOVIES + "3::Heat Again (2001)::Drama\n"
    d = load_movielens(str(write_ml(tmp_path / "ml", users=users, movies=movies)))
    assert d.report.files["users.dat"].rejected["duplicate_id"] == 1
    assert d.report.files["movies.dat"].rejected["duplicate_id"] == 1
    assert d.report.files["movies.dat"].examples["duplicate_id"] == ["3::Heat Again (2001)::Drama"]
    assert d.users.set_index("user_id").loc[2, "gender"] == "M"
    assert d.movies.set_index("movie_id").loc[3, "title"] == "Heat"
    assert d.report.files["ratings.dat"].total_rejected == 0
    _assert_accounted(d)


def test_user_attributes_are_free_strings(tmp_path: Path) -> None:
    users = "1::F::under 18::student::48067\n2::::56::16::\nabc::M::1::1::1\n3::M::25::15::55117-1234\n"
    d = load_movielens(str(write_ml(tmp_path / "ml", users=users)))
    u = d.users.set_index("user_id")
    assert u.loc[1, "age"] == "under 18"
    assert u.loc[1, "occupation"] == "student"
    assert u.loc[2, "gender"] == data.UNKNOWN_ATTR
    assert u.loc[2, "zip"] == data.UNKNOWN_ATTR
    assert u.loc[3, "zip"] == "55117-1234"
    assert d.report.files["users.dat"].rejected["non_numeric_id"] == 1


@pytest.mark.parametrize(
    ("raw", "title", "year"),
    [
        ("Toy Story (1995)", "Toy Story", 1995),
        ("Matrix, The (1999)", "The Matrix", 1999),
        ("Shawshank Redemption, The (1994)", "The Shawshank Redemption", 1994),
        ("Title (1995) (V)", "Title (V)", 1995),
        ("Title (a.k.a. X) (1995)", "Title (a.k.a. X)", 1995),
        (
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "The City of Lost Children (Cité des enfants perdus, La)",
            1995,
        ),
        ("Avventura, L' (1960)", "L'Avventura", 1960),
        ("No Year Here", "No Year Here", None),
        ("2001: A Space Odyssey (1968)", "2001: A Space Odyssey", 1968),
        ("Blade Runner 2049", "Blade Runner 2049", None),
        ("  Spaced   Out  (1980)  ", "Spaced Out", 1980),
        ("Weird (0042)", "Weird (0042)", None),
        ("Godfather: Part II, The (1974)", "The Godfather: Part II", 1974),
        ("", "", None),
    ],
)
def test_parse_title(raw: str, title: str, year: int | None) -> None:
    assert parse_title(raw) == (title, year)


@pytest.mark.parametrize(
    ("raw", "genres"),
    [
        ("Action|Sci-Fi", ["Action", "Sci-Fi"]),
        ("", []),
        ("unknown", []),
        ("(no genres listed)", []),
        ("Drama||Comedy| ", ["Drama", "Comedy"]),
    ],
)
def test_parse_genres(raw: str, genres: list[str]) -> None:
    assert parse_genres(raw) == genres


def test_movies_with_odd_titles_and_genres_are_kept_and_noted(tmp_path: Path) -> None:
    movies = (
        MOVIES + "4::Mystery Film::\n5::Other (V) (1990)::Bollywood|Drama\n6::Café Noël, Le (1970)::unknown\n"
    )
    d = load_movielens(str(write_ml(tmp_path / "ml", movies=movies)))
    m = d.movies.set_index("movie_id")
    assert m.loc[4, "genres"] == [] and pd.isna(m.loc[4, "year"])
    assert m.loc[5, "title"] == "Other (V)" and m.loc[5, "year"] == 1990
    assert m.loc[6, "title"] == "Le Café Noël" and m.loc[6, "genres"] == []
    assert m.loc[6, "raw_title"] == "Café Noël, Le (1970)"
    notes = d.report.notes
    assert notes["movies_without_year"] == 1
    assert notes["movies_without_genres"] == 2
    assert notes["non_standard_genres"] == {"Bollywood": 1}
    assert notes["movies_without_ratings"] == 3


def test_latin1_and_utf8_files_both_decode(tmp_path: Path) -> None:
    movies = MOVIES + "4::Misérables, Les (1995)::Drama\n"
    latin = load_movielens(str(write_ml(tmp_path / "a", movies=movies, encoding="latin-1")))
    utf8 = load_movielens(str(write_ml(tmp_path / "b", movies=movies, encoding="utf-8")))
    assert latin.movies["title"].iloc[3] == utf8.movies["title"].iloc[3] == "Les Misérables"
    assert latin.report.files["movies.dat"].encoding == "latin-1"
    assert utf8.report.files["movies.dat"].encoding == "utf-8"


def test_utf8_byte_order_mark_is_not_part_of_the_first_id(tmp_path: Path) -> None:
    folder = write_ml(tmp_path / "ml")
    (folder / "users.dat").write_bytes(b"\xef\xbb\xbf" + USERS.encode())
    d = load_movielens(str(folder))
    assert d.users["user_id"].tolist() == [1, 2, 3]
    assert d.report.total_rejected == 0


def test_examples_are_capped_and_truncated(tmp_path: Path) -> None:
    long_line = "1::1::" + "9" * 500 + "::100"
    ratings = RATINGS + "\n".join(["bad"] * 12) + "\n" + long_line + "\n"
    d = load_movielens(str(write_ml(tmp_path / "ml", ratings=ratings)))
    rep = d.report.files["ratings.dat"]
    assert rep.rejected["wrong_field_count"] == 12
    assert rep.examples["wrong_field_count"] == ["bad"] * data.MAX_EXAMPLES
    (example,) = rep.examples["non_numeric_rating"]
    assert len(example) == data_report.EXAMPLE_CHARS + 3 and example.endswith("...")


def test_wrong_format_is_a_clear_error_not_an_empty_dataset(tmp_path: Path) -> None:
    csv = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
    with pytest.raises(MovieLensError, match=r"ratings\.dat .* no usable rows.*wrong_field_count"):
        load_movielens(str(write_ml(tmp_path / "ml", ratings=csv)))


def test_empty_ratings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MovieLensError, match=r"ratings\.dat"):
        load_movielens(str(write_ml(tmp_path / "ml", ratings="")))


def test_python_fallback_agrees_with_pyarrow_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If pyarrow refuses the bytes (e.g. a huge line), the slow exact path gives the same answer."""
    ratings = RATINGS + "\n \r\n1::2\nx::1::1::1\n1::1::9::1\r\n2::2::4::978298413\n"
    folder = write_ml(tmp_path / "ml", ratings=ratings)
    fast = load_movielens(str(folder))

    def refuse(raw: bytes, n_fields: int) -> None:
        raise pa.ArrowInvalid("straddling object straddles two block boundaries")

    monkeypatch.setattr(data_split, "_split", refuse)
    slow = load_movielens(str(folder))
    assert (
        slow.report.to_dict()["files"]["ratings.dat"]["rejected"]
        == fast.report.to_dict()["files"]["ratings.dat"]["rejected"]
    )
    assert slow.report.files["ratings.dat"].lines_read == fast.report.files["ratings.dat"].lines_read == 11
    pd.testing.assert_frame_equal(slow.ratings, fast.ratings)
    pd.testing.assert_frame_equal(slow.movies, fast.movies)
