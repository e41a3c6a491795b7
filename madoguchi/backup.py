"""A consistent copy of the desk: the database and the blob store.

The database is copied as its dialect knows how (``ticketing.dialect``:
SQLite's online backup API, a consistent snapshot while the daemon keeps
writing; ``pg_dump``, one snapshot transaction). Blobs never change once
written, so copying the files the database names after the snapshot is
consistent too; files written later are harmless extras.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from madoguchi.ticketing.dialect import BackupError, dialect_named, dialect_of
from madoguchi.ticketing.storage import Storage

__all__ = ["BackupError", "backup", "restore"]

MANIFEST = "manifest.json"


def backup(desk: Storage, dest: Path) -> dict[str, object]:
    """Write a backup into ``dest`` (created; must be empty); return its manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty")
    dialect = dialect_of(desk.settings.database_url)
    dialect.copy_database(desk.settings.database_url, dest)
    copied = _copy_tree(desk.blobs.root, dest / "storage")
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "database": dialect.name,
        "blobs": copied,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def restore(desk: Storage, src: Path) -> dict[str, object]:
    """Bring a backup back over the configured database and storage (daemon stopped)."""
    manifest: dict[str, object] = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    dialect = dialect_of(desk.settings.database_url)
    if manifest["database"] != dialect.name:
        try:
            label = dialect_named(str(manifest["database"])).label
        except ValueError as exc:
            raise BackupError(f"{src}: not a backup of a known database") from exc
        raise BackupError(f"a {label} backup can only be restored into {label}")
    desk.engine.dispose()
    dialect.restore_database(desk.settings.database_url, src)
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
