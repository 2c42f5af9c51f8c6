"""API Lambda entry point (API Gateway HTTP API, payload 2.0) - and `uvicorn handlers.api:app` locally.

The app is built at import (once per container); store clients are created on the first request and reused.
"""

from mangum import Mangum

from handlers.api_app import create_app

app = create_app()
handler = Mangum(app, lifespan="off")
