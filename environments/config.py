"""The one validated configuration object that every stack and task reads.

Each `environments/<name>.yaml` is parsed into `EnvironmentConfig`; a bad file
fails with a single line naming the file, the key and what is allowed, so that
every task can print it without a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from errors import PipelineError
from functions.price_enricher.indicators import Windows
from functions.webhook_processor import settings as webhook_settings
from functions.webhook_processor.exchanges import EXCHANGES

ENVIRONMENTS_DIR = Path(__file__).resolve().parent
_WINDOWS = Windows()
ENVIRONMENT_NAMES = ("local", "dev", "staging", "prod")

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LogRetentionDays = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653
]


class ConfigError(PipelineError):
    """A configuration file that cannot be used; the message is one line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSettings(_Strict):
    memory_mb: int = Field(ge=128, le=10240)
    timeout_seconds: int = Field(ge=1, le=900)
    # Optional: a fresh AWS account (concurrency limit 10) rejects any reservation.
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)


class FunctionsSettings(_Strict):
    webhook_processor: FunctionSettings = FunctionSettings(memory_mb=1024, timeout_seconds=60)
    price_enricher: FunctionSettings = FunctionSettings(memory_mb=512, timeout_seconds=60)
    log_alerts: FunctionSettings = FunctionSettings(memory_mb=128, timeout_seconds=30)
    # 256 MB: each request is one or two DynamoDB reads and the JSON of at most one page of
    # candles, so the API is I/O bound. Lambda gives CPU in proportion to memory: 128 MB
    # leaves about a 14th of a vCPU for the cold start's imports (boto3, Powertools) and
    # for encoding a page, which readers would wait for; above 256 MB the extra CPU would
    # only wait on DynamoDB. 15 s: one read's whole retry sequence (functions/price_api/dynamodb.py:
    # 3 attempts x (1 s connect + 3 s read) + backoff, about 12.4 s) fits, and the handler's
    # per-request deadline (the remaining time less a reserve) stops a request of several
    # reads in time to answer the API's 503 rather than the function URL's bare 502.
    price_api: FunctionSettings = FunctionSettings(memory_mb=256, timeout_seconds=15)


class StreamSettings(_Strict):
    """The enricher's event source mapping; the local poller reads these back from the deployment."""

    batch_size: int = Field(default=100, ge=1, le=10000)
    maximum_batching_window_seconds: int = Field(default=1, ge=0, le=300)
    maximum_retry_attempts: int = Field(default=3, ge=0, le=10000)
    maximum_record_age_seconds: int = Field(default=3600, ge=60, le=604800)
    bisect_batch_on_function_error: bool = True
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"


class IndicatorWindows(_Strict):
    """Defaults are the enricher's own (`Windows`), so the two cannot drift."""

    sma: list[Annotated[int, Field(ge=1, le=500)]] = list(_WINDOWS.sma)
    ema: list[Annotated[int, Field(ge=1, le=500)]] = list(_WINDOWS.ema)
    volatility: list[Annotated[int, Field(ge=2, le=500)]] = list(_WINDOWS.volatility)

    @field_validator("sma", "ema", "volatility")
    @classmethod
    def _unique_sorted(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("windows must be unique")
        return sorted(value)


class LocalStateBackend(_Strict):
    type: Literal["local"]
    # Relative to the repository root; one state file per stack is kept in this folder.
    directory: str = "build/state"


class S3StateBackend(_Strict):
    type: Literal["s3"]
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    key_prefix: str = Field(min_length=1, pattern=r"^[A-Za-z0-9!_.*'()/-]+$")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    use_lockfile: bool = True


# The memory sizes Fargate accepts for each CPU size (MiB).
FARGATE_MEMORY_MB = {256: (512, 1024, 2048), 512: (1024, 2048, 3072, 4096),
                     1024: (2048, 3072, 4096, 5120, 6144, 7168, 8192)}


if TYPE_CHECKING:
    ExchangeName = str
else:  # pydantic checks the owner's names (and says "must be one of ..."); mypy cannot read a computed Literal
    ExchangeName = Literal[EXCHANGES]


class RelayExchange(_Strict):
    """One exchange stream the relay holds (relay/README.md, `exchanges` of its --config file)."""

    exchange: ExchangeName
    symbols: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9]{2,12}([-/][A-Za-z0-9]{2,12})?$")]] = Field(
        min_length=1, max_length=200)


