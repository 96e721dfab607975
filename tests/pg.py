"""A private, throwaway PostgreSQL cluster for the shared-store tests (no mock).

initdb into a temp folder, pg_ctl on a free port with its socket in that folder, run as
the `postgres` user when the tests run as root (PostgreSQL refuses root). Password
authentication (scram) is on, so the tests exercise $PGPASSWORD, ~/.pgpass-style files
and service files as users will.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "anemll"
PASSWORD = "s3cret-pw-for-tests"


def bindir() -> Path | None:
    """The folder with initdb, pg_ctl and psql (Debian keeps them out of PATH)."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    found = shutil.which("initdb")
    for initdb in [*reversed(candidates), *([found] if found else [])]:
        folder = Path(initdb).resolve().parent
        if all((folder / tool).exists() for tool in ("pg_ctl", "psql")):
            return folder
    return None


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int
    as_user: list[str]  # prefix that runs a server command as the cluster's owner

    @property
    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": PASSWORD}

    def _server(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c max_connections=200"
        )
        self._server("-l", str(self.root / "log"), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._server("-m", mode, "-w", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                db,
                "-v",
                "ON_ERROR_STOP=1",
                "-Atqc",
                sql,
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": PASSWORD},
            timeout=60,
        )
        if out.returncode:
            raise RuntimeError(out.stderr)
        return out.stdout

    def new_db(self, name: str) -> str:
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def conninfo(self, db: str, *, password: bool = False) -> str:
        pw = f" password={PASSWORD}" if password else ""
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={db}{pw}"

    def target(self, db: str, data_path: Path | str | None = None, **kw) -> str:
        data = f" data_path={data_path}" if data_path else ""
        return f"ducklake:postgres:{self.conninfo(db, **kw)}{data}"


def start_cluster() -> Cluster:
    """A running cluster; raises RuntimeError if PostgreSQL is not installed."""
    bin_ = bindir()
    if bin_ is None:
        raise RuntimeError("PostgreSQL (initdb) is not installed")
    root = Path(tempfile.mkdtemp(prefix="anemll-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        import pwd

        owner = pwd.getpwnam("postgres")
        os.chmod(root, 0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    (root / "sock").mkdir()
    (root / "pw").write_text(PASSWORD + "\n")
    if as_user:
        for p in (root, root / "sock", root / "pw"):
            os.chown(p, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        [
            *as_user,
            str(bin_ / "initdb"),
            "-D",
            str(root / "data"),
            "-U",
            USER,
            "--auth=scram-sha-256",
            f"--pwfile={root / 'pw'}",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    cluster = Cluster(bin_, root, _free_port(), as_user)
    cluster.start()
    return cluster


def remove(cluster: Cluster) -> None:
    cluster.stop("immediate")
    shutil.rmtree(cluster.root, ignore_errors=True)
