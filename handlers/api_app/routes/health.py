"""GET /health: live run, row counts, store reachability (503 when a store is down or nothing is live)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from handlers.api_app.deps import StoresOrErrorsDep
from handlers.api_app.health_check import check
from shared.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(stores: StoresOrErrorsDep) -> JSONResponse:
    report = check(*stores)
    return JSONResponse(report.model_dump(), status_code=200 if report.status == "ok" else 503)
