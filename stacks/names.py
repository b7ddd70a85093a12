"""Resource names shared by the stacks, the tasks and the local runtime."""

from environments.config import EnvironmentConfig

FUNCTION_RESOURCES = {
    "webhook_processor": "webhook-processor",
    "price_enricher": "price-enricher",
    "log_alerts": "log-alerts",
}


def function_name(config: EnvironmentConfig, function: str) -> str:
    return config.resource_name(FUNCTION_RESOURCES[function])


def role_name(config: EnvironmentConfig, function: str) -> str:
    return config.resource_name(f"{FUNCTION_RESOURCES[function]}-role")


def stack_ids(config: EnvironmentConfig) -> list[str]:
    """In dependency order: storage before pipeline."""
    return [config.resource_name("storage"), config.resource_name("pipeline")]
