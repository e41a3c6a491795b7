"""The shape of the code holds: layers without cycles, pure rules, small modules and functions."""

from __future__ import annotations

from pathlib import Path

from tests import architecture


def test_no_package_imports_one_above_it() -> None:
    assert architecture.layer_violations() == []


def test_rules_import_no_database_and_no_parser() -> None:
    assert architecture.rule_violations() == []


def test_no_production_module_is_over_600_lines() -> None:
    assert architecture.long_modules() == []


def test_no_function_is_over_80_lines() -> None:
    assert architecture.long_functions() == []


def test_the_checker_sees_every_layer_and_the_links() -> None:
    # A checker that reads nothing would pass everything.
    packages = {package for package, _ in architecture.production_files()}
    assert packages == set(architecture.PACKAGES)
    files = [path for _, path in architecture.production_files()]
    assert len(files) == len(set(p.resolve() for p in files)), "a file counted twice"
    assert any(path.name == "pipeline.py" for path in files)


def test_an_import_from_above_is_caught_whatever_its_form(tmp_path: Path) -> None:
    module = tmp_path / "sample.py"
    module.write_text("from madoguchi.web import app\nimport madoguchi.ingest.pipeline\n"
                      "from madoguchi import daemon\nfrom madoguchi.config import Settings\n"
                      "from madoguchi.ticketing.models import Ticket\n", encoding="utf-8")
    found = architecture.imports_of("ticketing", module, "madoguchi.ticketing.sample")
    upward = sorted(i.module for i in found if architecture.imports_upward("ticketing", i))
    assert upward == ["madoguchi.daemon", "madoguchi.ingest.pipeline", "madoguchi.web.app"]
