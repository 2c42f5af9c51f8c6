"""Browser tests reuse the API tests' module-scoped live run (real MariaDB + Milvus), with Milvus as a
network server, the topology of the demo (scripts/demo.sh) and of AWS."""

import pytest

from tests.integration.api.conftest import _module_live, _module_stores, live  # noqa: F401


@pytest.fixture(scope="module")
def milvus_backend() -> str:
    return "server"
