"""Compute and wiring: the three functions, their roles, the stream mapping, log alerts and alarms."""

from __future__ import annotations

import json

from cdktf import TerraformAsset, AssetType, TerraformOutput, TerraformVariable
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_subscription_filter import CloudwatchLogSubscriptionFilter
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
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
    LambdaFunctionEventInvokeConfigDestinationConfigOnSuccess,
)
from cdktf_cdktf_provider_aws.lambda_function_url import LambdaFunctionUrl
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from environments.config import EnvironmentConfig, FunctionSettings
from stacks.checkov_skips import skip_check
from stacks.artifacts import BuiltZip, SynthPaths
from stacks.base import EnvironmentStack
from stacks.iam import lambda_assume_role_policy, policy_document, statement
from stacks.names import FUNCTION_RESOURCES, function_name, role_name
from stacks.storage import StorageStack
from functions.log_alerts.settings import Settings as LogAlertsSettings
from functions.price_enricher.indicators import Windows
from functions.price_enricher.settings import Settings as EnricherSettings
from functions.shared.observability import METRICS_NAMESPACE
from functions.shared.settings import variable_names
from functions.webhook_processor.settings import Settings as WebhookSettings

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
}
HANDLERS = {
    "webhook_processor": "functions.webhook_processor.handler.handler",
    "price_enricher": "functions.price_enricher.handler.handler",
    "log_alerts": "functions.log_alerts.handler.handler",
}


class PipelineStack(EnvironmentStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, paths: SynthPaths, storage: StorageStack,
                 artifacts: dict[str, BuiltZip]) -> None:
        super().__init__(scope, config.resource_name("pipeline"), config, paths)
        self.storage = storage
        self.artifacts = artifacts
        self.log_groups: dict[str, CloudwatchLogGroup] = {}
        webhook_secrets = TerraformVariable(
            self, "webhook_secrets", type="string", sensitive=True, nullable=False,
            description="JSON object: source id -> list of active HMAC secrets (from TF_VAR_webhook_secrets)",
        )
        table, stream_arn = storage.table, storage.table.stream_arn

        webhook = self._function(
            "webhook_processor",
            [
                # GetItem: price_table.ticks reads a slot's item when a failed condition returns none.
                statement("WriteUpdates", ["dynamodb:GetItem", "dynamodb:PutItem"], [table.arn]),
                statement("QueueFailedUpdates", ["sqs:SendMessage"], [storage.webhook_dlq.arn]),
                statement("NotifyAsyncSuccess", ["sns:Publish"], [storage.success_topic.arn]),
            ],
            {
                **WebhookSettings(table_name=table.name, dlq_url=storage.webhook_dlq.url,
                                  default_quote=config.default_quote,
                                  max_skew_seconds=config.max_skew_seconds).environment(),
                variable_names(WebhookSettings)["secrets"]: webhook_secrets.string_value,
            },
        )
        enricher = self._function(
            "price_enricher",
            [
                statement("ReadHistoryWriteIndicators", ["dynamodb:Query", "dynamodb:PutItem"], [table.arn]),
                statement("ReadTableStream", ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                              "dynamodb:GetShardIterator"], [stream_arn]),
                statement("ListTableStreams", ["dynamodb:ListStreams"], ["*"]),
                statement("AnnounceEnrichedUpdates", ["sns:Publish"], [storage.success_topic.arn]),
                statement("RecordFailedBatches", ["sqs:SendMessage"], [storage.enricher_dlq.arn]),
            ],
            EnricherSettings(table_name=table.name, topic_arn=storage.success_topic.arn,
                             windows=Windows.from_mapping(config.indicator_windows.model_dump())).environment(),
        )
        alerts = self._function(
            "log_alerts",
            [statement("PublishAlerts", ["sns:Publish"], [storage.alerts_topic.arn])],
            LogAlertsSettings(topic_arn=storage.alerts_topic.arn).environment(),
        )

        url = LambdaFunctionUrl(self, "webhook-url", function_name=webhook.function_name,
                                authorization_type="NONE")
        skip_check(url, "CKV_AWS_258", "Public webhook by design: every request is authenticated in the "
                                       "function by an HMAC-SHA256 signature with a replay window.")

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
            # Asynchronous invocations only: the function URL and the stream invoke synchronously.
            LambdaFunctionEventInvokeConfig(
                self, f"{fn.friendly_unique_id}-async",
                function_name=fn.function_name,
                maximum_retry_attempts=2,
                destination_config=LambdaFunctionEventInvokeConfigDestinationConfig(
                    on_success=LambdaFunctionEventInvokeConfigDestinationConfigOnSuccess(
                        destination=storage.success_topic.arn),
                    on_failure=LambdaFunctionEventInvokeConfigDestinationConfigOnFailure(destination=dlq.arn),
                ),
            )

        for function in ("webhook_processor", "price_enricher"):
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

        self._alarms(webhook, enricher, alerts)

        outputs = {
            "webhook_function_arn": webhook.arn, "enricher_function_arn": enricher.arn,
            "log_alerts_function_arn": alerts.arn, "webhook_url": url.function_url,
            "event_source_mapping_uuid": mapping.uuid,
        }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)

    def _function(self, function: str, statements: list[dict], environment: dict[str, str]) -> LambdaFunction:
        config = self.config
        settings: FunctionSettings = getattr(config.functions, function)
        name = function_name(config, function)
        log_group = CloudwatchLogGroup(
            self, f"{function}-logs", name=f"/aws/lambda/{name}",
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
                statement("WriteOwnLogStreams", ["logs:CreateLogStream", "logs:PutLogEvents"],
                          [f"{log_group.arn}:*"]),
                statement("UsePipelineKey", ["kms:Decrypt", "kms:GenerateDataKey"], [self.storage.key.arn]),
                statement("XRayWriteTraces", ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], ["*"]),
            ),
        )
        artifact = self.artifacts[function]
        asset = TerraformAsset(self, f"{function}-zip", path=str(artifact.path), type=AssetType.FILE)
        lambda_function = LambdaFunction(
            self, function,
            function_name=name,
            role=role.arn,
            handler=HANDLERS[function],
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

    def _alarms(self, webhook: LambdaFunction, enricher: LambdaFunction, alerts: LambdaFunction) -> None:
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
            namespace="AWS/Lambda", metric_name="IteratorAge", dimensions={"FunctionName": enricher.function_name},
            statistic="Maximum", period=period, evaluation_periods=3, threshold=config.alarms.iterator_age_ms,
            comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching", alarm_actions=actions,
        )
        for function, fn in (("webhook_processor", webhook), ("price_enricher", enricher), ("log_alerts", alerts)):
            CloudwatchMetricAlarm(
                self, f"{function}-errors",
                alarm_name=config.resource_name(f"{FUNCTION_RESOURCES[function]}-errors"),
                alarm_description=f"{fn.function_name} raised errors",
                namespace="AWS/Lambda", metric_name="Errors", dimensions={"FunctionName": fn.function_name},
                statistic="Sum", period=period, evaluation_periods=1, threshold=0,
                comparison_operator="GreaterThanThreshold", treat_missing_data="notBreaching",
                alarm_actions=actions,
            )

