"""Run a whole unit in one process, deterministically: virtual time, seeded randomness, a trace.

Every service is placed in-process (child processes and remote addresses become in-process
implementations or mocks), messages are copied through their wire form (strict mode, on by
default), the loop runs on a virtual clock, and every call lands in :attr:`Harness.trace`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from reckon.errors import DeploymentError
from reckon.service.definition import load_definition
from reckon.service.deploy import Deployment, ServiceSpec
from reckon.service.kernel import Unit
from reckon.service.logs import MemorySink
from reckon.testing._loop import run_virtual
from reckon.testing._mocks import MockService
from reckon.testing._trace import Trace

T = TypeVar("T")


class Harness:
    """``Harness(deployment).run(scenario)`` runs ``await scenario(unit)`` deterministically.

    ``mocks`` maps service names to implementation objects (e.g. :func:`reckon.testing.mock`);
    ``isolate="catalog"`` mocks every service but ``catalog``. Mocks are in :attr:`mocks`.
    """

    def __init__(
        self,
        deployment: Deployment | Mapping[str, Any],
        *,
        seed: int = 0,
        strict: bool = True,
        mocks: Mapping[str, Any] | None = None,
        isolate: str | None = None,
        root: str | Path = ".",
    ) -> None:
        if not isinstance(deployment, Deployment):
            deployment = Deployment.from_dict(dict(deployment), root=root)
        deployment.install_path()
        if isolate is not None and isolate not in deployment.services:
            raise DeploymentError(f"isolate={isolate!r}: no such service in the deployment")
        self.seed = seed
        self.strict = strict
        self.mocks: dict[str, Any] = dict(mocks or {})
        services: dict[str, ServiceSpec] = {}
        for name, spec in deployment.services.items():
            if isolate is not None and name != isolate and name not in self.mocks:
                self.mocks[name] = MockService(load_definition(spec.definition, name))
            if name in self.mocks:
                services[name] = replace(
                    spec, placement="inprocess", implementation=None, command=None, requires=()
                )
            elif spec.implementation is None:
                raise DeploymentError(
                    f"service {name!r} has no Python implementation to run in-process; "
                    f"pass a mock for it: mocks={{{name!r}: reckon.testing.mock(...)}}"
                )
            else:
                services[name] = replace(spec, placement="inprocess")
        # A scratch data dir per run (the unit's temp dir): every run starts from empty databases.
        self.deployment = replace(deployment, services=services, log="test", data_dir=None)
        self.trace = Trace()
        self.sink = MemorySink()

    def run(self, scenario: Callable[[Unit], Awaitable[T]]) -> T:
        """Start the unit on a virtual-time loop, run the scenario, stop the unit."""

        async def main() -> T:
            random.seed(self.seed)
            for spec in self.deployment.services.values():
                # Nothing leaves the process: no servers, no ports.
                assert spec.placement == "inprocess"
            services = {
                n: replace(s, expose=False, connect=False, port=0)
                for n, s in self.deployment.services.items()
            }
            unit = Unit(
                replace(self.deployment, services=services),
                tracer=self.trace,
                sink=self.sink,
                strict=self.strict,
                seed=self.seed,
                implementations=self.mocks,
            )
            async with unit:
                return await scenario(unit)

        result: T = run_virtual(main())
        return result

    @property
    def logs(self) -> list[str]:
        """Log records of the run as JSON lines, in emission order (stable across runs)."""
        return self.sink.lines()

    def trace_text(self) -> str:
        return self.trace.text()
