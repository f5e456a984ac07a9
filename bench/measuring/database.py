"""PostgreSQL for the stock: a private cluster the run starts, or the user's own server.

The private cluster is `initdb` into a temporary folder, listening on a free loopback port (and
a socket in that folder), run as the `postgres` user when the run is root (PostgreSQL refuses
root). A supervisor process of its own starts it and stops it once the run closes its stdin —
however the run ends, even killed — and removes the folder. With `--database URL` the suite
keeps its table and function in a schema of its own, dropped when the run ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.errors import BenchError
from bench.measuring.environment import start_watched
from models.cluster import free_port
from models.db import Database

INSTALL = "apt-get install -y postgresql"
MISSING = (
    "PostgreSQL is not installed (no initdb on the PATH or in /usr/lib/postgresql); install it "
    f"(`{INSTALL}`, `brew install postgresql`) or give --database postgresql://USER@HOST/DB"
)
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 20.0
_USER = "bench"  # the private cluster's superuser, trusted on loopback


class DatabaseError(BenchError, RuntimeError):
    """Raised when the run's database cannot be started or reached."""


def server_programs() -> Path | None:
    """The folder of PostgreSQL's server programs: where `initdb` is on the PATH, else the
    newest of Debian's /usr/lib/postgresql/V/bin; None if there is none."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    versions.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


class LocalDatabase:
    """The run's private cluster, started by a supervisor process; `database` is where the
    points find it."""

    def __init__(self, connections: int) -> None:
        programs = server_programs()
        if programs is None:
            raise DatabaseError(MISSING)
        # Every pool of a point at once, the harness's own connection and a margin.
        self.process = start_watched(
            "-m", "bench.measuring.database", str(programs), str(connections + 10)
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.fullmatch(r"ready (\S+)\n", line)
        if found is None:
            self.process.kill()
            _, err = self.process.communicate()
            raise DatabaseError(
                f"the private PostgreSQL did not start: {(line + err).strip() or 'no output'}"
            )
        self.database = Database(found[1], "bench")

    def close(self) -> None:
        """Stop the cluster: closing the supervisor's stdin is its signal."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.communicate(timeout=_STOP_TIMEOUT_S)
            return
        self.process.kill()
        self.process.communicate()


class UserDatabase:
    """The user's own server (`--database URL`): the suite's schema, dropped on close."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.database = Database(url, f"bench_{uuid.uuid4().hex[:12]}")
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
                connection.execute("SELECT 1")
        except psycopg.Error as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else error
            raise DatabaseError(
                f"cannot reach --database {without_password(url)!r}: {message}; give a "
                "postgresql:// URL of a server you can create a schema in"
            ) from error

    def close(self) -> None:
        """Drop the suite's schema, with its table and function."""
        import psycopg

        with (
            contextlib.suppress(psycopg.Error),
            psycopg.connect(self.database.dsn, autocommit=True, connect_timeout=10) as connection,
        ):
            connection.execute(f"DROP SCHEMA IF EXISTS {self.database.schema} CASCADE".encode())


def without_password(url: str) -> str:
    """`url` with its password, if any, as ***."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def supervise(programs: Path, connections: int) -> int:
    """In the supervisor: make and start the cluster, print `ready DSN`, then wait for the
    run to close stdin (or for SIGTERM) and stop it, removing its folder."""
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        if owner is not None:  # PostgreSQL refuses to run as root
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        user = None if owner is None else owner.pw_name
        data, log = folder / "data", folder / "server.log"
        subprocess.run(
            [programs / "initdb", "-D", data, "-U", _USER, "--auth=trust", "--no-sync",
             "-E", "UTF8", "--locale=C"],
            check=True, capture_output=True, user=user,
        )  # fmt: skip
        port = free_port()
        with open(log, "wb") as output:
            server = subprocess.Popen(
                [programs / "postgres", "-D", data, "-p", str(port), "-k", folder,
                 "-c", "listen_addresses=127.0.0.1", "-c", f"max_connections={connections}"],
                stdout=output, stderr=subprocess.STDOUT, user=user,
            )  # fmt: skip
        dsn = f"postgresql://{_USER}@127.0.0.1:{port}/postgres"
        _wait_until_up(dsn, server, log)
        print(f"ready {dsn}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.stdin.close())
        with contextlib.suppress(ValueError, OSError):
            sys.stdin.read()  # until the run closes its end, or dies
        return 0
    except (subprocess.CalledProcessError, OSError, KeyError, TimeoutError) as error:
        detail = getattr(error, "stderr", b"") or b""
        print(f"error {error} {detail.decode(errors='replace').strip()}", flush=True)
        return 1
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGINT)  # fast shutdown: roll back, close, stop
            try:
                server.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_up(dsn: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Return once the server accepts a connection; raise TimeoutError if it ends or never
    does, with its log's last lines."""
    import psycopg

    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            psycopg.connect(dsn, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
    raise TimeoutError(f"PostgreSQL did not accept connections: {tail}")


if __name__ == "__main__":
    sys.exit(supervise(Path(sys.argv[1]), int(sys.argv[2])))
