"""Facts with one owner: a second spelling of them in the project's code fails here.

Read from the source with `ast`, so the check costs no import of the stacks' bindings.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from functions.shared.price_table.keys import PARTITION_KEY
from stacks.names import CANDLES_TABLE_RESOURCE, FUNCTION_NAMES, FUNCTION_RESOURCES, PRICES_TABLE_RESOURCE

ROOT = Path(__file__).resolve().parent.parent
CODE_FOLDERS = ("functions", "stacks", "delivery", "emulator", "ops", "evidence", "demo", "senders", "environments")
OWNER = ROOT / "stacks" / "names.py"


def code_files() -> list[Path]:
    files = [p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files + [ROOT / "tasks.py", ROOT / "main.py"])


def string_literals(path: Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def spelled_elsewhere(values: set[str], skip: tuple[str, ...] = ()) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} spells {value!r}"
            for path in code_files() if path != OWNER and path.relative_to(ROOT).parts[0] not in skip
            for line, value in string_literals(path) if value in values]


def test_the_function_list_is_the_packages_that_have_a_handler():
    packages = {p.parent.name for p in (ROOT / "functions").glob("*/handler.py")}
    assert set(FUNCTION_NAMES) == packages
    assert tuple(FUNCTION_RESOURCES) == FUNCTION_NAMES


@pytest.mark.parametrize(("fact", "skip"), [
    pytest.param({PRICES_TABLE_RESOURCE, CANDLES_TABLE_RESOURCE}, (), id="table base names"),
    # The handlers name their Powertools service as a default for runs outside Lambda (the stack
    # sets POWERTOOLS_SERVICE_NAME from FUNCTION_RESOURCES); functions/ may not import stacks/.
    pytest.param(set(FUNCTION_RESOURCES.values()), ("functions",), id="function resource names"),
])
def test_a_fact_is_spelled_only_by_its_owner(fact, skip):
    assert spelled_elsewhere(fact, skip) == []


def test_the_check_finds_a_second_spelling(tmp_path, monkeypatch):
    stray = ROOT / "ops" / "_stray_spelling_for_test.py"
    stray.write_text(f'NAME = "{PRICES_TABLE_RESOURCE}"\n')
    try:
        assert spelled_elsewhere({PRICES_TABLE_RESOURCE}) == [f"ops/_stray_spelling_for_test.py:1 spells "
                                                              f"{PRICES_TABLE_RESOURCE!r}"]
    finally:
        stray.unlink()



# ---- the tick item's format: its names and the prices table's keys ------------------------------

ITEM_OWNER = ROOT / "functions" / "shared" / "price_table" / "items.py"
KEYS_OWNER = ROOT / "functions" / "shared" / "price_table" / "keys.py"
ITEM_FACTS = ("OPTIONAL_NUMBERS", "INDICATOR_PREFIXES", "is_indicator")
# Not the prices table: moto's query patch is compared with moto over every key type (S, N, B),
# on tables that only borrow the prices table's attribute names.
OTHER_TABLES = (ROOT / "tests" / "test_moto_patches.py",)


def python_files() -> list[Path]:
    return code_files() + sorted(p for p in (ROOT / "tests").rglob("*.py") if "__pycache__" not in p.parts)


def item_facts_defined(source: str) -> list[str]:
    """Where a source binds one of the item's names (an assignment or a def), in any scope."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = [node.name]
        found += [f"{node.lineno} defines {name}" for name in names if name in ITEM_FACTS]
    return found


def prices_key_schemas(source: str) -> list[str]:
    """Where a source spells a KeySchema (a keyword argument or a dict key) that names the prices
    table's partition key, instead of taking `keys.table_definition`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        values: list[ast.expr] = []
        if isinstance(node, ast.Call):
            values = [k.value for k in node.keywords if k.arg == "KeySchema"]
        elif isinstance(node, ast.Dict):
            values = [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == "KeySchema"]
        found += [f"{value.lineno} spells the prices table's KeySchema" for value in values
                  if any(isinstance(n, ast.Constant) and n.value == PARTITION_KEY for n in ast.walk(value))]
    return found


def codec_spelled(source: str) -> list[str]:
    """Where a source builds a stream record (a dict with a "NewImage" key) or decodes items
    itself (names boto3's TypeDeserializer), instead of taking `items.stream_record` and
    `ticks.plain_item`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "NewImage" for k in node.keys):
            found.append(f"{node.lineno} builds a stream record")
        if (isinstance(node, ast.Name) and node.id == "TypeDeserializer") or (
                isinstance(node, ast.alias) and node.name == "TypeDeserializer"):
            found.append(f"{getattr(node, 'lineno', '?')} decodes items")
    return found


def test_the_tick_items_names_are_defined_only_by_their_owner():
    assert [f"{path.relative_to(ROOT)}:{line}" for path in python_files() if path != ITEM_OWNER
            for line in item_facts_defined(path.read_text())] == []


def test_the_prices_tables_key_schema_is_spelled_only_by_table_definition():
    assert [f"{path.relative_to(ROOT)}:{line}" for path in python_files() if path not in (KEYS_OWNER, *OTHER_TABLES)
            for line in prices_key_schemas(path.read_text())] == []


def test_stream_records_are_built_and_items_decoded_only_by_the_codec():
    owners = (ITEM_OWNER, ROOT / "functions" / "shared" / "price_table" / "ticks.py")
    assert [f"{path.relative_to(ROOT)}:{line}" for path in python_files() if path not in owners
            for line in codec_spelled(path.read_text())] == []


def test_the_item_checks_find_a_second_definition():
    stray = ('OPTIONAL_NUMBERS = ("volume",)\n\n\ndef is_indicator(name):\n    return False\n\n\n'
             'TABLE = {"KeySchema": [{"AttributeName": "symbol", "KeyType": "HASH"}]}\n'
             'client.create_table(KeySchema=[{"AttributeName": "symbol", "KeyType": "HASH"}])\n'
             'other.create_table(KeySchema=[{"AttributeName": "h", "KeyType": "HASH"}])\n')
    assert item_facts_defined(stray) == ["1 defines OPTIONAL_NUMBERS", "4 defines is_indicator"]
    assert sorted(prices_key_schemas(stray)) == ["8 spells the prices table's KeySchema",
                                                 "9 spells the prices table's KeySchema"]
    assert codec_spelled('from boto3.dynamodb.types import TypeDeserializer\n'
                         'record = {"eventName": "INSERT", "dynamodb": {"NewImage": {}}}\n') == [
        "1 decodes items", "2 builds a stream record"]
