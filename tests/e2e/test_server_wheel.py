"""The server's wheel carries what `mittr` reads at run time: the config files (settings, plans,
inbound presets), migrations and SQL. Without them an installed `mittr serve` could not start."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_the_wheel_carries_config_migrations_and_sql_and_settings_load_from_it(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=240)
    [wheel] = tmp_path.glob("mittr-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("control/config/default.toml", "control/config/plans.toml", "control/config/inbound_presets.toml",
                   "control/store/migrations/001_init.sql", "control/store/sql/engine.sql",
                   "api/dashboard/static/index.html", "api/dashboard/static/app.js",
                   "api/dashboard/static/pages/overview.js", "api/portal_ui/static/index.html",
                   "api/portal_ui/static/portal.js", "api/portal_ui/static/portal.css"):
        assert needed in names, needed
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=120)
    # Settings need only the standard library: load them from the installed copy, outside the checkout.
    out = subprocess.run([str(python), "-c", "from control.settings import load_settings, DEFAULT_CONFIG;"
                          "s = load_settings(); print(DEFAULT_CONFIG, s.server['port'])"],
                         check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60, env={})
    assert "site-packages/control/config/default.toml 8400" in out.stdout, out.stdout
