"""Properties of the synthesized Terraform JSON, for every environment file."""

from __future__ import annotations

import json

import pytest

from environments.config import ENVIRONMENT_NAMES, load_config
from functions.price_enricher.settings import SWEEP_ACTION
from functions.shared.price_table.ticks import EXPIRES_AT
from tests.support.policy_scan import iter_policy_statements, policy_violations
from tests.support.variant import TICK_RETENTION_DAYS

ALL = list(ENVIRONMENT_NAMES) + ["dev-pr42"]
FUNCTIONS = {"webhook_processor": "webhook-processor", "price_enricher": "price-enricher",
             "log_alerts": "log-alerts", "price_api": "price-api"}


def _storage_ref(config, output: str) -> str:
    """How the pipeline stack reads a storage output (a cross-stack remote-state reference)."""
    return (f"${{data.terraform_remote_state.cross-stack-reference-input-storage-{config.suffix}"
            f".outputs.cross-stack-output-{output}}}")


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
    # prod's tables are backed up before a destroy and restore only while the key exists: the longest window
    assert key_resource["deletion_window_in_days"] == (30 if config.name == "prod" else 7)
    assert _one(storage, "aws_kms_alias")["name"] == f"alias/crypto-pipeline-{config.suffix}"

    tables = storage["resource"]["aws_dynamodb_table"]
    assert set(tables) == {"prices", "candles"}
    table = tables["prices"]
    assert table["name"] == f"crypto-prices-{config.suffix}"
    assert table["billing_mode"] == "PAY_PER_REQUEST"
    assert (table["hash_key"], table["range_key"]) == ("symbol", "timestamp")
    assert {(a["name"], a["type"]) for a in table["attribute"]} == {("symbol", "S"), ("timestamp", "N")}
    assert table["stream_enabled"] is True and table["stream_view_type"] == "NEW_AND_OLD_IMAGES"
    assert table["point_in_time_recovery"] == {"enabled": True}
    assert table["server_side_encryption"]["enabled"] is True
    assert table["server_side_encryption"]["kms_key_arn"] == "${aws_kms_key.key.arn}"
    assert table["deletion_protection_enabled"] is False
    assert "ttl" not in table  # no environment file sets tick_retention_days: every tick is kept

    candles = tables["candles"]
    assert candles["name"] == f"price-candles-{config.suffix}"
    assert candles["billing_mode"] == "PAY_PER_REQUEST"
    assert (candles["hash_key"], candles["range_key"]) == ("series", "sk")
    assert {(a["name"], a["type"]) for a in candles["attribute"]} == {("series", "S"), ("sk", "S")}
    assert "stream_enabled" not in candles and "stream_view_type" not in candles
    assert candles["point_in_time_recovery"] == {"enabled": True}
    assert candles["server_side_encryption"] == {"enabled": True, "kms_key_arn": "${aws_kms_key.key.arn}"}

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
                                      "webhook_dlq_url", "enricher_dlq_url", "kms_key_id", "candle_table_name",
                                      "candle_table_arn", "webhook_secrets_arn", "webhook_secrets_name"}
    assert storage["output"]["candle_table_arn"]["value"] == "${aws_dynamodb_table.candles.arn}"


@pytest.mark.parametrize("key", ALL)
def test_webhook_secret_is_created_without_a_value(synthesized, key):
    """One secret per environment, encrypted with the pipeline key; its value is never Terraform's."""
    config = _config(key)
    storage, pipeline = _docs(synthesized, key)
    secret = _one(storage, "aws_secretsmanager_secret")
    assert secret["name"] == f"webhook-secrets-{config.suffix}"
    assert secret["kms_key_id"] == "${aws_kms_key.key.arn}"
    disposable = config.is_emulated or config.suffix != config.name
    assert secret["recovery_window_in_days"] == (0 if disposable else 7)
    for document in (storage, pipeline):
        assert "aws_secretsmanager_secret_version" not in document["resource"]
        assert "variable" not in document  # no TF variable can carry a secret into plan or state
    assert storage["output"]["webhook_secrets_arn"]["value"] == "${aws_secretsmanager_secret.webhook-secrets.arn}"


