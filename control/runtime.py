"""Where the database is: the configured server, or the embedded one (started on demand)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from control.settings import Settings
from control.store.pgserver import EmbeddedPostgres, default_data_dir


@dataclass
class Database:
    url: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False

    def describe(self) -> str:
        if self.embedded is None:
            return "external (DATABASE_URL)"
        return f"embedded PostgreSQL at {self.embedded.data_dir}"

    def stop_if_started(self) -> None:
        if self.embedded is not None and self.started_here:
            self.embedded.stop()


def open_database(settings: Settings) -> Database:
    """Use database.url / DATABASE_URL when set; else start (or reuse) the embedded server."""
    if settings.database_url:
        return Database(settings.database_url)
    data_dir = Path(settings.database["data_dir"]) if settings.database["data_dir"] else default_data_dir()
    pg = EmbeddedPostgres(data_dir, settings.database["system_user"])
    was_running = pg.is_initialized() and pg.is_running()
    pg.start()
    return Database(pg.url, pg, started_here=not was_running)
