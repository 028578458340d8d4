"""Real PostgreSQL-side servers the tests start for themselves: a throwaway cluster that
only speaks TLS (self-signed certificate), and a PgBouncer in transaction mode in front
of the test PostgreSQL. Both bind free loopback ports and run as the `postgres` system
user when the tests run as root (neither server agrees to run as root).

The binaries come from Debian packages that scripts/ensure-system-packages.sh installs
(`make test` runs it first); a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import asyncio
import datetime
import glob
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

SERVICE_USER = "postgres"


def asyncpg_dsn(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as asyncpg (or libpq) takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def binary(name: str) -> str:
    """A PostgreSQL server binary (newest installed version), or PgBouncer."""
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found = candidates[0] if candidates else shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
    if not found:
        raise AssertionError(f"{name} is not installed: run scripts/ensure-system-packages.sh")
    return found


def _as_service_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVICE_USER, "--", *command] if os.geteuid() == 0 else command


def _service_dir(prefix: str) -> Path:
    """A private directory the service user owns (pytest's tmp_path is root's)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    for path in (cert_path, key_path):
        _chown(path)
    return cert_path, key_path


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")


@dataclass(frozen=True)
class TlsCluster:
    port: int
    certificate: Path
    socket_dir: Path

    def url(self, scheme: str = "postgresql", query: str = "sslmode=require") -> str:
        return f"{scheme}://{SERVICE_USER}@127.0.0.1:{self.port}/postgres?{query}"


@asynccontextmanager
async def tls_cluster() -> AsyncIterator[TlsCluster]:
    """A fresh PostgreSQL cluster on a free port that refuses connections without TLS."""
    root = _service_dir("taskchat-tls-")
    data = root / "data"
    port = free_port()
    try:
        initdb = [binary("initdb"), "-D", str(data), "-U", SERVICE_USER, "--auth=trust", "-N"]
        await asyncio.to_thread(_run, _as_service_user([*initdb, "-E", "UTF8"]))
        certificate, key = _self_signed(root)
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nfsync = off\n"
                f"ssl = on\nssl_cert_file = '{certificate}'\nssl_key_file = '{key}'\n"
            )
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostnossl all all 127.0.0.1/32 reject\n"
        )
        pg_ctl = [binary("pg_ctl"), "-D", str(data)]
        log = str(root / "log")
        await asyncio.to_thread(_run, _as_service_user([*pg_ctl, "-l", log, "-w", "start"]))
        try:
            yield TlsCluster(port, certificate, root)
        finally:
            await asyncio.to_thread(_run, _as_service_user([*pg_ctl, "-m", "immediate", "stop"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class PgBouncer:
    port: int
    #: the PostgreSQL role PgBouncer logs in as: what tells its connections apart
    server_role: str
    directory: Path

    def url(self, direct_url: str) -> str:
        """`direct_url` (a database on the test PostgreSQL) through the pooler."""
        return (
            make_url(direct_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    async def stats(self, database: str) -> dict[str, int]:
        """SHOW STATS of the admin console (simple protocol only: psql)."""
        psql = ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SERVICE_USER]
        result = await asyncio.to_thread(
            subprocess.run,
            [*psql, "-At", "-F", "\t", "-c", "SHOW STATS", "pgbouncer"],
            capture_output=True,
            text=True,
            check=True,
        )
        lines = [line.split("\t") for line in result.stdout.splitlines()]
        header = ["database", "total_xact_count", "total_query_count"]
        for row in lines:
            if row and row[0] == database:
                return {name: int(value) for name, value in zip(header[1:], row[1:3], strict=True)}
        return {name: 0 for name in header[1:]}


@asynccontextmanager
async def pgbouncer(upstream_url: str) -> AsyncIterator[PgBouncer]:
    """PgBouncer in `pool_mode = transaction` in front of `upstream_url`'s server, where it
    logs in as a role of its own (created here, dropped after). Few server connections:
    the clients' statements are multiplexed over them (what a clash needs), and the test
    PostgreSQL's connection limit is shared by every test worker."""
    upstream = make_url(upstream_url)
    role = f"taskchat_pooler_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        host=upstream.host or "127.0.0.1",
        port=upstream.port or 5432,
        user=upstream.username or SERVICE_USER,
        database=upstream.database or "postgres",
    )
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    finally:
        await admin.close()
    directory = _service_dir("taskchat-pgbouncer-")
    port = free_port()
    users = directory / "users.txt"
    users.write_text(f'"{SERVICE_USER}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432} user={role}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users}\nadmin_users = {SERVICE_USER}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 4\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
    )
    for path in (users, config):
        _chown(path)
    process = subprocess.Popen(
        _as_service_user([binary("pgbouncer"), "-q", str(config)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            if process.poll() is not None:
                log = (directory / "pgbouncer.log").read_text(errors="replace")
                raise AssertionError(f"pgbouncer exited:\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("pgbouncer never listened")
        yield PgBouncer(port, role, directory)
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 10)
        shutil.rmtree(directory, ignore_errors=True)
        admin = await asyncpg.connect(
            host=upstream.host or "127.0.0.1",
            port=upstream.port or 5432,
            user=upstream.username or SERVICE_USER,
            database=upstream.database or "postgres",
        )
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await admin.close()
