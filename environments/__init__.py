"""Per-environment settings: one YAML file each, validated by `environments.config`."""
