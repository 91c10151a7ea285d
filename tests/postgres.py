"""A throwaway PostgreSQL server with pgvector for tests, usable from any test folder.

    from tests.postgres import PostgresUnavailable, fresh_database, postgres_server

    with postgres_server() as url:          # postgresql://mindwell@127.0.0.1:PORT/postgres
        with fresh_database(url) as db_url:  # a new, empty database, dropped afterwards
            ...

Where the server comes from, first match wins:
1. ``MINDWELL_TEST_POSTGRES_URL``: an existing server, used as is (its user needs CREATEDB
   and pgvector must be installed there);
2. the PostgreSQL 16 binaries with pgvector of the ``pgserver`` package (the dev extra);
3. Debian's ``/usr/lib/postgresql/*/bin`` where its share directory has ``vector.control``
   (Debian 12 packages no pgvector).
Otherwise ``PostgresUnavailable`` says why, and fixtures turn it into a skip.

The cluster lives in a temporary directory (data, socket, log; on /dev/shm where it can),
listens on 127.0.0.1 on a free port with trust authentication, runs with ``fsync=off`` and
starts in about a second.
PostgreSQL refuses to run as root: as root the binaries run as the ``postgres`` user, or as
``nobody`` where that user does not exist; if that user cannot reach the binaries (a virtual
environment under /root), the small pgserver tree is copied into the temporary directory.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

URL_ENV = "MINDWELL_TEST_POSTGRES_URL"
PREFIX = "mindwell-pg-"
SUPERUSER = "mindwell"
DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"

# Test clusters trade durability for speed; nothing here has to survive a crash.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL with pgvector can be started here; the message says why."""


@dataclass(frozen=True)
class Binaries:
    bin: Path  # initdb, pg_ctl, postgres
    extension: Path  # the directory holding vector.control
    source: str  # where they came from, for messages
    # A relocatable install that may be copied: the folder and the paths in it to copy,
    # which keep their layout (pgserver's binaries find their libraries in ../../../).
    base: Path | None = None
    parts: tuple[str, ...] = ()


def pgserver_binaries() -> Binaries | None:
    """pgserver's bundled PostgreSQL, found without importing pgserver (its import warns)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        tree = Path(location) / "pginstall"
        extension = tree / "share" / "postgresql" / "extension"
        if (tree / "bin" / "postgres").is_file() and (extension / "vector.control").is_file():
            base = tree.parent.parent  # site-packages: pgserver/ and pgserver.libs/
            parts = tuple(str(p.relative_to(base)) for p in (tree, base / "pgserver.libs")
                          if p.exists())
            return Binaries(tree / "bin", extension, f"pgserver ({tree})", base, parts)
    return None


def debian_binaries() -> Binaries | None:
    """Debian's PostgreSQL, newest first, only where pgvector is installed for it."""

    def version(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return 0.0

    for bin_dir in sorted(map(Path, glob.glob(DEBIAN_GLOB)), key=version, reverse=True):
        extension = Path("/usr/share/postgresql") / bin_dir.parent.name / "extension"
        if (bin_dir / "initdb").is_file() and (extension / "vector.control").is_file():
            return Binaries(bin_dir, extension, f"Debian PostgreSQL {bin_dir.parent.name}")
    return None


def find_binaries() -> Binaries:
    found = pgserver_binaries() or debian_binaries()
    if found is None:
        debian = ", ".join(glob.glob(DEBIAN_GLOB)) or "none"
        raise PostgresUnavailable(
            f"no PostgreSQL with pgvector: set {URL_ENV}, or pip install pgserver (the dev "
            f"extra), or install pgvector for Debian's PostgreSQL (found: {debian})")
    return found


def temp_parent() -> str | None:
    """Where the cluster's temporary directory goes: /dev/shm when it is a roomy writable
    tmpfs (creating a database there takes 20 ms instead of 100-300 ms on a disk), else
    the system's temporary directory."""
    shm = Path("/dev/shm")
    try:
        stats = os.statvfs(shm)
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize > 1 << 30
    return str(shm) if roomy and os.access(shm, os.W_OK | os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class _RunAs:
    """Who runs the PostgreSQL binaries: this process, or an unprivileged user under root."""

    name: str | None = None
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def choose(cls, name: str | None = None) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        for candidate in [name] if name else ["postgres", "nobody"]:
            try:
                entry = pwd.getpwnam(candidate)
            except KeyError:
                continue
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        raise PostgresUnavailable("running as root and neither a 'postgres' nor a 'nobody' "
                                  "user exists to run PostgreSQL as")

    def chown(self, path: Path) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid)

    def run(self, args: list, cwd: Path, check: bool = True, timeout: float = 60,
            ) -> subprocess.CompletedProcess:
        options = {}
        if self.uid is not None:
            options = {"user": self.uid, "group": self.gid, "extra_groups": []}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "HOME": str(cwd)}
        for name in ("PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD"):
            env.pop(name, None)
        result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                                text=True, timeout=timeout, check=False, **options)
        if check and result.returncode:
            raise PostgresUnavailable(
                f"{Path(str(args[0])).name} failed (exit {result.returncode}"
                f"{', as user ' + self.name if self.name else ''}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}")
        return result

    def can_use(self, binaries: Binaries, root: Path) -> bool:
        """Whether this user may run the binaries, read the extension and write ``root``."""
        if self.uid is None:
            return True
        check = ('test -x "$1/initdb" && test -x "$1/pg_ctl" && test -x "$1/postgres" && '
                 'test -r "$2/vector.control" && test -w "$3"')
        try:
            result = self.run(["/bin/sh", "-c", check, "sh", binaries.bin, binaries.extension,
                               root], cwd=root, check=False, timeout=30)
        except OSError:  # the user cannot even be switched to
            return False
        return result.returncode == 0