@pytest.mark.parametrize("key", ALL)
def test_key_policy_lets_account_administer_and_pipeline_roles_use(synthesized, key):
    config = _config(key)
    storage, _ = _docs(synthesized, key)
    policy = json.loads(_one(storage, "aws_kms_key")["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert "kms:PutKeyPolicy" in statements["AccountAdministersKey"]["Action"]
    roles = statements["PipelineRolesUseKey"]["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert sorted(r.rsplit("/", 1)[1] for r in roles) == sorted(f"{f}-role-{config.suffix}" for f in FUNCTIONS.values())
    assert statements["CloudWatchAlarmsUseKey"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}


@pytest.mark.parametrize("key", ALL)
def test_key_serves_exactly_the_pipelines_log_groups(synthesized, key):
    """Named log groups, not `/aws/lambda/*-<suffix>`: another function of the account whose name
    ends in the suffix must not get its logs encrypted with (and readable through) this key."""
    config = _config(key)
    storage, pipeline = _docs(synthesized, key)
    statements = {s["Sid"]: s for s in json.loads(_one(storage, "aws_kms_key")["policy"])["Statement"]}
    condition = statements["LogsServiceUsesKey"]["Condition"]
    assert list(condition) == ["ArnEquals"]
    arns = condition["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    prefix = (f"arn:${{data.aws_partition.partition.partition}}:logs:{config.region}:"
              "${data.aws_caller_identity.current.account_id}:log-group:")
    assert all(arn.startswith(prefix) and "*" not in arn for arn in arns)
    groups = sorted(g["name"] for g in pipeline["resource"]["aws_cloudwatch_log_group"].values())
    assert sorted(arn.removeprefix(prefix) for arn in arns) == groups
    assert len(groups) == len(FUNCTIONS)


@pytest.mark.parametrize("key", ALL)
def test_functions(synthesized, key):
    config = _config(key)
    _, pipeline = _docs(synthesized, key)
    functions = pipeline["resource"]["aws_lambda_function"]
    expected = {"webhook_processor": ("webhook-processor", 1024, 60), "price_enricher": ("price-enricher", 512, 60),
                "log_alerts": ("log-alerts", None, None), "price_api": ("price-api", 256, 15)}
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
        assert fn["handler"] == f"functions.{logical}.handler.handler"
    variables = functions["webhook_processor"]["environment"]["variables"]
    # The secret's ARN, never its value: the value is read from Secrets Manager at run time.
    assert "WEBHOOK_SECRETS" not in variables
    assert variables["WEBHOOK_SECRETS_ARN"] == _storage_ref(config, "aws_secretsmanager_secretwebhook-secretsarn")
    assert "TICK_RETENTION_DAYS" not in variables
    assert set(variables) >= {"TABLE_NAME", "DLQ_URL", "DEFAULT_QUOTE", "MAX_SKEW_SECONDS"}
    enricher_vars = functions["price_enricher"]["environment"]["variables"]
    assert json.loads(enricher_vars["INDICATOR_WINDOWS"]) == config.indicator_windows.model_dump()
    assert "SUCCESS_TOPIC_ARN" in enricher_vars
    assert enricher_vars["CANDLE_TABLE_NAME"] == _storage_ref(config, "aws_dynamodb_tablecandlesname")
    assert "TICK_RETENTION_DAYS" not in enricher_vars  # no retention: every late minute is recomputed
    assert "ALERTS_TOPIC_ARN" in functions["log_alerts"]["environment"]["variables"]
    api_vars = functions["price_api"]["environment"]["variables"]
    assert {k: v for k, v in api_vars.items() if not k.startswith("POWERTOOLS_")} == {
        "TABLE_NAME": _storage_ref(config, "aws_dynamodb_tablepricesname"),
        "CANDLE_TABLE_NAME": _storage_ref(config, "aws_dynamodb_tablecandlesname")}


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
    urls = resources["aws_lambda_function_url"]
    assert set(urls) == {"webhook-url", "price-api-url"}
    assert urls["webhook-url"]["authorization_type"] == "NONE"
    assert urls["webhook-url"]["function_name"] == "${aws_lambda_function.webhook_processor.function_name}"
    assert urls["price-api-url"]["authorization_type"] == "AWS_IAM"
    assert urls["price-api-url"]["function_name"] == "${aws_lambda_function.price_api.function_name}"

    invoke_configs = resources["aws_lambda_function_event_invoke_config"]
    assert sorted(c["function_name"] for c in invoke_configs.values()) == [
        "${aws_lambda_function.price_enricher.function_name}",
        "${aws_lambda_function.webhook_processor.function_name}"]
    for invoke_config in invoke_configs.values():
        destinations = invoke_config["destination_config"]
        # No on-success destination: its record (the whole request) must not reach price subscribers.
        assert "on_success" not in destinations
        assert destinations["on_failure"]["destination"].endswith("dlqarn}")

    groups = resources["aws_cloudwatch_log_group"]
    assert sorted(g["name"] for g in groups.values()) == sorted(
        f"/aws/lambda/{n}-{config.suffix}" for n in FUNCTIONS.values())
    assert all(g["retention_in_days"] == 3 for g in groups.values())
    assert all(g["kms_key_id"].endswith("cross-stack-output-aws_kms_keykeyarn}") for g in groups.values())

    filters = resources["aws_cloudwatch_log_subscription_filter"]
    assert sorted(f["log_group_name"] for f in filters.values()) == [
        "${aws_cloudwatch_log_group.price_api-logs.name}",
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
    assert ("AWS/Lambda", "IteratorAge") in metrics and metrics.count(("AWS/Lambda", "Errors")) == 4
    errors = {a["dimensions"]["FunctionName"] for a in alarms if a["metric_name"] == "Errors"}
    assert errors == {f"${{aws_lambda_function.{fn}.function_name}}" for fn in FUNCTIONS}
    assert all(a["alarm_actions"] == ["${data.terraform_remote_state.cross-stack-reference-input-storage-"
                                      f"{config.suffix}.outputs.cross-stack-output-aws_sns_topicalerts-topicarn}}"]
               for a in alarms)
    assert set(pipeline["output"]) >= {"webhook_url", "webhook_function_arn", "enricher_function_arn",
                                       "log_alerts_function_arn", "price_api_url", "price_readers_policy_arn"}
    assert pipeline["output"]["price_api_url"]["value"] == "${aws_lambda_function_url.price-api-url.function_url}"
    assert pipeline["output"]["price_readers_policy_arn"]["value"] == "${aws_iam_policy.price-readers.arn}"


def _role_statements(pipeline) -> dict[str, dict[str, dict]]:
    """role -> Sid -> statement, from the functions' inline policies."""
    found: dict[str, dict[str, dict]] = {}
    for item in iter_policy_statements(pipeline):
        if item.address.startswith("aws_iam_role_policy."):
            role = item.address.split(".")[1].removesuffix("-policy")
            found.setdefault(role, {})[item.statement["Sid"]] = item.statement
    return found


def _grants(statements: dict[str, dict], prefix: str) -> set[tuple[str, str]]:
    """(action, resource) pairs of one role whose action starts with `prefix`."""
    pairs = set()
    for item in statements.values():
        resources = item["Resource"] if isinstance(item["Resource"], list) else [item["Resource"]]
        pairs |= {(a, r) for a in item["Action"] if a.startswith(prefix) for r in resources}
    return pairs


@pytest.mark.parametrize("key", ALL)
def test_one_least_privilege_role_per_function(synthesized, key):
    config = _config(key)
    storage, pipeline = _docs(synthesized, key)
    roles = pipeline["resource"]["aws_iam_role"]
    assert sorted(r["name"] for r in roles.values()) == sorted(f"{n}-role-{config.suffix}" for n in FUNCTIONS.values())
    for document in (storage, pipeline):
        assert policy_violations(document) == []
    statements = _role_statements(pipeline)
    prices = _storage_ref(config, "aws_dynamodb_tablepricesarn")
    candles = _storage_ref(config, "aws_dynamodb_tablecandlesarn")
    key_arn = _storage_ref(config, "aws_kms_keykeyarn")
    # Every DynamoDB call the shared write makes (conditional put, and its read-back fallback), nothing more.
    assert _grants(statements["webhook_processor"], "dynamodb:") == {("dynamodb:GetItem", prices),
                                                                    ("dynamodb:PutItem", prices)}
    # The webhook reads its one secret, by exact ARN, and publishes nowhere.
    assert _grants(statements["webhook_processor"], "secretsmanager:") == {
        ("secretsmanager:GetSecretValue", _storage_ref(config, "aws_secretsmanager_secretwebhook-secretsarn"))}
    assert _grants(statements["webhook_processor"], "sns:") == set()
    # The enricher reads history and writes each enriched item back with a conditional put; it
    # maintains candles in their own table and touches nothing else of DynamoDB.
    assert {a for a, _ in _grants(statements["price_enricher"], "dynamodb:")} == {
        "dynamodb:Query", "dynamodb:PutItem", "dynamodb:DescribeStream", "dynamodb:GetRecords",
        "dynamodb:GetShardIterator", "dynamodb:ListStreams", "dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert {(a, r) for a, r in _grants(statements["price_enricher"], "dynamodb:") if r == candles} == {
        ("dynamodb:Query", candles), ("dynamodb:GetItem", candles), ("dynamodb:PutItem", candles),
        ("dynamodb:UpdateItem", candles)}
    assert {(a, r) for a, r in _grants(statements["price_enricher"], "dynamodb:") if r == prices} == {
        ("dynamodb:Query", prices), ("dynamodb:PutItem", prices)}
    assert not any(a.startswith("dynamodb:") for a, _ in _grants(statements["log_alerts"], ""))
    # The price API only reads both tables and decrypts; no write, no other service.
    api = statements["price_api"]
    assert _grants(api, "dynamodb:") == {(a, t) for a in ("dynamodb:GetItem", "dynamodb:Query")
                                        for t in (prices, candles)}
    assert _grants(api, "kms:") == {("kms:Decrypt", key_arn)}
    assert {a.split(":")[0] for a, _ in _grants(api, "")} == {"dynamodb", "kms", "logs", "xray"}
    assert not any("secretsmanager:" in a for role, sts in statements.items() if role != "webhook_processor"
                   for a, _ in _grants(sts, ""))


@pytest.mark.parametrize("key", ALL)
def test_price_readers_policy_invokes_only_the_price_api_url(synthesized, key):
    config = _config(key)
    _, pipeline = _docs(synthesized, key)
    policy = _one(pipeline, "aws_iam_policy")
    assert policy["name"] == f"price-readers-{config.suffix}"
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert statements["InvokePriceApiUrl"] == {
        "Sid": "InvokePriceApiUrl", "Effect": "Allow", "Action": ["lambda:InvokeFunctionUrl"],
        "Resource": "${aws_lambda_function.price_api.arn}",
        "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}}
    # Function URLs created since October 2025 also check lambda:InvokeFunction: through the URL only.
    assert statements["InvokePriceApiThroughUrl"] == {
        "Sid": "InvokePriceApiThroughUrl", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
        "Resource": "${aws_lambda_function.price_api.arn}",
        "Condition": {"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}}
    assert set(statements) == {"InvokePriceApiUrl", "InvokePriceApiThroughUrl"}


def test_tick_retention_turns_on_ttl_and_reaches_the_webhook_and_the_enricher(variant):
    """An environment with tick_retention_days: TTL on the items' `expires_at` (the attribute the
    item format writes), the webhook and the enricher told the days (the enricher keeps candle
    maintenance away from expired ticks), and the enricher's stream filter still INSERT only
    (TTL deletes are REMOVE records)."""
    storage, pipeline = variant.stack("storage").document(), variant.stack("pipeline").document()
    prices = storage["resource"]["aws_dynamodb_table"]["prices"]
    assert prices["ttl"] == {"attribute_name": EXPIRES_AT, "enabled": True} and EXPIRES_AT == "expires_at"
    assert "ttl" not in storage["resource"]["aws_dynamodb_table"]["candles"]
    functions = pipeline["resource"]["aws_lambda_function"]
    for function in ("webhook_processor", "price_enricher"):
        assert functions[function]["environment"]["variables"]["TICK_RETENTION_DAYS"] == str(TICK_RETENTION_DAYS)
    mapping = _one(pipeline, "aws_lambda_event_source_mapping")
    assert [json.loads(f["pattern"]) for f in mapping["filter_criteria"]["filter"]] == [{"eventName": ["INSERT"]}]
    for document in (storage, pipeline):
        assert policy_violations(document) == []
    # Hourly, the enricher closes quiet symbols' forming minutes before TTL can delete their ticks.
    rule = _one(pipeline, "aws_cloudwatch_event_rule")
    assert rule["schedule_expression"] == "rate(1 hour)"
    target = _one(pipeline, "aws_cloudwatch_event_target")
    assert target["arn"] == "${aws_lambda_function.price_enricher.arn}"
    assert json.loads(target["input"]) == {"action": SWEEP_ACTION}
    assert target["rule"] == "${aws_cloudwatch_event_rule.candle-sweep.name}"
    permission = pipeline["resource"]["aws_lambda_permission"]["candle-sweep-invoke"]
    assert (permission["principal"], permission["source_arn"]) == ("events.amazonaws.com",
                                                                   "${aws_cloudwatch_event_rule.candle-sweep.arn}")
    assert permission["function_name"] == "${aws_lambda_function.price_enricher.function_name}"


@pytest.mark.parametrize("key", ALL)
def test_without_a_retention_there_is_no_candle_sweep(synthesized, key):
    _, pipeline = _docs(synthesized, key)
    assert "aws_cloudwatch_event_rule" not in pipeline["resource"]


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
    prod_provider = synthesized["prod"].stack("storage").document()["terraform"]["required_providers"]["aws"]
    assert prod_provider["version"] != "5.100.0"


def test_cross_stack_references_resolve_through_remote_state(synthesized):
    pipeline = synthesized["dev-pr42"].stack("pipeline")
    assert pipeline.dependencies == ("storage-pr42",)
    remote = pipeline.document()["data"]["terraform_remote_state"]
    [reference] = remote.values()
    assert reference["backend"] == "s3" and reference["config"]["key"].endswith("storage-pr42.tfstate")
    storage_outputs = synthesized["dev-pr42"].stack("storage").document()["output"]
    assert any(name.startswith("cross-stack-output-aws_dynamodb_table") for name in storage_outputs)
    assert [s.name for s in synthesized["dev-pr42"].stacks] == ["storage-pr42", "pipeline-pr42"]


def test_no_secret_in_any_synthesized_file(synthesized, variant):
    """The dev-only secret of local.yaml is in no file of any synth output (stack JSON, manifest,
    anything else): it reaches the emulator only through Secrets Manager, after the apply."""
    from environments.config import ENVIRONMENTS_DIR

    local_secret = load_config("local").local_webhook_secrets["local-demo"][0]
    # The needle is right: it is the value committed in local.yaml.
    assert local_secret in (ENVIRONMENTS_DIR / "local.yaml").read_text()
    searched = 0
    for app in [*synthesized.values(), variant]:
        for path in app.outdir.rglob("*"):
            if path.is_file() and path.suffix != ".zip":
                assert local_secret.encode() not in path.read_bytes(), path
                searched += path.suffix == ".json"
    assert searched >= 2 * (len(synthesized) + 1)  # at least every stack's cdk.tf.json


# ---- the relay stack (only with a `relay` section; on in the variant) ----------------------------

def test_no_relay_stack_without_a_relay_section(synthesized):
    for key, app in synthesized.items():
        assert [s.name.rsplit("-", 1)[0] for s in app.stacks] == ["storage", "pipeline"], key
        for stack in app.stacks:
            assert not any(t.startswith("aws_ecs_") for t in stack.document()["resource"]), key


def test_relay_stack_runs_one_arm64_spot_task_after_storage_and_pipeline(variant):
    from stacks.relay_setup import __file__ as setup_file
    from tests.support.variant import RELAY_IMAGE

    relay = variant.stack("relay")
    assert [s.name for s in variant.stacks] == ["storage-local", "pipeline-local", "relay-local"]
    assert set(relay.dependencies) == {"storage-local", "pipeline-local"}
    document = relay.document()
    task = _one(document, "aws_ecs_task_definition")
    assert task["family"] == "relay-local" and task["requires_compatibilities"] == ["FARGATE"]
    assert task["network_mode"] == "awsvpc" and (task["cpu"], task["memory"]) == ("256", "512")
    assert task["runtime_platform"] == {"cpu_architecture": "ARM64", "operating_system_family": "LINUX"}
    assert "task_role_arn" not in task  # the relay calls no AWS API
    assert task["execution_role_arn"] == "${aws_iam_role.relay-execution-role.arn}"
    setup, relay_container = json.loads(task["container_definitions"])
    secret_arn = "${data.terraform_remote_state.cross-stack-reference-input-storage-local.outputs." \
                 "cross-stack-output-aws_secretsmanager_secretwebhook-secretsarn}"
    assert setup["name"] == "relay-setup" and setup["essential"] is False
    assert setup["secrets"] == [{"name": "WEBHOOK_SECRETS_DOCUMENT", "valueFrom": secret_arn}]
    assert setup["command"] == [open(setup_file, encoding="utf-8").read()]
    environment = {item["name"]: item["value"] for item in setup["environment"]}
    config = json.loads(environment["RELAY_CONFIG"])
    assert config["source"] == environment["RELAY_SOURCE"] == "binance-relay"
    assert config["webhook_url"].endswith("cross-stack-output-aws_lambda_function_urlwebhook-urlfunction_url}")
    assert [e["exchange"] for e in config["exchanges"]] == ["binance", "kraken"]
    assert not {"secret", "secret_env", "secret_file"} & set(config)
    assert relay_container["name"] == "relay" and relay_container["essential"] is True
    assert "secrets" not in relay_container and "environment" not in relay_container  # no secret reaches it
    assert relay_container["dependsOn"] == [{"containerName": "relay-setup", "condition": "SUCCESS"}]
    assert relay_container["entryPoint"] == ["python", "-m", "price_relay"]
    assert relay_container["stopTimeout"] == 120
    assert {(m["sourceVolume"], m["readOnly"]) for m in relay_container["mountPoints"]} == {("run", True),
                                                                                              ("spool", False)}
    for container in (setup, relay_container):
        assert container["image"] == RELAY_IMAGE and container["readonlyRootFilesystem"] is True
        options = container["logConfiguration"]["options"]
        assert options["awslogs-group"] == "${aws_cloudwatch_log_group.relay-logs.name}"

    service = _one(document, "aws_ecs_service")
    assert service["desired_count"] == 1
    assert (service["deployment_minimum_healthy_percent"], service["deployment_maximum_percent"]) == (0, 100)
    assert service["capacity_provider_strategy"] == [{"capacity_provider": "FARGATE_SPOT", "weight": 1}]
    assert service["network_configuration"]["assign_public_ip"] is True
    assert service["network_configuration"]["subnets"] == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    cluster = _one(document, "aws_ecs_cluster")
    assert cluster["name"] == "relay-local" and cluster["setting"] == [{"name": "containerInsights",
                                                                        "value": "enabled"}]


def test_relay_network_logs_and_alerts(variant):
    document = variant.stack("relay").document()
    resources = document["resource"]
    group = _one(document, "aws_security_group")
    assert group["vpc_id"] == "vpc-0123456789abcdef0" and "ingress" not in group and "egress" not in group
    assert "aws_vpc_security_group_ingress_rule" not in resources
    rules = resources["aws_vpc_security_group_egress_rule"].values()
    assert sorted((r["ip_protocol"], r["from_port"], r["to_port"], r["cidr_ipv4"]) for r in rules) == [
        ("tcp", 443, 443, "0.0.0.0/0"), ("tcp", 9443, 9443, "0.0.0.0/0")]
    logs = _one(document, "aws_cloudwatch_log_group")
    assert logs["name"] == "/ecs/relay-local" and logs["retention_in_days"] == 3
    assert logs["kms_key_id"].endswith("cross-stack-output-aws_kms_keykeyarn}")
    subscription = _one(document, "aws_cloudwatch_log_subscription_filter")
    assert subscription["destination_arn"].endswith("cross-stack-output-aws_lambda_functionlog_alertsarn}")
    assert "ERROR" in subscription["filter_pattern"]
    alarm = _one(document, "aws_cloudwatch_metric_alarm")
    assert (alarm["namespace"], alarm["metric_name"], alarm["threshold"]) == ("ECS/ContainerInsights",
                                                                              "RunningTaskCount", 1)
    assert alarm["alarm_actions"][0].endswith("cross-stack-output-aws_sns_topicalerts-topicarn}")


def test_relay_execution_role_is_least_privilege_and_the_key_serves_it(variant):
    storage, relay = variant.stack("storage").document(), variant.stack("relay").document()
    assert policy_violations(relay) == [] and policy_violations(storage) == []
    role = _one(relay, "aws_iam_role")
    assert role["name"] == "relay-execution-role-local"
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"}
    statements = {s.statement["Sid"]: s.statement for s in iter_policy_statements(relay)
                  if s.address.startswith("aws_iam_role_policy.")}
    storage_ref = "${data.terraform_remote_state.cross-stack-reference-input-storage-local.outputs.cross-stack-output-"
    assert statements["ReadWebhookSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert statements["ReadWebhookSecrets"]["Resource"] == storage_ref + "aws_secretsmanager_secretwebhook-secretsarn}"
    assert statements["DecryptWebhookSecrets"] == {"Sid": "DecryptWebhookSecrets", "Effect": "Allow",
                                                   "Action": ["kms:Decrypt"],
                                                   "Resource": storage_ref + "aws_kms_keykeyarn}"}
    assert statements["PullRelayImage"]["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/price-relay"
    assert statements["WriteOwnLogStreams"]["Resource"] == "${aws_cloudwatch_log_group.relay-logs.arn}:*"
    assert set(statements) == {"ReadWebhookSecrets", "DecryptWebhookSecrets", "PullRelayImage", "EcrAuthorization",
                               "WriteOwnLogStreams"}
    key_policy = {s["Sid"]: s for s in json.loads(_one(storage, "aws_kms_key")["policy"])["Statement"]}
    roles = key_policy["PipelineRolesUseKey"]["Condition"]["ArnEquals"]["aws:PrincipalArn"]
    assert any(r.endswith(":role/relay-execution-role-local") for r in roles)
    groups = key_policy["LogsServiceUsesKey"]["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert any(g.endswith(":log-group:/ecs/relay-local") for g in groups) and len(groups) == len(FUNCTIONS) + 1


def test_relay_image_outside_ecr_gets_no_ecr_permission():
    from stacks.relay import ecr_repository_arn

    assert ecr_repository_arn("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/relay@sha256:" + "a" * 64) == \
        "arn:aws:ecr:eu-west-1:123456789012:repository/team/relay"
    assert ecr_repository_arn("ghcr.io/example/price-relay:1.0") is None
