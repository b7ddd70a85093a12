"""The CDKTF app of one environment: its stacks, in dependency order."""

from __future__ import annotations

from pathlib import Path

from cdktf import App

from environments.config import EnvironmentConfig
from stacks.pipeline import PipelineStack
from stacks.storage import StorageStack
from tooling.build import BuiltZip


def build_app(config: EnvironmentConfig, artifacts: dict[str, BuiltZip], outdir: Path) -> App:
    app = App(outdir=str(outdir))
    storage = StorageStack(app, config, outdir)
    PipelineStack(app, config, outdir, storage, artifacts)
    return app


def synth(config: EnvironmentConfig, artifacts: dict[str, BuiltZip], outdir: Path) -> Path:
    """Write the Terraform JSON of every stack of the environment under `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    build_app(config, artifacts, outdir).synth()
    return outdir
