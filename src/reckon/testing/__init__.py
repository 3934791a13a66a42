"""Deterministic tests for reckon services.

:class:`Harness` runs a whole unit in one process on a virtual clock (``asyncio.sleep(3600)``
returns at once, an hour later), with seeded randomness and strict message copies, and records
every call in a trace that is byte-identical from run to run. :func:`mock` builds a mock of any
service from its definition, for unit tests of one service at a time.
"""

from reckon.testing._harness import Harness
from reckon.testing._loop import VirtualTimeLoop, run_virtual
from reckon.testing._mocks import MockMethod, MockService, mock
from reckon.testing._trace import Trace

__all__ = [
    "Harness",
    "MockMethod",
    "MockService",
    "Trace",
    "VirtualTimeLoop",
    "mock",
    "run_virtual",
]