@dataclass
class PostgresCluster:
    """A started throwaway cluster; use ``PostgresCluster.start()`` and ``stop()``."""

    root: Path
    binaries: Binaries
    run_as: _RunAs
    port: int = 0
    start_seconds: float = 0.0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "postgres.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls, binaries: Binaries | None = None, user: str | None = None,
              ) -> PostgresCluster:
        began = time.perf_counter()
        binaries = binaries or find_binaries()
        run_as = _RunAs.choose(user)
        parent = temp_parent()
        reap_stale_clusters(parent)
        root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        cluster = None
        try:
            (root / "owner.pid").write_text(str(os.getpid()))
            run_as.chown(root)
            if not run_as.can_use(binaries, root):
                binaries = _copy_binaries(binaries, root, run_as)
            cluster = cls(root, binaries, run_as)
            (root / "pg_ctl.path").write_text(str(binaries.bin / "pg_ctl"))
            cluster._init()
            cluster._start()
            cluster.start_seconds = time.perf_counter() - began
            return cluster
        except BaseException:
            if cluster is not None:
                cluster.stop()
            else:
                shutil.rmtree(root, ignore_errors=True)
            raise

    def _init(self) -> None:
        self.run_as.run([self.binaries.bin / "initdb", "-D", self.data, "-U", SUPERUSER,
                         "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
                        cwd=self.root)
        settings = {**_SETTINGS, "unix_socket_directories": f"'{self.root}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# mindwell test cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _start(self) -> None:
        # A free port can be taken between choosing and binding it: try a few.
        error = None
        for _ in range(3):
            self.port = free_port()
            result = self.run_as.run(
                [self.binaries.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w",
                 "-t", "30", "-o", f"-p {self.port}", "start"], cwd=self.root, check=False)
            if result.returncode == 0:
                return
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            error = f"{result.stderr.strip() or result.stdout.strip()}\n{log.strip()[-2000:]}"
            if "already in use" not in log:
                break
        raise PostgresUnavailable(f"PostgreSQL from {self.binaries.source} did not start: "
                                  f"{error}")

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.run_as.run([self.binaries.bin / "pg_ctl", "-D", self.data, "-m",
                                 "immediate", "-w", "stop"], cwd=self.root, check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale_clusters(parent: str | None) -> None:
    """Stop and remove the clusters of test runs that were killed before cleaning up: only
    folders of this harness whose recorded owner process is gone."""
    for root in Path(parent or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((root / "owner.pid").read_text())
            pg_ctl = Path((root / "pg_ctl.path").read_text())
            data_owner = (root / "data").stat().st_uid
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        if (root / "data" / "postmaster.pid").exists() and pg_ctl.is_file():
            if os.geteuid() == 0 and data_owner != 0:
                run_as = _RunAs(pwd.getpwuid(data_owner).pw_name, data_owner,
                                (root / "data").stat().st_gid)
            elif data_owner == os.geteuid():
                run_as = _RunAs()
            else:
                continue
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                run_as.run([pg_ctl, "-D", root / "data", "-m", "immediate", "-w", "stop"],
                           cwd=root, check=False)
        shutil.rmtree(root, ignore_errors=True)


def _copy_binaries(binaries: Binaries, root: Path, run_as: _RunAs) -> Binaries:
    """A copy of a relocatable install inside ``root``, for a user who cannot reach it."""
    if binaries.base is None:
        raise PostgresUnavailable(f"user {run_as.name} cannot run {binaries.source} in "
                                  f"{binaries.bin}")
    copy = root / "pg"
    for part in binaries.parts:
        shutil.copytree(binaries.base / part, copy / part, symlinks=True)
    for folder in [copy, *copy.rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(folder.stat().st_mode | 0o555)
    copied = Binaries(copy / binaries.bin.relative_to(binaries.base),
                      copy / binaries.extension.relative_to(binaries.base),
                      f"{binaries.source}, copied to {copy}", copy, binaries.parts)
    if not run_as.can_use(copied, root):
        raise PostgresUnavailable(f"user {run_as.name} cannot run PostgreSQL even from a copy "
                                  f"in {copy}")
    return copied


@contextlib.contextmanager
def postgres_cluster(user: str | None = None) -> Iterator[PostgresCluster]:
    """A started cluster (data, socket and log in a temporary directory), removed after."""
    cluster = PostgresCluster.start(user=user)
    try:
        yield cluster
    finally:
        cluster.stop()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server with pgvector: ``MINDWELL_TEST_POSTGRES_URL`` as is, or
    a throwaway cluster stopped and removed afterwards. Raises ``PostgresUnavailable``."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        yield url
        return
    with postgres_cluster() as cluster:
        yield cluster.url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "mw_test") -> Iterator[str]:
    """A new empty database on the server for one test, dropped (connections and all)
    afterwards; yields its URL."""
    try:
        import psycopg
        from psycopg import sql
    except ImportError as err:
        raise PostgresUnavailable("psycopg is not installed (pip install "
                                  "'mindwell[postgres]')") from err
    name = f"{re.sub(r'[^a-z0-9_]', '_', prefix.lower())[:40]}_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(server_url, autocommit=True, connect_timeout=10)
    except psycopg.Error as err:
        raise PostgresUnavailable(f"cannot connect to the test server: {err}") from err
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield with_database(server_url, name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


if __name__ == "__main__":  # python -m tests.postgres [USER]: start, time, stop
    import sys

    with postgres_cluster(sys.argv[1] if len(sys.argv) > 1 else None) as started:
        print(f"{started.url} from {started.binaries.source}, as "
              f"{started.run_as.name or 'this user'}, started in "
              f"{started.start_seconds:.2f} s")
