"""GET /users/{user_id}/recommendations: from the user's stored history, seen movies excluded."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from handlers.api_app.deps import RecommenderDep
from handlers.api_app.offload import run_blocking
from handlers.api_app.routes._responses import NOT_FOUND, STANDARD
from shared.schemas import INT64_MAX, MAX_K, Recommendations

router = APIRouter(tags=["users"], responses={**STANDARD, **NOT_FOUND})


@router.get("/users/{user_id}/recommendations", response_model=Recommendations)
async def for_user(
    user_id: Annotated[int, Path(ge=0, le=INT64_MAX)],
    rec: RecommenderDep,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    diversity: Annotated[float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = None,
) -> Recommendations:
    return await run_blocking(rec.for_user, user_id, k, diversity)
