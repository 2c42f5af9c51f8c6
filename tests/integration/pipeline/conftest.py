"""The pipeline reaches MySQL the way the template configures it (TLS, VERIFY_IDENTITY): the TLS-only MariaDB."""

from tests.integration.mysql_tls.conftest import tls_database, tls_mariadb  # noqa: F401 - fixtures
