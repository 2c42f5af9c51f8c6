"""One router per resource; `ALL` is what create_app mounts."""

from handlers.api_app.routes import health, movies, recommendations, users, web

ALL = [health.router, movies.router, recommendations.router, users.router, web.router]