class RelaySettings(_Strict):
    """The exchange relay on ECS Fargate (the `relay-<suffix>` stack); absent = no relay stack.

    The image is built from relay/ elsewhere and named here (a digest pins it best). The
    relay signs as `source`, whose newest secret it reads from the environment's webhook
    secrets at task start. The network is the account's: its default VPC (no ids given), public
    subnets with `assign_public_ip` (no NAT to pay for; the security group allows egress
    only), or private subnets with a NAT and `assign_public_ip: false`.
    """

    image: str = Field(pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$")
    source: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    exchanges: list[RelayExchange] = Field(min_length=1, max_length=3)
    # Both or neither: without them the task runs in the account's default VPC, on its
    # default (public) subnets (an account that deleted its default VPC must name one).
    vpc_id: str | None = Field(default=None, pattern=r"^vpc-[0-9a-f]{8,17}$")
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None = Field(
        default=None, min_length=1, max_length=6)
    assign_public_ip: bool = True
    # Fargate Spot by default: the relay is one small, restartable task, and an interruption
    # (two minutes' notice, SIGTERM) costs a reconnect, which it already handles.
    spot: bool = True
    cpu: Literal[256, 512, 1024] = 256
    memory_mb: int = Field(default=512, ge=512, le=8192)

    @model_validator(mode="after")
    def _network(self) -> RelaySettings:
        if (self.vpc_id is None) != (self.subnet_ids is None):
            raise ValueError("vpc_id and subnet_ids go together (or leave both out for the default VPC)")
        if self.vpc_id is None and not self.assign_public_ip:
            raise ValueError("the default VPC's subnets are public: keep assign_public_ip true there, or name "
                             "private subnets (with a NAT) in vpc_id and subnet_ids")
        return self

    @model_validator(mode="after")
    def _fargate_size(self) -> RelaySettings:
        allowed = FARGATE_MEMORY_MB[self.cpu]
        if self.memory_mb not in allowed:
            raise ValueError(f"memory_mb {self.memory_mb} does not fit cpu {self.cpu}: Fargate allows "
                             f"{', '.join(map(str, allowed))}")
        return self

    @field_validator("exchanges")
    @classmethod
    def _one_entry_per_exchange(cls, value: list[RelayExchange]) -> list[RelayExchange]:
        names = [item.exchange for item in value]
        if len(set(names)) != len(names):
            raise ValueError("each exchange may appear once (list all its symbols in one entry)")
        return value


class AlarmSettings(_Strict):
    iterator_age_ms: int = Field(default=60_000, ge=1000)
    evaluation_period_seconds: int = Field(default=60, ge=10)


class LocalTokenSource(_Strict):
    """A dev-only token sender (TradingView's shape: the secret travels in the body)."""

    auth: Literal["token"]
    secrets: list[Annotated[str, Field(min_length=16)]] = Field(min_length=1)
    allowed_ips: list[str] | None = None


class EnvironmentConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9]{1,15}$")
    suffix: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,19}$", description="appended to every resource name")
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    backend: Annotated[LocalStateBackend | S3StateBackend, Field(discriminator="type")]
    functions: FunctionsSettings = FunctionsSettings()
    lambda_runtime: Literal["python3.12", "python3.13"] = "python3.12"
    log_retention_days: LogRetentionDays = 3
    dlq_retention_seconds: int = Field(default=345_600, ge=60, le=1_209_600)
    stream: StreamSettings = StreamSettings()
    indicator_windows: IndicatorWindows = IndicatorWindows()
    default_quote: str = Field(default=webhook_settings.DEFAULT_QUOTE, pattern=r"^[A-Z0-9]{2,10}$")
    max_skew_seconds: int = Field(default=webhook_settings.MAX_SKEW_SECONDS, ge=1, le=3600)
    alarms: AlarmSettings = AlarmSettings()
    alert_emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []
    tags: dict[Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(max_length=256)]] = {}
    # Emulators only: the AWS endpoint (the embedded runner replaces the port at run time).
    aws_endpoint_url: AnyHttpUrl | None = None
    # Pin the AWS provider to another version (the offline mirror has 5.100.0).
    provider_version: str | None = Field(default=None, pattern=r"^\d+\.\d+\.\d+$")
    # Days a tick stays in the prices table (DynamoDB TTL on `expires_at`, which the webhook
    # writes). Unset keeps every tick forever, and the table has no TTL.
    tick_retention_days: int | None = Field(default=None, ge=1, le=3650)
    # `invoke destroy` first takes an on-demand backup of every table and waits until each is
    # AVAILABLE (or refuses; `--skip-backup` with the typed name skips it), and the KMS key the
    # tables and their backups are encrypted with gets the longest deletion window, 30 days
    # instead of 7: the time a destroyed environment's backups stay restorable
    # (docs/operations-destroy.md). Prod must have it.
    backup_before_destroy: bool = False
    # The exchange relay on ECS Fargate; off (no relay stack) unless the file has a `relay` section.
    relay: RelaySettings | None = None
    # Dev-only signing secrets, allowed in the local environment alone. They are never in
    # Terraform: the local runner writes them into the emulator's Secrets Manager secret
    # after the storage stack is applied. Every other environment's secret is set with
    # `invoke secrets` (ops/secrets.py).
    # A source is a list of HMAC secrets, or {auth: token, secrets: [...]} for a token sender.
    local_webhook_secrets: dict[str, list[str] | LocalTokenSource] | None = None

    @model_validator(mode="after")
    def _local_only_fields(self) -> EnvironmentConfig:
        if self.local_webhook_secrets is not None and self.name != "local":
            raise ValueError("local_webhook_secrets is allowed only in the local environment")
        if self.aws_endpoint_url is not None and self.backend.type != "local":
            raise ValueError("an emulator endpoint (aws_endpoint_url) needs the local state backend")
        if self.name == "prod" and not self.backup_before_destroy:
            raise ValueError("prod needs backup_before_destroy: true (`invoke destroy --skip-backup` skips it "
                             "for one run, with the typed name)")
        return self

    @property
    def key_deletion_window_days(self) -> int:
        """The KMS key's deletion window: the longest AWS allows (30 days) where destroy backs the
        tables up, since those backups are encrypted with this key and restore only while it
        exists; the shortest (7) elsewhere, so that a disposable copy's key goes soon."""
        return 30 if self.backup_before_destroy else 7

    @property
    def is_emulated(self) -> bool:
        """True where the target is an AWS emulator rather than an AWS account."""
        return self.aws_endpoint_url is not None

    def local_secrets_document(self) -> dict[str, Any]:
        """The dev-only sources as the webhook's secrets document (the format `parse_secrets` reads)."""
        return {name: value if isinstance(value, list) else value.model_dump(exclude_none=True)
                for name, value in (self.local_webhook_secrets or {}).items()}

    def local_source(self, auth: Literal["hmac", "token"]) -> tuple[str, str] | None:
        """The first dev-only source of that auth mode and its current secret (the demo, tests, relay)."""
        for name, value in (self.local_webhook_secrets or {}).items():
            mode, secrets = ("hmac", value) if isinstance(value, list) else (value.auth, value.secrets)
            if mode == auth:
                return name, secrets[0]
        return None

    def emulator_endpoint(self, environ: Mapping[str, str]) -> str | None:
        """Where an emulated environment's AWS answers: AWS_ENDPOINT_URL when set (the embedded
        runner's port), else the file's endpoint; None for a real AWS account."""
        if not self.is_emulated:
            return None
        return environ.get("AWS_ENDPOINT_URL") or str(self.aws_endpoint_url).rstrip("/")

    @property
    def deployment_id(self) -> str:
        """`{name}-{suffix}`: names this deployment's files on this machine (its outputs, its synthesized
        app, its relay spool, its drain's set-aside rows), so suffixed copies never share one."""
        return f"{self.name}-{self.suffix}"

    def resource_name(self, resource: str) -> str:
        """Every resource is named `{resource}-{suffix}` so that suffixed copies never collide."""
        return f"{resource}-{self.suffix}"

    def with_suffix(self, suffix: str | None) -> EnvironmentConfig:
        """A validated copy with another suffix, for isolated copies such as `pr42`."""
        if not suffix:
            return self
        return _validate({**self.model_dump(mode="json"), "suffix": suffix}, f"--suffix {suffix}")


