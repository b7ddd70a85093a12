"""Resource names shared by the stacks, the tasks and the local runtime."""

from environments.config import EnvironmentConfig

# The one list of the functions: the package under functions/ -> its resource name. The build,
# the stacks, the local runtime and the benchmarks all iterate this mapping.
FUNCTION_RESOURCES = {
    "webhook_processor": "webhook-processor",
    "price_enricher": "price-enricher",
    "log_alerts": "log-alerts",
    "price_api": "price-api",
}
FUNCTION_NAMES = tuple(FUNCTION_RESOURCES)
# The tables' base names (the environment's suffix is appended by `EnvironmentConfig.resource_name`).
PRICES_TABLE_RESOURCE = "crypto-prices"
CANDLES_TABLE_RESOURCE = "price-candles"
# One Secrets Manager secret per environment holds every webhook source's signing secrets.
WEBHOOK_SECRETS_RESOURCE = "webhook-secrets"


def function_name(config: EnvironmentConfig, function: str) -> str:
    return config.resource_name(FUNCTION_RESOURCES[function])


def handler_path(function: str) -> str:
    """Every function's entry point has the same place: functions/<package>/handler.py, `handler`."""
    return f"functions.{function}.handler.handler"


def role_name(config: EnvironmentConfig, function: str) -> str:
    return config.resource_name(f"{FUNCTION_RESOURCES[function]}-role")


def log_group_name(config: EnvironmentConfig, function: str) -> str:
    """Named exactly (not a pattern) so that the key policy can name every log group it serves."""
    return f"/aws/lambda/{function_name(config, function)}"


def webhook_secrets_name(config: EnvironmentConfig) -> str:
    """The secret's name: the tasks and the local runner address it by name, the role by its ARN."""
    return config.resource_name(WEBHOOK_SECRETS_RESOURCE)


def relay_log_group_name(config: EnvironmentConfig) -> str:
    return f"/ecs/{config.resource_name('relay')}"


def relay_execution_role_name(config: EnvironmentConfig) -> str:
    """The relay task's execution role: pulls the image, writes logs, reads the webhook secret."""
    return config.resource_name("relay-execution-role")


def stack_ids(config: EnvironmentConfig) -> list[str]:
    """In dependency order: storage before pipeline, the relay (when configured) last."""
    ids = [config.resource_name("storage"), config.resource_name("pipeline")]
    return ids + [config.resource_name("relay")] if config.relay is not None else ids
