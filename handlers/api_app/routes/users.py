"""GET /users/{user_id}/recommendations: the user's stored history plus, for a signed-in person, their newer
events (only they may read it: people.py); seen movies excluded."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from handlers.api_app import people
from handlers.api_app.deps import PeopleDep, RecommenderDep, SettingsDep
from handlers.api_app.identity import OptionalCallerDep
from handlers.api_app.offload import run_blocking
from handlers.api_app.routes._responses import NOT_FOUND, PEOPLE, STANDARD
from shared.schemas import INT64_MAX, MAX_K, Recommendations

router = APIRouter(tags=["users"], responses={**STANDARD, **NOT_FOUND, 401: PEOPLE[401], 403: PEOPLE[403]})


@router.get("/users/{user_id}/recommendations", response_model=Recommendations)
async def for_user(
    user_id: Annotated[int, Path(ge=0, le=INT64_MAX)],
    rec: RecommenderDep,
    store: PeopleDep,
    caller: OptionalCallerDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    diversity: Annotated[float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = None,
) -> Recommendations:
    return await run_blocking(people.recommend_for_user, store, rec, caller, user_id, k, diversity, settings)
