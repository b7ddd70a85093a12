"""CDKTF app entry (`cdktf synth` runs this file); `invoke synth --env ENV` is the usual way in.

Usage: python main.py [ENV] [SUFFIX]  (ENV defaults to local)
"""

import sys

from delivery.build import load_manifest
from delivery.synth import default_outdir, synth_environment
from environments.config import load_config
from errors import PipelineError


def main(argv: list[str]) -> int:
    env = argv[1] if len(argv) > 1 else "local"
    try:
        config = load_config(env).with_suffix(argv[2] if len(argv) > 2 else None)
        app = synth_environment(config, default_outdir(config), load_manifest())
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"synthesized {env} ({config.suffix}) into {app.outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
