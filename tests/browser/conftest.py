"""Browser tests reuse the API tests' module-scoped live run (real MariaDB + Milvus Lite)."""

from tests.integration.api.conftest import _module_live, _module_stores, live  # noqa: F401
