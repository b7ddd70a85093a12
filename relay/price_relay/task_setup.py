"""The relay task's setup container: stdlib only, run as `python -c <this file's text>`.

It runs in the relay's own image, so it lives in the relay package; stacks/relay.py reads
this file and makes its text the `relay-setup` container's command (any image with a
python runs it, whatever version of the package the image holds).

Why a setup container: ECS can hand a container a whole Secrets Manager secret, or one
top-level key of it as text, but a source's entry in the webhook secrets document is a
list (newest first) or an object, which ECS would render as Go's `[new old]`. So ECS gives
the whole document to this short-lived container only; it picks the relay source's
newest secret, writes it (mode 0600) and the relay's config file to the task's `run`
volume, and exits. The relay container mounts that volume read-only and never sees the
other sources' secrets. Nothing here prints a secret: a failure names the source only.

Environment: WEBHOOK_SECRETS_DOCUMENT (from Secrets Manager), RELAY_SOURCE, RELAY_CONFIG
(the relay's --config JSON without any secret), RELAY_RUN_DIR (where to write).
"""

import json
import os
import sys


class SetupError(Exception):
    """A problem whose message is safe to print (it names a source or a variable, never a value)."""


def newest_secret(document: str, source: str) -> str:
    """The first secret of the source's entry: "secret", ["new", "old"] or {"secrets": [...], ...}."""
    entry = json.loads(document).get(source)
    values = entry.get("secrets") if isinstance(entry, dict) else entry
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list) or not values or not isinstance(values[0], str) or not values[0]:
        raise SetupError(f"no secret for source {source!r} in the webhook secrets document")
    return values[0]


def main() -> int:
    try:
        secret = newest_secret(os.environ.pop("WEBHOOK_SECRETS_DOCUMENT"), os.environ["RELAY_SOURCE"])
        config = json.loads(os.environ["RELAY_CONFIG"])
    except SetupError as error:
        print(f"relay setup failed: {error}", file=sys.stderr)
        return 1
    except KeyError as error:
        print(f"relay setup failed: environment variable {error} is not set", file=sys.stderr)
        return 1
    except (ValueError, AttributeError) as error:
        # The type only: a JSON error's text could quote the document.
        print(f"relay setup failed: {type(error).__name__} reading the secrets document or RELAY_CONFIG",
              file=sys.stderr)
        return 1
    run_dir = os.environ.get("RELAY_RUN_DIR", "/run/relay")
    secret_path = os.path.join(run_dir, "secret")
    descriptor = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(secret)
    config["secret_file"] = secret_path
    with open(os.path.join(run_dir, "relay.json"), "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    print(f"relay setup: config and secret for {config.get('source')!r} written to {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
