"""Properties of the synthesized Terraform JSON, for every environment file."""

from __future__ import annotations

import json

import pytest

from environments.config import ENVIRONMENT_NAMES, load_config
from tests.support.policy_scan import iter_policy_statements, policy_violations

ALL = list(ENVIRONMENT_NAMES) + ["dev-pr42"]


def _config(key: str):
    name, _, suffix = key.partition("-")
    return load_config(name).with_suffix(suffix or None)


def _docs(synthesized, key):
    app = synthesized[key]
    return app.stack("storage").document(), app.stack("pipeline").document()


def _one(document, resource_type):
    resources = document["resource"][resource_type]
    assert len(resources) == 1, resources.keys()
    return next(iter(resources.values()))


@pytest.mark.parametrize("key", ALL)
def test_storage_stack(synthesized, key):
    config = _config(key)
    storage, _ = _docs(synthesized, key)
    key_resource = _one(storage, "aws_kms_key")
    assert key_resource["enable_key_rotation"] is True
    assert _one(storage, "aws_kms_alias")["name"] == f"alias/crypto-pipeline-{config.suffix}"

    table = _one(storage, "aws_dynamodb_table")
    assert table["name"] == f"crypto-prices-{config.suffix}"
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert (table["hash_key"], table["range_key"]) == ("symbol", "timestamp")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {("symbol", "S"), ("timestamp", "N")}
    assert table["stream_enabled"] is True and table["stream_view_type"] == "NEW_AND_OLD_IMAGES"
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["server_side_encryption"]["enabled"] is True
    assert table["server_side_encryption"]["kms_key_arn"] == "${aws_kms_key.key.arn}"
    assert table["deletion_protection_enabled"] is False

    queues = storage["resource"]["aws_sqs_queue"]
    assert {q["name"] for q in queues.values()} == {f"webhook-processor-dlq-{config.suffix}",
                                                   f"price-enricher-dlq-{config.suffix}"}
    for queue in queues.values():
        assert queue["message_retention_seconds"] == 345600
        assert queue["kms_master_key_id"] == "${aws_kms_key.key.arn}"
    topics = storage["resource"]["aws_sns_topic"]
    assert {t["name"] for t in topics.values()} == {f"price-updates-success-{config.suffix}",
                                                   f"pipeline-alerts-{config.suffix}"}
    assert all(t["kms_master_key_id"] == "${aws_kms_key.key.arn}" for t in topics.values())
    subscriptions = storage["resource"].get("aws_sns_topic_subscription", {})
    assert sorted(s["endpoint"] for s in subscriptions.values()) == sorted(config.alert_emails)
    assert set(storage["output"]) >= {"table_name", "stream_arn", "success_topic_arn", "alerts_topic_arn",
                                      "webhook_dlq_url", "enricher_dlq_url", "kms_key_id"}