def _format_error(source: str, error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"] if not str(part).startswith("function-"))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "literal_error" and "expected" in item.get("ctx", {}):
            message = f"must be one of {item['ctx']['expected']}"
        shown = item.get("input")
        suffix = f" (got {shown!r})" if shown is not None and not isinstance(shown, dict) else ""
        parts.append(f"{location or '<top level>'}: {message}{suffix}")
    return f"{source}: " + "; ".join(parts)


def _validate(data: object, source: str) -> EnvironmentConfig:
    try:
        return EnvironmentConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_error(source, error)) from None


def load_config(name: str, *, directory: Path = ENVIRONMENTS_DIR) -> EnvironmentConfig:
    """Read and validate `environments/<name>.yaml`; raise ConfigError with one line on any problem."""
    if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", name or ""):
        raise ConfigError(f"unknown environment {name!r}: expected one of {', '.join(ENVIRONMENT_NAMES)}")
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise ConfigError(f"{path.name}: no such environment file (known: {', '.join(known)})")
    shown = f"environments/{path.name}"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{shown}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{shown}: expected a mapping of keys at the top level")
    if data.get("name", name) != name:
        raise ConfigError(f"{shown}: name: must equal the file name {name!r} (got {data['name']!r})")
    return _validate({"name": name, **data}, shown)
