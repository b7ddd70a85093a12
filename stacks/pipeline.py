"""Compute and wiring: the four functions, their roles, the function URLs, the stream mapping,
log alerts, alarms and the price readers' policy."""

from __future__ import annotations

import json

from cdktf import AssetType, TerraformAsset, TerraformOutput
from cdktf_cdktf_provider_aws.cloudwatch_event_rule import CloudwatchEventRule
from cdktf_cdktf_provider_aws.cloudwatch_event_target import CloudwatchEventTarget
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_subscription_filter import CloudwatchLogSubscriptionFilter
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_event_source_mapping import (
    LambdaEventSourceMapping,
    LambdaEventSourceMappingDestinationConfig,
    LambdaEventSourceMappingDestinationConfigOnFailure,
    LambdaEventSourceMappingFilterCriteria,
    LambdaEventSourceMappingFilterCriteriaFilter,
)
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionEnvironment,
    LambdaFunctionTracingConfig,
)
from cdktf_cdktf_provider_aws.lambda_function_event_invoke_config import (
    LambdaFunctionEventInvokeConfig,
    LambdaFunctionEventInvokeConfigDestinationConfig,
    LambdaFunctionEventInvokeConfigDestinationConfigOnFailure,
)
from cdktf_cdktf_provider_aws.lambda_function_url import LambdaFunctionUrl
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from environments.config import EnvironmentConfig, FunctionSettings
from functions.log_alerts.settings import Settings as LogAlertsSettings
from functions.price_api.settings import Settings as PriceApiSettings
from functions.price_enricher.indicators import Windows
from functions.price_enricher.settings import SWEEP_ACTION
from functions.price_enricher.settings import Settings as EnricherSettings
from functions.shared.observability import METRICS_NAMESPACE
from functions.webhook_processor.settings import Settings as WebhookSettings
from stacks.artifacts import BuiltZip, SynthPaths
from stacks.base import EnvironmentStack
from stacks.checkov_skips import skip_check
from stacks.iam import lambda_assume_role_policy, policy_document, statement
from stacks.names import FUNCTION_RESOURCES, function_name, handler_path, log_group_name, role_name
from stacks.storage import StorageStack

# Error lines in the functions' logs: Powertools logs carry "level":"ERROR"; the runtime
# prints "[ERROR]" and "Task timed out". The local runtime applies this same pattern.
ERROR_LOG_PATTERN = '?ERROR ?CRITICAL ?"Task timed out"'
ONLY_INSERT_EVENTS = json.dumps({"eventName": ["INSERT"]})
NO_LAMBDA_DLQ_REASONS = {
    "webhook_processor": "Invoked synchronously by its function URL, where a Lambda DLQ never fires; the "
                         "code sends updates it cannot store to the webhook DLQ itself.",
    "price_enricher": "Invoked synchronously by the stream mapping, where a Lambda DLQ never fires; the "
                      "mapping's on-failure destination is the enricher DLQ.",
    "log_alerts": "Invoked asynchronously by CloudWatch Logs; an alert it cannot send raises the "
                  "log-alerts Errors alarm on the alerts topic, and a DLQ of alerts nobody reads adds nothing.",
    "price_api": "Invoked synchronously by its function URL, where a Lambda DLQ never fires; a failed "
                 "read is the caller's 5xx to retry, and nothing is lost.",
}
# The functions whose error lines reach log-alerts (log-alerts' own errors raise its alarm instead).
ERROR_LINE_SOURCES = ("webhook_processor", "price_enricher", "price_api")


