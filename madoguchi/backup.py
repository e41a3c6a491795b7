"""A consistent copy of the desk: the database and the blob store.

SQLite is copied with its online backup API (a consistent snapshot while the
daemon keeps writing); PostgreSQL with ``pg_dump`` (one snapshot
transaction). Blobs never change once written, so copying the files the
database names after the snapshot is consistent too; files written later
are harmless extras.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from madoguchi.app import Desk

MANIFEST = "manifest.json"


class BackupError(Exception):
    pass


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def backup(desk: Desk, dest: Path) -> dict[str, object]:
    """Write a backup into ``dest`` (created; must be empty); return its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    url = make_url(desk.settings.database_url)
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(str(url.database))
        target = sqlite3.connect(str(dest / "database.sqlite3"))
        with target:
            source.backup(target)
        source.close()
        target.close()
        kind = "sqlite"
    else:
        _run(["pg_dump", "--format=custom", "--no-owner",
              f"--file={dest / 'database.dump'}", _libpq_url(desk.settings.database_url)])
        kind = "postgresql"
    copied = _copy_tree(desk.blobs.root, dest / "storage")
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "database": kind,
        "blobs": copied,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def restore(desk: Desk, src: Path) -> dict[str, object]:
    """Bring a backup back over the configured database and storage (daemon stopped)."""
    manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    url = make_url(desk.settings.database_url)
    desk.engine.dispose()
    if manifest["database"] == "sqlite":
        if url.get_backend_name() != "sqlite":
            raise BackupError("a SQLite backup can only be restored into SQLite")
        source = sqlite3.connect(str(src / "database.sqlite3"))
        target = sqlite3.connect(str(url.database))
        with target:
            source.backup(target)
        source.close()
        target.close()
    else:
        if url.get_backend_name() != "postgresql":
            raise BackupError("a PostgreSQL backup can only be restored into PostgreSQL")
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
              f"--dbname={_libpq_url(desk.settings.database_url)}", str(src / "database.dump")])
    _copy_tree(src / "storage", desk.blobs.root)
    return manifest


def _copy_tree(src: Path, dest: Path) -> int:
    copied = 0
    for path in src.rglob("*"):
        if path.is_file() and path.parent.name != "tmp":
            target = dest / path.relative_to(src)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                copied += 1
    return copied


def _run(cmd: list[str]) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600)
    except FileNotFoundError as exc:
        raise BackupError(f"{cmd[0]} not found: install postgresql-client") from exc
    except subprocess.CalledProcessError as exc:
        raise BackupError(f"{cmd[0]} failed: {exc.stderr.strip()}") from exc
