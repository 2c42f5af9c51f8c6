"""Small MovieLens-format fixtures written byte-exactly (the reader must cope with what real files hold)."""

from __future__ import annotations

from pathlib import Path

USERS = "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"
MOVIES = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Matrix, The (1999)::Action|Sci-Fi|Thriller\n3::Heat (1995)::Action|Crime|Thriller\n"
RATINGS = (
    "1::1::5::978300760\n1::2::3::978302109\n2::2::4::978298413\n2::3::2::978299000\n3::1::1::978300001\n"
)


def write_ml(
    folder: Path, users: str = USERS, movies: str = MOVIES, ratings: str = RATINGS, encoding: str = "latin-1"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("users.dat", users), ("movies.dat", movies), ("ratings.dat", ratings)):
        (folder / name).write_bytes(text.encode(encoding))
    return folder
