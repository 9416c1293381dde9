# A private PostgreSQL cluster for the test session, and a `db_url` fixture over both databases.
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"PostgreSQL's {name} is missing: apt-get install postgresql (scripts/setup)")
    return path


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class PgCluster:
    """initdb + pg_ctl in a temporary folder, on a free 127.0.0.1 port, trust auth.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` OS user;
    its folder is made with tempfile under /tmp (pytest's tmp_path is private to root).
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tillbox-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        self._n = 0

    def start(self) -> None:
        self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=60"
        )
        self._run(
            _bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        self._n += 1
        name = f"relay_{os.getpid()}_{self._n}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def _run(self, *argv: str) -> None:
        out = subprocess.run([*self._as, *argv], capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            log = self.dir / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {out.stderr}{out.stdout}{tail}")


_cluster: PgCluster | None = None


@pytest.fixture(scope="session", name="pg_cluster")
def pg_cluster_fixture(request: pytest.FixtureRequest) -> PgCluster:
    """One cluster for the whole run, however many test modules import this fixture."""
    global _cluster
    if _cluster is None:
        cluster = PgCluster()
        try:
            cluster.start()
        except BaseException:
            shutil.rmtree(cluster.dir, ignore_errors=True)
            raise
        _cluster = cluster
        request.config.add_cleanup(_stop_cluster)
    return _cluster


def _stop_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


@pytest.fixture(params=["sqlite", "postgresql"], name="db_url")
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh relay database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.sqlite'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        yield cluster.new_database()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
