"""Catalog: the records, in the service's own SQLite database."""

from __future__ import annotations

from dataclasses import dataclass

from vinyl_api.vinyl import catalog_pb2 as pb
from vinyl_api.vinyl.catalog_reckon import Catalog

from reckon.errors import ServiceCallError
from reckon.service import CallContext, Query, Service

RECORDS = [
    ("kob", "Miles Davis", "Kind of Blue", 1959, "jazz", 3200),
    ("bt", "John Coltrane", "Blue Train", 1957, "jazz", 2900),
    ("als", "John Coltrane", "A Love Supreme", 1965, "jazz", 3100),
    ("ar", "The Beatles", "Abbey Road", 1969, "rock", 2800),
    ("dsm", "Pink Floyd", "The Dark Side of the Moon", 1973, "rock", 3000),
    ("ws", "Stevie Wonder", "Songs in the Key of Life", 1976, "soul", 3500),
]


@dataclass(frozen=True)
class RecordRow:
    id: str
    artist: str
    title: str
    year: int
    genre: str
    price_cents: int


COLUMNS = "id, artist, title, year, genre, price_cents"
BY_ID = Query(RecordRow, f"SELECT {COLUMNS} FROM records WHERE id = ?")
ALL = Query(RecordRow, f"SELECT {COLUMNS} FROM records ORDER BY year, id")
BY_GENRE = Query(RecordRow, f"SELECT {COLUMNS} FROM records WHERE genre = ? ORDER BY year, id")


def _record(row: RecordRow) -> pb.Record:
    return pb.Record(
        id=row.id,
        artist=row.artist,
        title=row.title,
        year=row.year,
        genre=row.genre,
        price_cents=row.price_cents,
    )


class CatalogService(Service):
    definition = Catalog
    migrations = (
        "CREATE TABLE records (id TEXT PRIMARY KEY, artist TEXT NOT NULL, title TEXT NOT NULL,"
        " year INTEGER NOT NULL, genre TEXT NOT NULL, price_cents INTEGER NOT NULL)",
        "INSERT INTO records VALUES "
        + ", ".join(f"('{r[0]}', '{r[1]}', '{r[2]}', {r[3]}, '{r[4]}', {r[5]})" for r in RECORDS),
    )

    async def ready(self) -> None:
        count = len(self.ctx.db.fetch(ALL))
        self.ctx.log.info("catalog open", records=count)

    async def GetRecord(self, request: pb.RecordId, ctx: CallContext) -> pb.Record:
        row = self.ctx.db.fetch_one(BY_ID, (request.id,))
        if row is None:
            raise ServiceCallError(f"no record {request.id!r} in the catalog", "NOT_FOUND")
        return _record(row)

    async def ListRecords(self, request: pb.ListRecordsRequest, ctx: CallContext) -> pb.RecordList:
        rows = (
            self.ctx.db.fetch(BY_GENRE, (request.genre,))
            if request.genre
            else self.ctx.db.fetch(ALL)
        )
        return pb.RecordList(records=[_record(r) for r in rows])
