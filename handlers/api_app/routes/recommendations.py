"""POST /recommendations: recommend from liked movies (optional genre filter and exclusions)."""

from fastapi import APIRouter

from handlers.api_app.deps import LiveRunDep, RecommenderDep, answerable_from_memory
from handlers.api_app.offload import run_blocking
from handlers.api_app.routes._responses import STANDARD
from shared.schemas import Recommendations, RecommendRequest

router = APIRouter(tags=["recommendations"], responses=STANDARD)


@router.post("/recommendations", response_model=Recommendations)
async def recommend(body: RecommendRequest, rec: RecommenderDep, live: LiveRunDep) -> Recommendations:
    return await run_blocking(
        rec.for_liked,
        body.liked,
        body.k,
        body.genres,
        body.exclude,
        body.diversity,
        inline=answerable_from_memory(live),
    )
