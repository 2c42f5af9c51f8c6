"""Signed-in people: GET /auth/config, POST /auth/dev/sign-in, POST /auth/sign-out, GET|DELETE /users/me, POST /events,
GET /users/me/events, GET /users/me/recommendations. The work is in people.py (worker threads)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from handlers.api_app import people
from handlers.api_app.deps import LiveRunDep, PeopleDep, RecommenderDep, SettingsDep
from handlers.api_app.errors import NoLiveRun
from handlers.api_app.identity import Caller, CallerDep, issue_dev_token
from handlers.api_app.offload import run_blocking
from handlers.api_app.routes._responses import NOT_FOUND, PEOPLE, STANDARD
from shared import people_schemas as ps
from shared.schemas import MAX_K, Recommendations

router = APIRouter(tags=["people"], responses={**STANDARD, **PEOPLE})
Diversity = Annotated[float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False)]


@router.get("/auth/config", response_model=ps.AuthConfig)
async def auth_config(settings: SettingsDep) -> ps.AuthConfig:
    if settings.auth_mode == "dev":
        return ps.AuthConfig(mode="dev")
    return ps.AuthConfig(mode="cognito", hosted_ui_url=settings.cognito_hosted_ui_url, client_id=settings.cognito_client_id)


@router.post("/auth/dev/sign-in", response_model=ps.DevToken, responses=NOT_FOUND)
async def dev_sign_in(body: ps.DevSignIn, store: PeopleDep, live: LiveRunDep, settings: SettingsDep) -> ps.DevToken:
    people.check_dev_mode(settings)
    caller = Caller(subject=f"dev:{body.name.lower()}", name=body.name)  # DevSignIn normalised the name

    def run_id() -> str | None:
        try:
            return live.run_id
        except NoLiveRun:
            return None

    profile = await run_blocking(lambda: people.dev_sign_in(store, caller, body.claim_user_id, run_id()))
    return ps.DevToken(token=issue_dev_token(settings, caller), user_id=profile.user_id, name=caller.name or "")


@router.get("/users/me", response_model=ps.Me)
async def get_me(caller: CallerDep, store: PeopleDep) -> ps.Me:
    return await run_blocking(people.me, store, caller)


@router.delete("/users/me", status_code=204, response_class=Response)
async def forget_me(caller: CallerDep, store: PeopleDep) -> Response:
    await run_blocking(people.forget, store, caller)
    return Response(status_code=204)


@router.post("/auth/sign-out", status_code=204, response_class=Response)
async def sign_out(caller: CallerDep, store: PeopleDep) -> Response:
    """Server-side sign-out: every token of this person issued until now is refused from here on (401)."""
    await run_blocking(people.sign_out, store, caller)
    return Response(status_code=204)


@router.post("/events", response_model=ps.EventsAccepted)
async def post_events(
    body: ps.EventsRequest, caller: CallerDep, store: PeopleDep, rec: RecommenderDep, settings: SettingsDep
) -> ps.EventsAccepted:
    return await run_blocking(people.record_events, store, rec, caller, body, settings)


@router.get("/users/me/events", response_model=ps.EventPage)
async def my_events(
    caller: CallerDep,
    store: PeopleDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, description="`next_before` of the previous page")] = None,
) -> ps.EventPage:
    return await run_blocking(people.events_page, store, caller, limit, before)


@router.get("/users/me/recommendations", response_model=Recommendations)
async def my_recommendations(
    caller: CallerDep,
    store: PeopleDep,
    rec: RecommenderDep,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    diversity: Diversity = None,
) -> Recommendations:
    return await run_blocking(people.recommend_for_me, store, rec, caller, k, diversity, settings)
