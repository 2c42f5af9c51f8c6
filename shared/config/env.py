"""Which environment variable is which setting: GRAPHREC_ + the upper-case field name, or the field's
`validation_alias`; and the names settings had before that prefix, still read (deprecated).

Why a prefix: unprefixed names collide with variables other libraries read themselves (pymilvus reads
MILVUS_URI at import). Why an alias for a few fields: other software reads that very variable
(AWS_ENDPOINT_URL: boto3, POWERTOOLS_SERVICE_NAME: Powertools, AWS_LAMBDA_FUNCTION_NAME: set by Lambda), so
the setting keeps its standard name.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource

from shared.config.log import get_logger
from shared.config.names import ENV_PREFIX

logger = get_logger(__name__)


def env_var(field: str, settings_cls: type[BaseSettings]) -> str:
    """The environment variable of a settings field: its standard name, or GRAPHREC_<FIELD>. (The class is
    an argument, not imported: settings.py imports this module, and offers the Settings-default wrapper.)"""
    alias = settings_cls.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else ENV_PREFIX + field.upper()


def renamed_variables(cls: type[BaseSettings]) -> dict[str, str]:
    """Old (unprefixed) name -> GRAPHREC_ name, for every field that has a GRAPHREC_ name."""
    return {name.upper(): env_var(name, cls) for name, f in cls.model_fields.items() if f.validation_alias is None}


_warned: set[str] = set()


class RenamedVariables(EnvSettingsSource):
    """The settings' names from before the GRAPHREC_ prefix (MILVUS_URI, ...), still read because deployed
    stacks and shells set them: parsed exactly as the GRAPHREC_ ones, used only for a field whose GRAPHREC_
    variable is not set, and each logged once per process as deprecated. Generic over the fields, so a field
    added later gets its GRAPHREC_ name and this fallback without listing it anywhere."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="", case_sensitive=False)

    def __call__(self) -> dict[str, Any]:
        renamed = renamed_variables(self.settings_cls)
        present = {k.upper() for k in os.environ}
        values = {
            name: value
            for name, value in super().__call__().items()
            if name.upper() in renamed and renamed[name.upper()] not in present
        }
        stale = sorted(old for old, new in renamed.items() if old in present and old not in _warned)
        _warned.update(stale)
        if stale:
            for old in stale:
                new = renamed[old]
                if new in present:
                    logger.warning(f"{old} is ignored: {new} is set", extra={"variable": old, "renamed_to": new})
                else:
                    logger.warning(
                        f"{old} is deprecated: rename it {new}", extra={"variable": old, "renamed_to": new}
                    )
        return values
