"""Helpers shared by the service tests (deployment dicts over the rtest services)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# Chosen once by the pytest process and inherited by the subprocesses tests start.
GEN_ROOT = Path(
    os.environ.setdefault(
        "RECKON_SVC_TEST_GEN",
        str(Path(os.environ.get("TMPDIR", "/tmp")) / f"reckon-svc-tests-{os.getpid()}"),
    )
)


def make_deployment(
    services: dict[str, dict[str, Any]], *, tmp_path: Path | None = None, **unit: Any
) -> dict[str, Any]:
    """A deployment dict over the rtest services; ``unit`` adds [unit] keys."""
    base: dict[str, Any] = {
        "name": "rtest",
        "path": [str(GEN_ROOT), str(HERE)],
        "log": "off",
        "pulse": 0.1,
    }
    if tmp_path is not None:
        base["data_dir"] = str(tmp_path / "data")
    base.update(unit)
    return {"unit": base, "services": services}


CATALOG = {
    "definition": "rtest_gen.rtest_reckon:Catalog",
    "implementation": "svc_impls:CatalogService",
}
STOCK = {"definition": "rtest_gen.rtest_reckon:Stock", "implementation": "svc_impls:StockService"}


def two_services(placement: str, **catalog: Any) -> dict[str, dict[str, Any]]:
    return {
        "catalog": {**CATALOG, "placement": placement, **catalog},
        "stock": {**STOCK, "placement": placement},
    }
