"""CDKTF app entry (`cdktf synth` runs this file); `invoke synth --env ENV` is the usual way in.

Usage: python main.py [ENV] [SUFFIX]  (ENV defaults to local)
"""

import sys

from environments.config import ConfigError, load_config
from stacks.app import synth
from tooling.build import BuildError, load_manifest
from tooling.synth import default_outdir


def main(argv: list[str]) -> int:
    env = argv[1] if len(argv) > 1 else "local"
    try:
        config = load_config(env).with_suffix(argv[2] if len(argv) > 2 else None)
        artifacts = load_manifest()
    except (ConfigError, BuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    outdir = default_outdir(config)
    synth(config, artifacts, outdir)
    print(f"synthesized {env} ({config.suffix}) into {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
