"""GET /movies/{id} documents `details` (plot, director, cast, runtime, poster, source; each nullable)."""

from __future__ import annotations

from handlers.api_app import create_app
from shared.schemas import MovieDetails, MovieWithDetails


def test_openapi_documents_the_details_of_a_movie() -> None:
    spec = create_app().openapi()
    ok = spec["paths"]["/movies/{movie_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/MovieWithDetails"}
    schemas = spec["components"]["schemas"]
    movie = schemas["MovieWithDetails"]["properties"]
    assert {"movie_id", "title", "year", "genres", "details"} <= set(movie)
    details = schemas["MovieDetails"]["properties"]
    assert set(details) == {"plot", "director", "cast", "runtime_minutes", "poster_url", "source"}
    assert all(any(t.get("type") == "null" for t in p["anyOf"]) for p in details.values())  # all nullable
    assert all(p.get("description") for p in details.values())


def test_unknown_details_are_all_null() -> None:
    body = MovieWithDetails(movie_id=1, title="Heat", year=1995, genres=["Action"]).model_dump()
    assert body["details"] == dict.fromkeys(MovieDetails.model_fields)
