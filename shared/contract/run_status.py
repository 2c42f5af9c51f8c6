"""The lifecycle of a run in MySQL `runs.status` (a StrEnum: members compare equal to the stored strings).

loading -> ready -> live -> retired; any step may end in failed. Only ready or retired runs go live, and
only through MetadataStore.switch_live (which retires the old live run in the same transaction).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["GO_LIVE_FROM", "RUN_STATUSES", "RunStatus"]


class RunStatus(StrEnum):
    LOADING = "loading"
    READY = "ready"
    LIVE = "live"
    RETIRED = "retired"
    FAILED = "failed"


RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)
GO_LIVE_FROM = (RunStatus.READY, RunStatus.RETIRED)  # the only statuses switch_live accepts
