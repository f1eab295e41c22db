"""A real PostgreSQL for tests: a throw-away database per test run, a schema per test, and
:class:`ThrowawayCluster`, a cluster of its own that fault tests stop and start.

The server comes from ``CDS_TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``,
the development machines' trust-authenticated cluster). The user must be allowed to create
databases. When the server does not answer, the PostgreSQL variants of the tests are skipped,
except when ``CI`` or ``CDS_TEST_REQUIRE_POSTGRES`` is true: then they fail, loudly, so a CI run
can never pass without having exercised PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from cds_service.testing.required import must_run

ENV_URL = "CDS_TEST_POSTGRES_URL"
ENV_REQUIRE = "CDS_TEST_REQUIRE_POSTGRES"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    return os.environ.get(ENV_URL, "").strip() or DEFAULT_URL


def required(env: dict[str, str] | None = None) -> bool:
    """PostgreSQL must be there: in CI, or when the run says so explicitly."""
    return must_run(ENV_REQUIRE, env=env)


def libpq_url(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+psycopg://…``) as a plain libpq URI."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlalchemy_url(url: str, database: str | None = None, schema: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql+psycopg")
    if database is not None:
        parsed = parsed.set(database=database)
    if schema is not None:
        parsed = parsed.update_query_dict({"options": f"-csearch_path={schema}"})
    return parsed.render_as_string(hide_password=False)


def unreachable_reason(url: str, timeout: int = 3) -> str | None:
    """None when the server answers ``SELECT 1``; else why not."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=timeout, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except Exception as error:  # any failure means "not usable here"
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return None


@contextmanager
def temporary_database(url: str) -> Iterator[str]:
    """Create ``cds_test_<random>`` on the server of ``url``; yield its URL; drop it afterwards."""
    name = f"cds_test_{uuid.uuid4().hex[:12]}"
    admin = libpq_url(url)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield sqlalchemy_url(url, database=name)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def temporary_schema(database_url: str) -> Iterator[str]:
    """A fresh schema in ``database_url``'s database; yields a URL whose search_path is it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield sqlalchemy_url(database_url, schema=name)
    finally:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def skip_or_fail_unless_reachable(url: str, is_required: bool) -> None:
    """In a pytest fixture: return when PostgreSQL answers at ``url``; otherwise skip the test
    (developer machine) or fail it loudly (CI / ``CDS_TEST_REQUIRE_POSTGRES``)."""
    import pytest

    problem = unreachable_reason(url)
    if problem is None:
        return
    where = make_url(url).render_as_string(hide_password=True)
    if is_required:
        pytest.fail(
            f"PostgreSQL is required here (CI or {ENV_REQUIRE} is set) but {where} does not answer: {problem}. "
            f"Start it (.ci/run does) or point {ENV_URL} at a server.",
            pytrace=False,
        )
    pytest.skip(f"PostgreSQL not reachable at {where} ({problem}); set {ENV_URL} to run these tests")


# -- a throw-away cluster of its own, for fault tests (stop it, start it, kill it) ---------------

def _binary(name: str) -> str:
    """``initdb`` / ``pg_ctl`` of the machine's PostgreSQL: on PATH, /usr/local/bin, or Debian's
    /usr/lib/postgresql/<version>/bin (newest first)."""
    import glob
    import shutil

    found = shutil.which(name) or shutil.which(name, path="/usr/local/bin")
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: [int(part) if part.isdigit() else part for part in path.split("/")])
    if candidates:
        return candidates[-1]
    raise FileNotFoundError(f"{name} not found (install the Debian package postgresql)")


def cluster_binaries_available() -> str | None:
    """None when initdb and pg_ctl are there; else why not."""
    try:
        _binary("initdb")
        _binary("pg_ctl")
    except FileNotFoundError as error:
        return str(error)
    return None


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary folder on a free 127.0.0.1 port, run by the
    ``postgres`` user when started as root (initdb refuses root), trust authentication.

    Never touches the shared server on 5432: the port is free, the data folder is new.
    ``stop()`` / ``start()`` simulate an outage; ``destroy()`` stops it and removes the folder.
    """

    def __init__(self) -> None:
        import shutil
        import socket
        import tempfile

        self.root = tempfile.mkdtemp(prefix="cds-pg-")
        self.data = os.path.join(self.root, "data")
        self.socket_dir = os.path.join(self.root, "sock")
        os.makedirs(self.socket_dir)
        self.log = os.path.join(self.root, "server.log")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run([_binary("initdb"), "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync",
                   "-E", "UTF8", "--locale=C"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = "
                       f"'{self.socket_dir}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                       "max_connections = 60\nshared_buffers = 16MB\n")
        self.start()

    def _run(self, command: list[str], check: bool = True) -> int:
        import subprocess

        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout.decode(errors='replace')}")
        return result.returncode

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``postgres`` database of this cluster."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        with psycopg.connect(libpq_url(self.url), autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return sqlalchemy_url(self.url, database=name)

    def start(self) -> None:
        self._run([_binary("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        """``fast``: disconnect clients and shut down cleanly; ``immediate``: as if it crashed."""
        self._run([_binary("pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])

    def running(self) -> bool:
        return self._run([_binary("pg_ctl"), "-D", self.data, "status"], check=False) == 0

    def destroy(self) -> None:
        import shutil

        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ThrowawayCluster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
