"""A real PostgreSQL for the tests: a throwaway cluster in a temporary directory, or the server that
SLACK_PII_TEST_DATABASE_URL names.

The cluster listens on a Unix socket in its own directory only (no TCP port, so parallel runs never collide),
with trust authentication, and is stopped and deleted at the end of the session. initdb refuses to run as root,
so as root it runs as the `postgres` system user (Debian's postgresql package creates it). Each test gets a
database of its own. With neither binaries nor a URL the PostgreSQL tests skip with the reason, except under
CI=true, where they fail: CI installs the package (.ci/run) and must not pass by skipping.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

URL_ENV = "SLACK_PII_TEST_DATABASE_URL"
RUN_AS = "postgres"
PORT = 5432  # only names the socket file inside the cluster's own directory


def find_bin_dir() -> Path | None:
    """Debian's versioned directory (the newest), else whatever initdb is on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]),
                   reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def unavailable(reason: str):
    """Skip, or fail under CI (a green CI must have run these)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason} (install Debian's postgresql or set {URL_ENV})")


@dataclass
class Cluster:
    """One throwaway PostgreSQL cluster; `start`/`stop` may be called again (a test restarting the database)."""

    bin_dir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="slack-pii-pg-")))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-800:]}")
        return result

    def init(self) -> Cluster:
        if os.geteuid() == 0:
            user = pwd.getpwnam(RUN_AS)
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        return self

    def start(self) -> None:
        options = (f"-k {self.root} -c listen_addresses='' -p {PORT} -c fsync=off -c synchronous_commit=off"
                   " -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "120",
                  "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        """`fast` is an orderly shutdown (what a restart looks like to clients); `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={PORT}"

    def destroy(self) -> None:
        if self.is_running():
            self.stop("immediate")  # thrown away anyway: no shutdown checkpoint to wait for
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> Cluster:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        unavailable("no initdb in /usr/lib/postgresql/*/bin or on PATH")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            unavailable(f"running as root and there is no {RUN_AS!r} user to run initdb as")
    cluster = Cluster(bin_dir).init()
    cluster.start()
    return cluster


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def create_database(server_url: str) -> str:
    """A new empty database on the server; its URL."""
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of a server the tests may create databases on."""
    if os.environ.get(URL_ENV):
        yield os.environ[URL_ENV]
        return
    cluster = start_cluster()
    try:
        yield cluster.url()
    finally:
        cluster.destroy()


def drop_database(server_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database of its own for one test, dropped afterwards (a developer's server stays clean)."""
    url = create_database(pg_server)
    yield url
    drop_database(pg_server, url)


@pytest.fixture
def pg_cluster():
    """A cluster of the test's own, for tests that stop and start the database under a running proxy."""
    if os.environ.get(URL_ENV) and find_bin_dir() is None:
        pytest.skip(f"restarting the database needs a local cluster; {URL_ENV} names a server we cannot restart")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.destroy()
