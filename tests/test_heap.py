"""``heap.settle``: what start-up loaded is left out of the full collections' walks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# A process of its own, a database file.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_settling_freezes_the_loaded_desk_and_leaves_the_oldest_generation_nearly_empty(
    tmp_path: Path,
) -> None:
    # In a process of its own: frozen objects stay for the life of the process.
    script = textwrap.dedent(f"""
        import gc
        from pathlib import Path
        from madoguchi import heap
        from madoguchi.config import load_settings
        from madoguchi.web_server import web_app
        settings = load_settings(None, database_url="sqlite:///{tmp_path / 'desk.db'}",
                                 storage_dir=Path("{tmp_path / 'storage'}"), sources=[])
        app = web_app(settings)
        before = len(gc.get_objects(generation=2))
        heap.settle()
        print(before, gc.get_freeze_count(), len(gc.get_objects(generation=2)))
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    before, frozen, after = map(int, out.stdout.split())
    assert before > 50_000  # the loaded desk: modules, mappers, the app
    assert frozen >= before
    assert after < 1_000