@pytest.mark.parametrize("key", ALL)
def test_key_policy_lets_account_administer_and_pipeline_roles_use(synthesized, key):
    config = _config(key)
    storage, _ = _docs(synthesized, key)
    policy = json.loads(_one(storage, "aws_kms_key")["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert "kms:PutKeyPolicy" in statements["AccountAdministersKey"]["Action"]
    roles = statements["PipelineRolesUseKey"]["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert sorted(r.rsplit("/", 1)[1] for r in roles) == sorted(
        f"{f}-role-{config.suffix}" for f in ("webhook-processor", "price-enricher", "log-alerts"))
    assert statements["CloudWatchAlarmsUseKey"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


@pytest.mark.parametrize("key", ALL)
def test_functions(synthesized, key):
    config = _config(key)
    _, pipeline = _docs(synthesized, key)
    functions = pipeline["resource"]["aws_lambda_function"]
    expected = {"webhook_processor": ("webhook-processor", 1024, 60), "price_enricher": ("price-enricher", 512, 60),
                "log_alerts": ("log-alerts", None, None)}
    assert set(functions) == set(expected)
    for logical, (name, memory, timeout) in expected.items():
        fn = functions[logical]
        settings = getattr(config.functions, logical)
        assert fn["function_name"] == f"{name}-{config.suffix}"
        assert fn["architectures"] == ["arm64"]
        assert fn["runtime"] in ("python3.12", "python3.13")
        assert fn["memory_size"] == (memory or settings.memory_mb) == settings.memory_mb
        assert fn["timeout"] == (timeout or settings.timeout_seconds) == settings.timeout_seconds
        assert fn["kms_key_arn"].endswith("cross-stack-output-aws_kms_keykeyarn}")
        assert fn["tracing_config"] == {"mode": "Active"}
        assert fn["source_code_hash"] and fn["filename"].endswith(f"{logical}.zip")
        assert f"aws_cloudwatch_log_group.{logical}-logs" in fn["depends_on"]
        assert fn["role"] == f"${{aws_iam_role.{logical}-role.arn}}"
        assert fn.get("reserved_concurrent_executions") == settings.reserved_concurrency
    variables = functions["webhook_processor"]["environment"]["variables"]
    assert variables["WEBHOOK_SECRETS"] == "${var.webhook_secrets}"
    assert pipeline["variable"]["webhook_secrets"]["sensitive"] is True
    assert "default" not in pipeline["variable"]["webhook_secrets"]
    assert set(variables) >= {"TABLE_NAME", "DLQ_URL", "DEFAULT_QUOTE", "MAX_SKEW_SECONDS"}
    enricher_vars = functions["price_enricher"]["environment"]["variables"]
    assert json.loads(enricher_vars["INDICATOR_WINDOWS"]) == config.indicator_windows.model_dump()
    assert "SUCCESS_TOPIC_ARN" in enricher_vars
    assert "ALERTS_TOPIC_ARN" in functions["log_alerts"]["environment"]["variables"]


def test_reserved_concurrency_is_per_environment(synthesized):
    prod = synthesized["prod"].stack("pipeline").document()["resource"]["aws_lambda_function"]
    dev = synthesized["dev"].stack("pipeline").document()["resource"]["aws_lambda_function"]
    assert all(fn.get("reserved_concurrent_executions") for fn in prod.values())
    assert not any("reserved_concurrent_executions" in fn for fn in dev.values())


@pytest.mark.parametrize("key", ALL)
def test_stream_mapping_only_inserts_with_partial_failures_and_dlq(synthesized, key):
    config = _config(key)
    _, pipeline = _docs(synthesized, key)
    mapping = _one(pipeline, "aws_lambda_event_source_mapping")
    assert mapping["function_name"] == "${aws_lambda_function.price_enricher.arn}"
    assert mapping["event_source_arn"].endswith("stream_arn}")
    assert [json.loads(f["pattern"]) for f in mapping["filter_criteria"]["filter"]] == [{"eventName": ["INSERT"]}]
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    assert 0 <= mapping["maximum_retry_attempts"] <= 10
    assert 60 <= mapping["maximum_record_age_in_seconds"] <= 86400
    assert mapping["batch_size"] == config.stream.batch_size
    assert mapping["destination_config"]["on_failure"]["destination_arn"].endswith("price-enricher-dlqarn}")


@pytest.mark.parametrize("key", ALL)
def test_url_async_destinations_logs_and_alerts(synthesized, key):
    config = _config(key)
    _, pipeline = _docs(synthesized, key)
    resources = pipeline["resource"]
    url = _one(pipeline, "aws_lambda_function_url")
    assert url["authorization_type"] == "NONE"
    assert url["function_name"] == "${aws_lambda_function.webhook_processor.function_name}"

    invoke_configs = resources["aws_lambda_function_event_invoke_config"]
    assert sorted(c["function_name"] for c in invoke_configs.values()) == [
        "${aws_lambda_function.price_enricher.function_name}",
        "${aws_lambda_function.webhook_processor.function_name}"]
    for invoke_config in invoke_configs.values():
        destinations = invoke_config["destination_config"]
        assert destinations["on_success"]["destination"].endswith("success-topicarn}")
        assert destinations["on_failure"]["destination"].endswith("dlqarn}")

    groups = resources["aws_cloudwatch_log_group"]
    assert sorted(g["name"] for g in groups.values()) == sorted(
        f"/aws/lambda/{n}-{config.suffix}" for n in ("webhook-processor", "price-enricher", "log-alerts"))
    assert all(g["retention_in_days"] == 3 for g in groups.values())

    filters = resources["aws_cloudwatch_log_subscription_filter"]
    assert sorted(f["log_group_name"] for f in filters.values()) == [
        "${aws_cloudwatch_log_group.price_enricher-logs.name}",
        "${aws_cloudwatch_log_group.webhook_processor-logs.name}"]
    permissions = resources["aws_lambda_permission"]
    for subscription in filters.values():
        assert subscription["destination_arn"] == "${aws_lambda_function.log_alerts.arn}"
        assert "ERROR" in subscription["filter_pattern"]
        [permission_ref] = subscription["depends_on"]
        permission = permissions[permission_ref.split(".", 1)[1]]
        assert permission["principal"] == f"logs.{config.region}.amazonaws.com"
        assert permission["function_name"] == "${aws_lambda_function.log_alerts.function_name}"

    alarms = resources["aws_cloudwatch_metric_alarm"].values()
    metrics = sorted((a["namespace"], a["metric_name"]) for a in alarms)
    assert metrics.count(("AWS/SQS", "ApproximateNumberOfMessagesVisible")) == 2
    assert ("AWS/Lambda", "IteratorAge") in metrics and metrics.count(("AWS/Lambda", "Errors")) == 3
    assert all(a["alarm_actions"] == ["${data.terraform_remote_state.cross-stack-reference-input-storage-"
                                      f"{config.suffix}.outputs.cross-stack-output-aws_sns_topicalerts-topicarn}}"]
               for a in alarms)
    assert set(pipeline["output"]) >= {"webhook_url", "webhook_function_arn", "enricher_function_arn",
                                       "log_alerts_function_arn"}


@pytest.mark.parametrize("key", ALL)
def test_one_least_privilege_role_per_function(synthesized, key):
    storage, pipeline = _docs(synthesized, key)
    roles = pipeline["resource"]["aws_iam_role"]
    assert len(roles) == 3
    for document in (storage, pipeline):
        assert policy_violations(document) == []
    actions = {}
    for found in iter_policy_statements(pipeline):
        if found.address.startswith("aws_iam_role_policy."):
            role = found.address.split(".")[1].removesuffix("-policy")
            actions.setdefault(role, set()).update(found.statement["Action"])
    # Every DynamoDB call the shared write makes (conditional put, and its read-back fallback), nothing more.
    assert {a for a in actions["webhook_processor"] if a.startswith("dynamodb:")} == {"dynamodb:GetItem",
                                                                                      "dynamodb:PutItem"}
    # The enricher reads history and writes each enriched item back with a conditional put; it never
    # updates, deletes or reads items one by one.
    assert {a for a in actions["price_enricher"] if a.startswith("dynamodb:")} == {
        "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DescribeStream", "dynamodb:GetRecords",
        "dynamodb:GetShardIterator", "dynamodb:ListStreams"}
    assert not any(a.startswith("dynamodb:") for a in actions["log_alerts"])


def test_policy_scan_catches_wildcards():
    bad = {"resource": {"aws_iam_role_policy": {"p": {"policy": json.dumps({"Statement": [
        {"Sid": "Broad", "Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]})}}}}
    problems = policy_violations(bad)
    assert any("wildcard action" in p for p in problems)
    assert any("wildcard resource without a reason" in p for p in problems)


@pytest.mark.parametrize("key", ALL)
def test_names_carry_the_suffix_and_nothing_is_retained(synthesized, key):
    config = _config(key)
    for document in _docs(synthesized, key):
        for resource_type, resources in document["resource"].items():
            for body in resources.values():
                assert "prevent_destroy" not in json.dumps(body.get("lifecycle", {}))
                name = body.get("name") or body.get("function_name") or body.get("alarm_name")
                if isinstance(name, str) and not name.startswith("${") and resource_type != "aws_iam_role_policy":
                    assert config.suffix in name, (resource_type, name)


def test_state_backends(synthesized):
    local = synthesized["local"].stack("storage").document()["terraform"]["backend"]
    assert local["local"]["path"].endswith("build/state/local/storage-local.tfstate")
    prod = synthesized["prod"].stack("pipeline").document()["terraform"]["backend"]["s3"]
    assert prod["bucket"] == "crypto-pipeline-tfstate-prod" and prod["use_lockfile"] is True
    assert prod["key"] == "crypto-price-pipeline/prod/pipeline-prod.tfstate" and prod["encrypt"] is True
    local_provider = synthesized["local"].stack("storage").document()["terraform"]["required_providers"]["aws"]
    assert local_provider["version"] == "5.100.0"
    assert synthesized["prod"].stack("storage").document()["terraform"]["required_providers"]["aws"]["version"] != "5.100.0"


def test_cross_stack_references_resolve_through_remote_state(synthesized):
    pipeline = synthesized["dev-pr42"].stack("pipeline")
    assert pipeline.dependencies == ("storage-pr42",)
    remote = pipeline.document()["data"]["terraform_remote_state"]
    [reference] = remote.values()
    assert reference["backend"] == "s3" and reference["config"]["key"].endswith("storage-pr42.tfstate")
    storage_outputs = synthesized["dev-pr42"].stack("storage").document()["output"]
    assert any(name.startswith("cross-stack-output-aws_dynamodb_table") for name in storage_outputs)
    assert [s.name for s in synthesized["dev-pr42"].stacks] == ["storage-pr42", "pipeline-pr42"]


def test_no_secret_in_synthesized_json(synthesized):
    local_secret = load_config("local").local_webhook_secrets["local-demo"][0]
    for app in synthesized.values():
        for stack in app.stacks:
            assert local_secret not in (stack.directory / "cdk.tf.json").read_text()
