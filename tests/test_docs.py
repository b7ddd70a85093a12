"""The documentation a newcomer reads: a short README that links the rest, links that lead
somewhere, and no ticket numbers (a reader has no tracker; the docs name the behaviour)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 250
# [text](target) and [text](target "title"); images too. Targets with a scheme or a bare
# #anchor are not files.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)
TICKET = re.compile(r"\bissues?[\s#-]*\d+|\bitem\s+\d+\b|(?<![\w&/])#\d+\b", re.IGNORECASE)


PACKAGE_READMES = ("relay/README.md", "client/README.md", "emulator/README.md")


def documents() -> list[Path]:
    """The README, the docs pages, and the READMEs of the folders that have one."""
    return [README, *sorted((ROOT / "docs").glob("*.md")), *(ROOT / name for name in PACKAGE_READMES)]


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that name a file of the repository."""
    targets = (match.group(1) for match in LINK.finditer(without_code(text)))
    return [target for target in targets if not EXTERNAL.match(target)]


def without_code(text: str) -> str:
    """The text without fenced code blocks, whose brackets are code, not links."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_is_short_enough_to_read_first():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to a page in docs/")


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(document: Path):
    missing = []
    for target in relative_links(document.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if path and not (document.parent / path).exists():
            missing.append(target)
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_ticket_numbers_in_the_docs(document: Path):
    found = [(number, line.strip()) for number, line in enumerate(
        document.read_text(encoding="utf-8").splitlines(), start=1) if TICKET.search(line)]
    assert not found, f"{document.relative_to(ROOT)} names tickets (name the behaviour instead): {found}"


@pytest.mark.parametrize(("text", "targets"), [
    ("see [the contract](docs/webhook-contract.md#bodies) and [AWS](https://aws.amazon.com)",
     ["docs/webhook-contract.md#bodies"]),
    ("[up](../README.md \"the start\") [here](#tasks) ![chart](results/demo-chart.png)",
     ["../README.md", "results/demo-chart.png"]),
    ("```python\nx = [a](b)\n```\n[c](d.md)", ["d.md"]),
])
def test_relative_links_are_found_and_external_ones_skipped(text: str, targets: list[str]):
    assert relative_links(text) == targets


@pytest.mark.parametrize(("line", "ticket"), [
    ("measured for issue 11", True), ("(issue #13)", True), ("issue-12 item by name", True),
    ("see #12", True), ("the issue's 5 s", False), ("`<SYMBOL>#1m/1h`", False),
    ("a 1,000-item cap", False), ("item 8", True), ("&#124;", False),
])
def test_ticket_references_are_recognized(line: str, ticket: bool):
    assert bool(TICKET.search(line)) is ticket
