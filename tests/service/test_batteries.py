"""Per-service database (migrations, typed queries), file area, logging modes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from rtest_gen import rtest_pb2 as pb
from rtest_gen.rtest_reckon import Catalog, Stock
from svc_helpers import make_deployment, two_services

from reckon.errors import DatabaseError, PathEscapeError
from reckon.service import Database, Deployment, FileArea, JsonSink, Query, ServiceLogger, Unit


@dataclass(frozen=True)
class Row:
    id: int
    name: str


def test_migrations_apply_once_and_in_order(tmp_path: Path) -> None:
    migrations = ["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"]
    db = Database(tmp_path / "db.sqlite3", migrations)
    assert db.version == 1
    db.execute("INSERT INTO t VALUES (?, ?)", (1, "one"))
    db.close()
    migrations.append("ALTER TABLE t ADD COLUMN extra TEXT; INSERT INTO t VALUES (2, 'two', 'x')")
    db = Database(tmp_path / "db.sqlite3", migrations)
    assert db.version == 2
    assert db.fetch(Query(Row, "SELECT id, name FROM t ORDER BY id")) == [
        Row(1, "one"),
        Row(2, "two"),
    ]
    db.close()
    with pytest.raises(DatabaseError, match="newer version"):
        Database(tmp_path / "db.sqlite3", migrations[:1])
    with pytest.raises(DatabaseError, match="migration 3 failed"):
        Database(tmp_path / "db.sqlite3", [*migrations, "CREATE TABLE t (x)"])
    # A failed migration leaves the database at the last good one.
    db = Database(tmp_path / "db.sqlite3", migrations)
    assert db.version == 2


def test_typed_queries_check_columns_against_the_row_type(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3", ["CREATE TABLE t (id INTEGER, name TEXT)"])
    db.execute("INSERT INTO t VALUES (1, 'a')")
    assert db.fetch_one(Query(Row, "SELECT id, name FROM t WHERE id = ?"), (1,)) == Row(1, "a")
    assert db.fetch_one(Query(Row, "SELECT id, name FROM t WHERE id = ?"), (9,)) is None
    with pytest.raises(DatabaseError, match=r"selects columns \('name', 'id'\)"):
        db.fetch(Query(Row, "SELECT name, id FROM t"))
    with pytest.raises(DatabaseError, match="no such column"):
        db.fetch(Query(Row, "SELECT id, nope FROM t"))
    with pytest.raises(ZeroDivisionError), db.transaction():
        db.execute("INSERT INTO t VALUES (2, 'b')")
        raise ZeroDivisionError
    assert len(db.fetch(Query(Row, "SELECT id, name FROM t"))) == 1  # rolled back


def test_file_area_refuses_escaping_paths(tmp_path: Path) -> None:
    area = FileArea(tmp_path / "files")
    area.write_text("covers/a.txt", "hello")
    assert area.read_text("covers/a.txt") == "hello"
    assert area.list() == ["covers/a.txt"]
    (tmp_path / "secret").write_text("no")
    (tmp_path / "files" / "link").symlink_to(tmp_path / "secret")
    for bad in ("../secret", "/etc/passwd", "covers/../../secret", "link"):
        with pytest.raises(PathEscapeError, match="outside this service's file area"):
            area.read_text(bad)


@pytest.mark.parametrize("placement", ["inprocess", "process"])
async def test_each_service_owns_its_database_and_files(placement: str, tmp_path: Path) -> None:
    dep = Deployment.from_dict(make_deployment(two_services(placement), tmp_path=tmp_path))
    async with Unit(dep) as unit:
        assert (await unit.locate(Stock).Count(pb.Key(id="a"))).count == 3
        assert (await unit.locate(Catalog).Get(pb.Key(id="a"))).count == 3
    data = tmp_path / "data"
    assert (data / "stock" / "db.sqlite3").exists()
    assert not (data / "catalog" / "db.sqlite3").exists()  # catalog never opened one
    # The data outlives the unit; a restart keeps it and does not migrate twice.
    async with Unit(dep) as unit:
        assert (await unit.locate(Stock).Count(pb.Key(id="a"))).count == 3


def test_json_log_lines() -> None:
    out = io.StringIO()
    log = ServiceLogger("catalog", JsonSink(out), lambda: 1.5)
    log.info("sold", record="a", copies=2)
    log.error("oops", err=ValueError("x"))
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert lines == [
        {
            "time": 1.5,
            "service": "catalog",
            "level": "info",
            "event": "sold",
            "record": "a",
            "copies": 2,
        },
        {"time": 1.5, "service": "catalog", "level": "error", "event": "oops", "err": "x"},
    ]


def test_dev_and_json_modes_of_a_running_unit(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from svc_helpers import make_deployment, two_services\n"
        "from reckon.service import Deployment, Unit\n"
        "async def main():\n"
        "    dep = make_deployment(two_services('inprocess'), log=sys.argv[1])\n"
        "    async with Unit(Deployment.from_dict(dep)):\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    here = Path(__file__).parent
    env = {"PYTHONPATH": f"{here}", "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    import os

    env["RECKON_SVC_TEST_GEN"] = os.environ["RECKON_SVC_TEST_GEN"]
    js = subprocess.run(
        [sys.executable, "-c", code, "json"], capture_output=True, text=True, env=env, cwd=here
    )
    assert js.returncode == 0, js.stderr
    records = [json.loads(x) for x in js.stderr.splitlines() if x.startswith("{")]
    assert [(r["service"], r["event"]) for r in records if r["level"] == "info"] == [
        ("stock", "stock ready"),
        ("catalog", "catalog ready"),
        ("reckon", "unit ready"),
        ("reckon", "unit stopped"),
    ]
    dev = subprocess.run(
        [sys.executable, "-c", code, "dev"], capture_output=True, text=True, env=env, cwd=here
    )
    assert dev.returncode == 0, dev.stderr
    assert "catalog ready" in dev.stderr and not dev.stderr.lstrip().startswith("{")


async def test_service_methods_memoized_with_reckon_memo(tmp_path: Path) -> None:
    from svc_impls import MemoStock

    services = two_services("inprocess")
    services["stock"]["implementation"] = "svc_impls:MemoStock"
    MemoStock.computed.clear()
    async with Unit(Deployment.from_dict(make_deployment(services, tmp_path=tmp_path))) as unit:
        stock = unit.locate(Stock)
        first = await stock.Count(pb.Key(id="zz"))
        again = await stock.Count(pb.Key(id="zz"))
        other = await stock.Count(pb.Key(id="yy"))
    assert MemoStock.computed.count("zz") == 1 and MemoStock.computed.count("yy") == 1
    assert first == again and other.count == first.count + 1
