"""The import rules of the tree: dependencies point one way
(functions ← stacks ← delivery/emulator/ops/evidence ← tasks).

Read from the source with `ast`, so a lazy import inside a function counts as much as one
at the top of a module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UPPER_LAYERS = ("delivery", "emulator", "ops", "evidence", "demo", "senders", "tasks", "main", "tests")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (absolute names), wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def modules_under(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    problems = []
    for path in modules_under(folder):
        for name in sorted(imported_modules(path)):
            if name.split(".")[0] in forbidden:
                problems.append(f"{path.relative_to(ROOT)} imports {name}")
    return problems


@pytest.mark.parametrize("folder", ["functions", "stacks"])
def test_functions_and_stacks_import_nothing_above_them(folder):
    assert _violations(folder, UPPER_LAYERS) == []


def test_functions_import_neither_stacks_nor_environments():
    assert _violations("functions", ("stacks", "environments", "errors")) == []


def test_the_emulator_imports_nothing_else_of_the_project():
    project = ("functions", "stacks", "environments", "delivery", "ops", "evidence", "demo", "senders", "tasks",
               "errors")
    assert _violations("emulator", project) == []


@pytest.mark.parametrize("folder", ["ops", "evidence", "demo", "senders", "delivery"])
def test_operations_and_evidence_import_services_never_handlers(folder):
    handlers = [f"{path.relative_to(ROOT)} imports {name}" for path in modules_under(folder)
                for name in imported_modules(path)
                if name.startswith("functions.") and name.split(".")[-1] == "handler"]
    assert handlers == []


def test_the_rules_can_fail(tmp_path):
    """The checker sees a lazy import inside a function, as the rules need it to."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from delivery.build import build_all\n    import emulator.session\n")
    assert {"delivery.build", "emulator.session"} <= imported_modules(module)


def test_every_cdktf_import_stays_in_stacks_and_main():
    outside = [f"{path.relative_to(ROOT)} imports {name}" for path in ROOT.glob("**/*.py")
               if not {".venv", ".venv-checkov", "build", "stacks"} & set(path.relative_to(ROOT).parts)
               and path.name != "main.py" and "tests" not in path.relative_to(ROOT).parts
               for name in imported_modules(path)
               if name.split(".")[0] in ("cdktf", "cdktf_cdktf_provider_aws", "constructs")]
    assert outside == []


TICKET_NUMBER = re.compile(r"(issue|item)_?\d|(^|_)z[a-z](_|$)", re.IGNORECASE)


def ticket_named_tests(root: Path) -> list[str]:
    """Test files and test functions under `root` whose name carries an issue or item number,
    or a `zz`-like prefix that orders them by file name: a reader learns nothing from a ticket
    number, and an order that hangs on a file's name breaks when someone renames it."""
    found = []
    for path in sorted(root.rglob("test_*.py")):
        relative = path.relative_to(root).as_posix()
        if TICKET_NUMBER.search(path.stem.removeprefix("test_")):
            found.append(relative)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_") \
                    and TICKET_NUMBER.search(node.name.removeprefix("test_")):
                found.append(f"{relative}::{node.name}")
    return found


def test_tests_are_named_by_behaviour_never_by_ticket_or_order():
    assert ticket_named_tests(ROOT / "tests") == []


def test_the_test_naming_rule_can_fail(tmp_path):
    (tmp_path / "test_zz_last.py").write_text("def test_fine():\n    pass\n", encoding="utf-8")
    (tmp_path / "test_webhook_issue12.py").write_text(
        "def test_item2_replay():\n    pass\n\n\nasync def test_issue13_candles():\n    pass\n", encoding="utf-8")
    assert ticket_named_tests(tmp_path) == ["test_webhook_issue12.py", "test_webhook_issue12.py::test_item2_replay",
                                            "test_webhook_issue12.py::test_issue13_candles", "test_zz_last.py"]


def test_tests_that_destroy_the_e2e_stack_are_collected_last_whatever_their_file_name():
    """The session's one stack is destroyed by the `destroys_stack` tests: the e2e conftest
    moves them after every other test and keeps their own order (re-plan, then destroy)."""
    from types import SimpleNamespace

    from tests.e2e.conftest import pytest_collection_modifyitems

    def item(name: str, destroys: bool = False) -> SimpleNamespace:
        marked = {"destroys_stack"} if destroys else set()
        return SimpleNamespace(name=name, get_closest_marker=lambda marker: marker if marker in marked else None)

    items = [item("test_aa_re_plan", True), item("test_read"), item("test_ab_destroy", True), item("test_write")]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.name for i in items] == ["test_read", "test_write", "test_aa_re_plan", "test_ab_destroy"]


def test_helper_modules_live_in_tests_support_not_in_test_files():
    """A test_*.py file without a test is a helper under a test's name: pytest collects it for
    nothing and a reader looks for tests in it. Helpers live in tests/support/."""
    helpers = [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "tests").rglob("test_*.py"))
               if not any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
                          for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))]
    assert helpers == []
