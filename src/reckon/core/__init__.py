"""reckon.core: a type-agnostic, deduplicating, tiered calculation cache.

Ask an :class:`Engine` for the value of a :class:`RequestId` at a :class:`CachingLevel`, giving it
the function that computes the value. The engine answers from memory, from its store, from a
computation already running for the same id (in any thread or event loop), or by computing once.
Every computation leaves a :class:`TaskRecord` in the engine's :class:`Introspector`.
See ``docs/core.md``.
"""

from __future__ import annotations

from reckon.core.codec import Codec, PickleCodec, estimate_size
from reckon.core.defaults import default_engine, set_default_engine
from reckon.core.engine import Engine, current_task_id, on_engine_created
from reckon.core.ids import RequestId
from reckon.core.levels import CachingLevel
from reckon.core.memory import MemoryTier
from reckon.core.stores import LocalStore, Store, StoreUsage, open_store
from reckon.core.tasks import (
    Introspector,
    Outcome,
    Subscription,
    TaskEvent,
    TaskRecord,
    TaskState,
)

__all__ = [
    "CachingLevel",
    "Codec",
    "Engine",
    "Introspector",
    "LocalStore",
    "MemoryTier",
    "Outcome",
    "PickleCodec",
    "RequestId",
    "Store",
    "StoreUsage",
    "Subscription",
    "TaskEvent",
    "TaskRecord",
    "TaskState",
    "current_task_id",
    "default_engine",
    "estimate_size",
    "on_engine_created",
    "open_store",
    "set_default_engine",
]
