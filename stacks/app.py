"""The CDKTF app of one environment: its stacks, in dependency order."""

from __future__ import annotations

from cdktf import App

from environments.config import EnvironmentConfig
from stacks.artifacts import BuiltZip, SynthPaths
from stacks.pipeline import PipelineStack
from stacks.storage import StorageStack


def build_app(config: EnvironmentConfig, artifacts: dict[str, BuiltZip], paths: SynthPaths) -> App:
    """storage, pipeline and, only when the environment file has a `relay` section, the relay."""
    app = App(outdir=str(paths.outdir))
    storage = StorageStack(app, config, paths)
    pipeline = PipelineStack(app, config, paths, storage, artifacts)
    if config.relay is not None:
        from stacks.relay import RelayStack

        RelayStack(app, config, paths, storage, pipeline)
    return app


def synth(config: EnvironmentConfig, artifacts: dict[str, BuiltZip], paths: SynthPaths) -> None:
    """Write the Terraform JSON of every stack of the environment under `paths.outdir`."""
    paths.outdir.mkdir(parents=True, exist_ok=True)
    build_app(config, artifacts, paths).synth()
