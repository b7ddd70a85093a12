"""Where a running `invoke local` listens: build/local/running.json.

`invoke local` writes it once its stack is up and removes it when it stops; `invoke relay`,
`invoke prices` and the README's first requests read it. It lives beside the local runner
that writes it, so the senders and the tasks that read it depend on delivery and never the
other way round. No secret is written: the dev-only one is in environments/local.yaml.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from delivery.paths import BUILD_DIR
from errors import PipelineError

RUNNING_LOCAL = BUILD_DIR / "local" / "running.json"


class NoLocalSession(PipelineError):
    """No `invoke local` is running, or its file is not what `invoke local` writes."""


def write_running_local(webhook_url: str, endpoint: str, price_api_url: str | None,
                        path: Path | None = None) -> Path:
    """Record where the running stack listens (build/local/running.json by default)."""
    path = RUNNING_LOCAL if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"webhook_url": webhook_url, "endpoint": endpoint, "price_api_url": price_api_url}))
    return path


def read_running_local(path: Path | None = None) -> dict[str, Any]:
    """What `write_running_local` wrote; NoLocalSession (one line) when nothing runs or the file is damaged."""
    path = RUNNING_LOCAL if path is None else path
    if not path.is_file():
        raise NoLocalSession("no running local stack: start `invoke local` in another terminal first")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("webhook_url"), str):
        raise NoLocalSession(f"{path} is not what `invoke local` writes: restart `invoke local`")
    return data


def clear_running_local(path: Path | None = None) -> None:
    """Forget the record when the stack stops, so no reader finds a dead URL."""
    (RUNNING_LOCAL if path is None else path).unlink(missing_ok=True)


def use_running_endpoint(environ: MutableMapping[str, str]) -> str | None:
    """Point an emulated environment's AWS clients at the running `invoke local` (its moto port),
    so `invoke secrets`, `drain-dlq`, `rebuild` and the others find it without an exported
    AWS_ENDPOINT_URL. An endpoint already set wins; with no session recorded, nothing changes (the
    task then fails in one line where it first reaches AWS). Returns the endpoint it set."""
    if environ.get("AWS_ENDPOINT_URL") or not RUNNING_LOCAL.is_file():
        return None
    endpoint = read_running_local().get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        return None
    environ["AWS_ENDPOINT_URL"] = endpoint
    return endpoint
