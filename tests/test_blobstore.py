"""The blob store on a real filesystem: content-addressed, atomic, swept after crashes."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from madoguchi.ticketing.blobstore import BlobStore


def test_a_blob_is_named_by_its_sha256_and_stored_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = store.put("受付のお知らせ".encode())
    assert digest == hashlib.sha256("受付のお知らせ".encode()).hexdigest()
    assert store.put("受付のお知らせ".encode()) == digest
    assert store.get(digest) == "受付のお知らせ".encode()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [digest]


def test_sweep_removes_only_temporaries_old_enough_to_be_a_crash_s(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    left_by_crash = tmp_path / "tmp" / f"{'a' * 64}.4242.tmp"
    being_written = tmp_path / "tmp" / f"{'b' * 64}.4343.tmp"
    left_by_crash.write_bytes(b"half")
    being_written.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(left_by_crash, (two_hours_ago, two_hours_ago))

    assert store.sweep_temporaries(older_than=3600) == 1

    assert not left_by_crash.exists()
    assert being_written.exists()  # another process sharing the store may be writing it
