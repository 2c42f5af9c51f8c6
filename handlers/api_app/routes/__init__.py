"""One router per resource; `ALL` is what create_app mounts (me before users: /users/me/... must not be
read as /users/{user_id}/...)."""

from handlers.api_app.routes import health, me, movies, recommendations, users, web

ALL = [health.router, movies.router, recommendations.router, me.router, users.router, web.router]
