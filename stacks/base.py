"""What every stack of an environment shares: the AWS provider and the state backend."""

from __future__ import annotations

import os

from cdktf import LocalBackend, S3Backend, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from environments.config import EnvironmentConfig, LocalStateBackend
from stacks.artifacts import SynthPaths


class EnvironmentStack(TerraformStack):
    """A stack bound to one environment's provider and backend settings."""

    def __init__(self, scope: Construct, stack_id: str, config: EnvironmentConfig, paths: SynthPaths) -> None:
        super().__init__(scope, stack_id)
        self.config = config
        self._configure_backend(stack_id, paths)
        provider_args: dict = {
            "region": config.region,
            "default_tags": [AwsProviderDefaultTags(tags={**config.tags, "stack": stack_id})],
        }
        if config.is_emulated:
            # The endpoint and the emulator's dummy credentials come from the environment
            # (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID...) at run time, so the synthesized JSON
            # changes with neither the emulator's port nor its credentials.
            provider_args.update(
                skip_credentials_validation=True,
                skip_requesting_account_id=True,
                skip_metadata_api_check="true",
                s3_use_path_style=True,
            )
        AwsProvider(self, "aws", **provider_args)
        if config.provider_version:
            self.add_override("terraform.required_providers.aws.version", config.provider_version)

    def _configure_backend(self, stack_id: str, paths: SynthPaths) -> None:
        backend = self.config.backend
        if isinstance(backend, LocalStateBackend):
            state_file = paths.state_root / backend.directory / f"{stack_id}.tfstate"
            stack_dir = paths.outdir / "stacks" / stack_id
            # Relative, so the synthesized JSON does not name this machine's folders.
            LocalBackend(self, path=os.path.relpath(state_file, stack_dir))
        else:
            S3Backend(
                self,
                bucket=backend.bucket,
                key=f"{backend.key_prefix}/{stack_id}.tfstate",
                region=backend.region,
                encrypt=True,
            )
            # S3Backend(use_lockfile=True) raises in cdktf 0.21; the override writes the same setting.
            self.add_override("terraform.backend.s3.use_lockfile", backend.use_lockfile)
