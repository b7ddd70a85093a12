"""Facts with one owner: a second spelling of them in the project's code fails here.

Read from the source with `ast`, so the check costs no import of the stacks' bindings.
"""

from __future__ import annotations

import ast
import re
import sys
import typing
from pathlib import Path

import pytest

from functions.webhook_processor.exchanges import EXCHANGES
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


# ---- the deployment id: `{name}-{suffix}`, built by EnvironmentConfig.deployment_id alone ----------

CONFIG_MODULE = ROOT / "environments" / "config.py"


def name_suffix_builds(path: Path) -> list[int]:
    """Lines of f-strings that put a `.name`, a "-" and a `.suffix` side by side."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.JoinedStr):
            continue
        parts = node.values
        for index in range(len(parts) - 2):
            first, dash, last = parts[index:index + 3]
            if (isinstance(first, ast.FormattedValue) and isinstance(first.value, ast.Attribute)
                    and first.value.attr == "name" and isinstance(dash, ast.Constant)
                    and str(dash.value).startswith("-")
                    and isinstance(last, ast.FormattedValue) and isinstance(last.value, ast.Attribute)
                    and last.value.attr == "suffix"):
                lines.append(node.lineno)
    return lines


def test_the_deployment_id_is_built_only_by_the_environment_config():
    builds = [f"{path.relative_to(ROOT)}:{line}" for path in code_files() if path != CONFIG_MODULE
              for line in name_suffix_builds(path)]
    assert builds == []
    assert len(name_suffix_builds(CONFIG_MODULE)) == 1


def test_the_deployment_id_check_finds_a_second_build(tmp_path):
    stray = tmp_path / "stray.py"
    stray.write_text('def where(config):\n    return f"build/{config.name}-{config.suffix}.json"\n')
    assert name_suffix_builds(stray) == [2]


# ---- why the functions avoid dataclasses: said once, in functions/shared/records.py --------------

COLD_START_OWNER = ROOT / "functions" / "shared" / "records.py"
# How the justification reads: dataclasses' methods are exec()'d at import, which bytecode cannot cache.
COLD_START_REASON = re.compile(r"exec\(\)|exec\(\)'d|cannot cache")


def restated_cold_start_reason(paths: list[Path]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{number}" for path in paths if path != COLD_START_OWNER
            for number, line in enumerate(path.read_text().splitlines(), 1) if COLD_START_REASON.search(line)]


def test_the_dataclass_cold_start_cost_is_explained_once():
    assert COLD_START_REASON.search(COLD_START_OWNER.read_text())
    assert restated_cold_start_reason(sorted((ROOT / "functions").rglob("*.py"))) == []


def test_the_cold_start_check_finds_a_restatement(tmp_path, monkeypatch):
    stray = tmp_path / "m.py"
    stray.write_text('"""Plain class: a dataclass exec()s its methods at import."""\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert restated_cold_start_reason([stray]) == ["m.py:1"]


# ---- the exchange set: functions.webhook_processor.exchanges.EXCHANGES -----------------------------

EXCHANGES_OWNER = ROOT / "functions" / "webhook_processor" / "exchanges.py"


def exchange_set_spellings(path: Path) -> list[int]:
    """Lines of a tuple, list or set (a Literal's too) naming every exchange of the set."""
    return [node.lineno for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Tuple | ast.List | ast.Set)
            and set(EXCHANGES) <= {e.value for e in node.elts if isinstance(e, ast.Constant)}]


def test_the_exchange_set_is_spelled_only_by_its_owner():
    relay_package = sorted((ROOT / "relay" / "price_relay").rglob("*.py"))
    spelled = [f"{path.relative_to(ROOT)}:{line}" for path in code_files() + relay_package
               if path != EXCHANGES_OWNER for line in exchange_set_spellings(path)]
    assert spelled == []
    assert exchange_set_spellings(EXCHANGES_OWNER)


def test_the_parser_config_and_relay_take_the_owners_exchanges():
    from environments.config import RelayExchange
    from functions.webhook_processor.payloads import FORMATS
    from price_relay.exchanges import EXCHANGES as RELAY_EXCHANGES

    assert FORMATS == ("generic", *EXCHANGES)
    assert tuple(RELAY_EXCHANGES) == EXCHANGES
    assert all(RELAY_EXCHANGES[name].name == name for name in EXCHANGES)
    assert typing.get_args(RelayExchange.model_fields["exchange"].annotation) == EXCHANGES


def test_the_exchange_set_check_finds_a_second_spelling(tmp_path):
    stray = tmp_path / "m.py"
    stray.write_text('from typing import Literal\nName = Literal["kraken", "binance", "coinbase", "bitstamp"]\n')
    assert exchange_set_spellings(stray) == [2]
