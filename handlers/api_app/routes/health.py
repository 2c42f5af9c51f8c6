"""GET /health: live run, row counts, store reachability (503 + Retry-After when a store is down or
nothing is live). Always the Health body, also when a store hangs past the request deadline."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from handlers.api_app.deps import StoresOrErrorsDep
from handlers.api_app.errors import RETRY_AFTER_SECONDS, Unavailable
from handlers.api_app.health_check import check
from handlers.api_app.offload import run_blocking
from shared.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(stores: StoresOrErrorsDep) -> JSONResponse:
    try:
        report = await run_blocking(check, *stores)
    except Unavailable as exc:
        report = Health(status="unavailable", detail=f"The health check did not finish in time: {exc.detail}")
    if report.status == "ok":
        return JSONResponse(report.model_dump())
    return JSONResponse(report.model_dump(), status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})
