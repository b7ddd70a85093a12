"""Synthesize an environment and read back the stacks in dependency order."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

from delivery.build import LAMBDA_ARM64, load_manifest
from delivery.paths import BUILD_DIR, ROOT
from environments.config import EnvironmentConfig
from stacks.artifacts import BuiltZip, SynthPaths

# cdktf 0.21 prints an end-of-life notice for Node 20 on every import; Node 20 is what these machines
# have. Set here, the one module that imports the bindings (tasks, tests and main.py come through it).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass(frozen=True)
class SynthesizedStack:
    name: str
    directory: Path
    dependencies: tuple[str, ...]

    def document(self) -> dict:
        return json.loads((self.directory / "cdk.tf.json").read_text())


@dataclass(frozen=True)
class SynthesizedApp:
    outdir: Path
    stacks: tuple[SynthesizedStack, ...]  # dependency order

    def stack(self, prefix: str) -> SynthesizedStack:
        matches = [s for s in self.stacks if s.name.startswith(prefix + "-")]
        if len(matches) != 1:
            raise KeyError(f"no single stack named {prefix}-*: {[s.name for s in self.stacks]}")
        return matches[0]


def default_outdir(config: EnvironmentConfig) -> Path:
    return BUILD_DIR / "cdktf.out" / config.deployment_id


def read_synthesized(outdir: Path) -> SynthesizedApp:
    """Stacks from the synth manifest, ordered so that every stack follows those it depends on."""
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = manifest["stacks"]
    order = TopologicalSorter({name: set(item["dependencies"]) for name, item in stacks.items()})
    ordered = [
        SynthesizedStack(name, outdir / stacks[name]["workingDirectory"], tuple(stacks[name]["dependencies"]))
        for name in order.static_order()
    ]
    return SynthesizedApp(outdir, tuple(ordered))


def synth_environment(config: EnvironmentConfig, outdir: Path | None = None,
                      artifacts: dict[str, BuiltZip] | None = None) -> SynthesizedApp:
    # Imported here: the provider bindings take ~12 s to load, which tasks that never synth should not pay.
    from stacks.app import synth

    outdir = outdir or default_outdir(config)
    synth(config, artifacts or load_manifest(LAMBDA_ARM64), SynthPaths(outdir, ROOT))
    return read_synthesized(outdir)
