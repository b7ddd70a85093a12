"""What an immutable value class costs a cold start, by kind: `@dataclass(frozen=True)`,
`functions.shared.records.Record`, `functions.shared.settings.Contract` and `typing.NamedTuple`.

Each kind's module of N classes (six fields, three defaults) is compiled to bytecode first, as the
Lambda zips ship it, and imported in a fresh CPython 3.12 process after its base module, so the
figure is the class statements alone (no boto3). CPU time (process_time), not wall time, so a
loaded machine does not inflate it; the median of `runs`. Lambda gives a function CPU in
proportion to its memory (one vCPU at 1,769 MB): `at_share` scales a full-core figure.

Run: `python -m evidence.value_types` (prints one line per kind).
"""

from __future__ import annotations

import statistics
import subprocess
import tempfile
from pathlib import Path

from delivery.build import runtime_python
from delivery.paths import ROOT

FULL_CORE_MB = 1769
KINDS = {
    "dataclass": ("dataclasses", "from dataclasses import dataclass\n",
                  "@dataclass(frozen=True)\nclass C{i}:\n{fields}"),
    "Record": ("functions.shared.records", "from functions.shared.records import Record\n",
               "class C{i}(Record):\n    __slots__ = ('a', 'b', 'c', 'd', 'e', 'f')\n{fields}"
               "    def __init__(self, a: int, b: str, c: float, d: int = 0, e: str = '', f: object = None) -> None:\n"
               "        self._init(a, b, c, d, e, f)\n"),
    "Contract": ("functions.shared.settings", "from functions.shared.settings import Contract\n",
                 "class C{i}(Contract):\n{fields}"),
    "NamedTuple": ("typing", "from typing import NamedTuple\n", "class C{i}(NamedTuple):\n{fields}"),
}
FIELDS = "    a: int\n    b: str\n    c: float\n    d: int = 0\n    e: str = ''\n    f: object = None\n"
RECORD_FIELDS = "    a: int\n    b: str\n    c: float\n    d: int\n    e: str\n    f: object\n"
TIMER = """
import importlib, sys, time
sys.path[:0] = [{folder!r}, {root!r}]
importlib.import_module({base!r})
start = time.process_time()
importlib.import_module("values_module")
print((time.process_time() - start) * 1000)
"""


def at_share(full_core_ms: float, memory_mb: int) -> float:
    """A full-core CPU figure at a Lambda function's memory share."""
    return full_core_ms * FULL_CORE_MB / memory_mb


def class_cost_ms(kind: str, classes: int = 20, runs: int = 9) -> float:
    """Median CPU milliseconds one class statement of `kind` costs at import, from bytecode."""
    base, header, template = KINDS[kind]
    fields = RECORD_FIELDS if kind == "Record" else FIELDS
    python = str(runtime_python().executable)
    with tempfile.TemporaryDirectory() as folder:
        module = Path(folder) / "values_module.py"
        module.write_text(header + "".join(template.format(i=i, fields=fields) + "\n" for i in range(classes)))
        subprocess.run([python, "-m", "compileall", "-q", folder, str(ROOT / "functions" / "shared")], check=True)
        script = TIMER.format(folder=folder, root=str(ROOT), base=base)
        times = [float(subprocess.run([python, "-c", script], check=True, capture_output=True, text=True).stdout)
                 for _ in range(runs)]
    return statistics.median(times) / classes


def main() -> None:
    for kind in KINDS:
        cost = class_cost_ms(kind)
        print(f"{kind:>10}: {cost:.3f} ms CPU a class on a full core; "
              f"{at_share(cost, 256):.2f} ms at 256 MB, {at_share(cost, 512):.2f} ms at 512 MB")


if __name__ == "__main__":
    main()
