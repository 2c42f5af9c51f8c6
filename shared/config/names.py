"""Names every configuration module agrees on, in a module that imports nothing of ours (so settings, the
variable mapping and logging can all use them without an import circle)."""

from __future__ import annotations

ENV_PREFIX = "GRAPHREC_"
LIVE_ALIAS = "movies_live"  # the default of Settings.milvus_alias (GRAPHREC_MILVUS_ALIAS)