class PipelineStack(EnvironmentStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, paths: SynthPaths, storage: StorageStack,
                 artifacts: dict[str, BuiltZip]) -> None:
        super().__init__(scope, config.resource_name("pipeline"), config, paths)
        self.storage = storage
        self.artifacts = artifacts
        self.log_groups: dict[str, CloudwatchLogGroup] = {}
        table, stream_arn, candles = storage.table, storage.table.stream_arn, storage.candles

        webhook = self._function(
            "webhook_processor",
            [
                # GetItem: price_table.ticks reads a slot's item when a failed condition returns none.
                statement("WriteUpdates", ["dynamodb:GetItem", "dynamodb:PutItem"], [table.arn]),
                statement("QueueFailedUpdates", ["sqs:SendMessage"], [storage.webhook_dlq.arn]),
                # This secret only; it is encrypted with the pipeline key, which UsePipelineKey decrypts.
                statement("ReadWebhookSecrets", ["secretsmanager:GetSecretValue"], [storage.webhook_secrets.arn]),
            ],
            WebhookSettings(table_name=table.name, dlq_url=storage.webhook_dlq.url,
                            default_quote=config.default_quote, max_skew_seconds=config.max_skew_seconds,
                            secrets_arn=storage.webhook_secrets.arn,
                            tick_retention_days=config.tick_retention_days).environment(),
        )
        enricher = self._function(
            "price_enricher",
            [
                statement("ReadHistoryWriteIndicators", ["dynamodb:Query", "dynamodb:PutItem"], [table.arn]),
                statement("ReadTableStream", ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                              "dynamodb:GetShardIterator"], [stream_arn]),
                # No local scenario exercises it: the emulated stream mapping reads the stream ARN the
                # mapping names, where Lambda's own poller lists the table's streams first
                # (UNEXERCISED in tests/e2e/test_least_privilege.py).
                statement("ListTableStreams", ["dynamodb:ListStreams"], ["*"]),
                statement("MaintainCandles", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                                              "dynamodb:UpdateItem"], [candles.arn]),
                statement("AnnounceEnrichedUpdates", ["sns:Publish"], [storage.success_topic.arn]),
                statement("RecordFailedBatches", ["sqs:SendMessage"], [storage.enricher_dlq.arn]),
            ],
            self._enricher_environment(),
        )
        alerts = self._function(
            "log_alerts",
            [statement("PublishAlerts", ["sns:Publish"], [storage.alerts_topic.arn])],
            LogAlertsSettings(topic_arn=storage.alerts_topic.arn).environment(),
        )
        price_api = self._function(
            "price_api",
            [statement("ReadPricesAndCandles", ["dynamodb:GetItem", "dynamodb:Query"], [table.arn, candles.arn])],
            PriceApiSettings(table_name=table.name, candle_table_name=candles.name).environment(),
            # Reads only: decrypting the tables' and its environment's data keys is all it needs.
            key_actions=["kms:Decrypt"],
        )

        url = LambdaFunctionUrl(self, "webhook-url", function_name=webhook.function_name,
                                authorization_type="NONE")
        skip_check(url, "CKV_AWS_258", "Public webhook by design: every request is authenticated in the "
                                       "function by an HMAC-SHA256 signature with a replay window.")
        # An auth-type-NONE URL still needs a resource policy that lets anyone call it, or AWS answers
        # 403 before the function runs (moto does not check it, so only the synth tests see it).
        public = LambdaPermission(
            self, "webhook-url-public", statement_id="FunctionUrlAllowPublicAccess",
            action="lambda:InvokeFunctionUrl", function_name=webhook.function_name, principal="*",
            function_url_auth_type="NONE")
        skip_check(public, "CKV_AWS_301", "The webhook's function URL is public by design: senders are "
                                          "authenticated in the function (HMAC signature or token), not by IAM.")
        # AWS_IAM: only SigV4-signed requests of principals allowed lambda:InvokeFunctionUrl reach the
        # function (the price-readers policy below); CKV_AWS_258 (auth type NONE) does not apply.
        price_api_url = LambdaFunctionUrl(self, "price-api-url", function_name=price_api.function_name,
                                          authorization_type="AWS_IAM")
        readers = IamPolicy(
            self, "price-readers",
            name=config.resource_name("price-readers"),
            description="Call the price API's function URL (SigV4, AWS_IAM); attach to the readers' roles",
            policy=policy_document(
                statement("InvokePriceApiUrl", ["lambda:InvokeFunctionUrl"], [price_api.arn],
                          condition={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}}),
                # Since October 2025 a function URL also checks lambda:InvokeFunction; the condition
                # allows it through the URL only, never as a direct Invoke API call.
                statement("InvokePriceApiThroughUrl", ["lambda:InvokeFunction"], [price_api.arn],
                          condition={"Bool": {"lambda:InvokedViaFunctionUrl": "true"}}),
            ),
        )

        mapping = LambdaEventSourceMapping(
            self, "enricher-stream",
            function_name=enricher.arn,
            event_source_arn=stream_arn,
            starting_position=config.stream.starting_position,
            batch_size=config.stream.batch_size,
            maximum_batching_window_in_seconds=config.stream.maximum_batching_window_seconds,
            maximum_retry_attempts=config.stream.maximum_retry_attempts,
            maximum_record_age_in_seconds=config.stream.maximum_record_age_seconds,
            bisect_batch_on_function_error=config.stream.bisect_batch_on_function_error,
            function_response_types=["ReportBatchItemFailures"],
            # The enricher writes back to the same table: MODIFY records of its own writes
            # must never re-trigger it (DynamoDB is outside Lambda's recursion detection).
            filter_criteria=LambdaEventSourceMappingFilterCriteria(
                filter=[LambdaEventSourceMappingFilterCriteriaFilter(pattern=ONLY_INSERT_EVENTS)]),
            destination_config=LambdaEventSourceMappingDestinationConfig(
                on_failure=LambdaEventSourceMappingDestinationConfigOnFailure(
                    destination_arn=storage.enricher_dlq.arn)),
        )

        for fn, dlq in ((webhook, storage.webhook_dlq), (enricher, storage.enricher_dlq)):
            # Asynchronous invocations only (someone calling `aws lambda invoke --invocation-type Event`):
            # the function URL and the stream invoke synchronously. A failure is kept in the DLQ. A
            # success has no destination: its record would carry the whole request (headers and
            # signature included) and is no price update, so it must not reach the price
            # subscribers of the success topic; what it stored is announced by the enricher anyway.
            LambdaFunctionEventInvokeConfig(
                self, f"{fn.friendly_unique_id}-async",
                function_name=fn.function_name,
                maximum_retry_attempts=2,
                destination_config=LambdaFunctionEventInvokeConfigDestinationConfig(
                    on_failure=LambdaFunctionEventInvokeConfigDestinationConfigOnFailure(destination=dlq.arn),
                ),
            )

        if config.tick_retention_days is not None:
            self._candle_sweep(enricher)

        for function in ERROR_LINE_SOURCES:
            log_group = self.log_groups[function]
            permission = LambdaPermission(
                self, f"{function}-logs-invoke-alerts",
                statement_id=f"AllowErrorLinesFrom-{function}",
                action="lambda:InvokeFunction",
                function_name=alerts.function_name,
                principal=f"logs.{config.region}.amazonaws.com",
                source_arn=f"{log_group.arn}:*",
            )
            CloudwatchLogSubscriptionFilter(
                self, f"{function}-error-lines",
                name=config.resource_name(f"{FUNCTION_RESOURCES[function]}-error-lines"),
                log_group_name=log_group.name,
                filter_pattern=ERROR_LOG_PATTERN,
                destination_arn=alerts.arn,
                depends_on=[permission],
            )

        self.functions = {"webhook_processor": webhook, "price_enricher": enricher, "log_alerts": alerts,
                          "price_api": price_api}
        self.webhook_url = url.function_url
        self._alarms(self.functions)

        outputs = {
            "webhook_function_arn": webhook.arn, "enricher_function_arn": enricher.arn,
            "log_alerts_function_arn": alerts.arn, "webhook_url": url.function_url,
            "event_source_mapping_uuid": mapping.uuid, "price_api_function_arn": price_api.arn,
            "price_api_url": price_api_url.function_url, "price_readers_policy_arn": readers.arn,
        }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)

    def _candle_sweep(self, enricher: LambdaFunction) -> None:
        """With a tick retention, the enricher closes quiet symbols' forming minutes every hour
        (`price_table.candles.sweep`): a tick TTL deletes must already be in a candle. The
        invocation is asynchronous: a failure is retried twice, then its on-failure record goes
        to the enricher DLQ, where `invoke drain-dlq` runs the sweep again."""
        rule = CloudwatchEventRule(
            self, "candle-sweep",
            name=self.config.resource_name("candle-sweep"),
            description="Hourly: close the forming candle minutes of symbols quiet for 15 minutes",
            schedule_expression="rate(1 hour)",
        )
        permission = LambdaPermission(
            self, "candle-sweep-invoke", statement_id="AllowHourlyCandleSweep",
            action="lambda:InvokeFunction", function_name=enricher.function_name,
            principal="events.amazonaws.com", source_arn=rule.arn)
        CloudwatchEventTarget(self, "candle-sweep-enricher", rule=rule.name, arn=enricher.arn,
                              input=json.dumps({"action": SWEEP_ACTION}), depends_on=[permission])

    def function(self, function: str) -> LambdaFunction:
        """One of the stack's functions, for stacks that wire to it (the relay's error lines)."""
        return self.functions[function]

    def _enricher_environment(self) -> dict[str, str]:
        """The enricher's contract: its tables, topic, windows, and the tick retention if any."""
        config, storage = self.config, self.storage
        return EnricherSettings(
            table_name=storage.table.name, topic_arn=storage.success_topic.arn,
            windows=Windows.from_mapping(config.indicator_windows.model_dump()),
            candle_table_name=storage.candles.name, tick_retention_days=config.tick_retention_days).environment()

    def _function(self, function: str, statements: list[dict], environment: dict[str, str], *,
                  key_actions: list[str] | None = None) -> LambdaFunction:
        config = self.config
        settings: FunctionSettings = getattr(config.functions, function)
        name = function_name(config, function)
        log_group = CloudwatchLogGroup(
            self, f"{function}-logs", name=log_group_name(config, function),
            retention_in_days=config.log_retention_days, kms_key_id=self.storage.key.arn,
        )
        skip_check(log_group, "CKV_AWS_338", "Logs are kept 3 days on purpose (cost); alerts are raised "
                                             "from them as they arrive, not read back later.")
        self.log_groups[function] = log_group
        role = IamRole(self, f"{function}-role", name=role_name(config, function),
                       assume_role_policy=lambda_assume_role_policy())
        policy = IamRolePolicy(
            self, f"{function}-policy", role=role.id, name="least-privilege",
            policy=policy_document(
                *statements,
                # No local scenario exercises this one: Lambda writes a function's logs with its role,
                # and the local runtime routes log lines in memory (no CloudWatch Logs call)
                # (UNEXERCISED in tests/e2e/test_least_privilege.py).
                statement("WriteOwnLogStreams", ["logs:CreateLogStream", "logs:PutLogEvents"],
                          [f"{log_group.arn}:*"]),
                statement("UsePipelineKey", key_actions or ["kms:Decrypt", "kms:GenerateDataKey"],
                          [self.storage.key.arn]),
                # Nor this one: the Lambda runtime sends the traces, and there is no X-Ray daemon locally.
                statement("XRayWriteTraces", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
            ),
        )
        if function not in self.artifacts:
            raise ValueError(f"no built zip for {function}: the build must list it (stacks.names.FUNCTION_NAMES)")
        artifact = self.artifacts[function]
        asset = TerraformAsset(self, f"{function}-zip", path=str(artifact.path), type=AssetType.FILE)
        lambda_function = LambdaFunction(
            self, function,
            function_name=name,
            role=role.arn,
            handler=handler_path(function),
            runtime=config.lambda_runtime,
            architectures=["arm64"],
            filename=asset.path,
            source_code_hash=artifact.sha256_base64,
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=settings.reserved_concurrency,
            kms_key_arn=self.storage.key.arn,
            tracing_config=LambdaFunctionTracingConfig(mode="Active"),
            environment=LambdaFunctionEnvironment(variables={
                **environment,
                "POWERTOOLS_SERVICE_NAME": FUNCTION_RESOURCES[function],
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
            }),
            depends_on=[log_group, policy],
        )
        skip_check(lambda_function, "CKV_AWS_117", "No VPC on purpose: the functions reach only AWS APIs; a "
                                                   "VPC adds NAT cost with nothing private to reach.")
        skip_check(lambda_function, "CKV_AWS_272", "Code signing is not used: zips are built reproducibly "
                                                   "in CI and pinned by source_code_hash.")
        skip_check(lambda_function, "CKV_AWS_116", NO_LAMBDA_DLQ_REASONS[function])
        if settings.reserved_concurrency is None:
            skip_check(lambda_function, "CKV_AWS_115", "No reserved concurrency in this environment: a fresh "
                                                       "account (limit 10) rejects any reservation.")
        return lambda_function

    def _alarms(self, functions: dict[str, LambdaFunction]) -> None:
        config, storage = self.config, self.storage
        actions = [storage.alerts_topic.arn]
        period = config.alarms.evaluation_period_seconds
        for key, queue in (("webhook", storage.webhook_dlq), ("enricher", storage.enricher_dlq)):
            CloudwatchMetricAlarm(
                self, f"{key}-dlq-not-empty",
                alarm_name=config.resource_name(f"{key}-dlq-not-empty"),
                alarm_description=f"Messages wait in the {key} DLQ: run `invoke drain-dlq --env {config.name} "
                                  f"--queue {key}`",
                namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": queue.name}, statistic="Maximum", period=period,
                evaluation_periods=1, threshold=0, comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching", alarm_actions=actions,
            )
        CloudwatchMetricAlarm(
            self, "enricher-iterator-age",
            alarm_name=config.resource_name("enricher-iterator-age"),
            alarm_description="The enricher falls behind the table stream",
            namespace="AWS/Lambda", metric_name="IteratorAge",
            dimensions={"FunctionName": functions["price_enricher"].function_name},
            statistic="Maximum", period=period, evaluation_periods=3, threshold=config.alarms.iterator_age_ms,
            comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching", alarm_actions=actions,
        )
        for function, fn in functions.items():
            CloudwatchMetricAlarm(
                self, f"{function}-errors",
                alarm_name=config.resource_name(f"{FUNCTION_RESOURCES[function]}-errors"),
                alarm_description=f"{fn.function_name} raised errors",
                namespace="AWS/Lambda", metric_name="Errors", dimensions={"FunctionName": fn.function_name},
                statistic="Sum", period=period, evaluation_periods=1, threshold=0,
                comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
                alarm_actions=actions,
            )

