"""Data at rest: the KMS key, the prices and candles tables, the webhook secrets, the
dead-letter queues and the topics."""

from __future__ import annotations

from typing import Any

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.secretsmanager_secret import SecretsmanagerSecret
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from environments.config import EnvironmentConfig
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY
from functions.shared.price_table.ticks import EXPIRES_AT
from stacks.artifacts import SynthPaths
from stacks.base import EnvironmentStack
from stacks.checkov_skips import skip_check
from stacks.iam import policy_document, statement
from stacks.names import (
    CANDLES_TABLE_RESOURCE,
    FUNCTION_RESOURCES,
    PRICES_TABLE_RESOURCE,
    log_group_name,
    relay_execution_role_name,
    relay_log_group_name,
    role_name,
    webhook_secrets_name,
)

KEY_ADMIN_ACTIONS = [
    "kms:CancelKeyDeletion", "kms:CreateAlias", "kms:CreateGrant", "kms:DeleteAlias", "kms:DescribeKey",
    "kms:DisableKey", "kms:DisableKeyRotation", "kms:EnableKey", "kms:EnableKeyRotation", "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus", "kms:ListAliases", "kms:ListGrants", "kms:ListKeyPolicies",
    "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:RetireGrant", "kms:RevokeGrant", "kms:ScheduleKeyDeletion",
    "kms:TagResource", "kms:UntagResource", "kms:UpdateAlias", "kms:UpdateKeyDescription",
    # Deployers create encrypted tables, queues and functions through IAM policies of their own.
    "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
]
KEY_USE_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]
# The candles table's keys (functions/shared/price_table/candles.py documents the items).
CANDLE_PARTITION_KEY = "series"
CANDLE_SORT_KEY = "sk"


def log_group_arns(config: EnvironmentConfig, partition: str, account_id: str) -> list[str]:
    """Every log group the pipeline (and the relay, when configured) writes, by its exact ARN: the key
    serves these and no other."""
    names = [log_group_name(config, fn) for fn in FUNCTION_RESOURCES]
    if config.relay is not None:
        names.append(relay_log_group_name(config))
    return [f"arn:{partition}:logs:{config.region}:{account_id}:log-group:{name}" for name in names]


def key_user_role_names(config: EnvironmentConfig) -> list[str]:
    """The roles that use the key: every function's, and the relay's execution role when configured."""
    names = [role_name(config, fn) for fn in FUNCTION_RESOURCES]
    if config.relay is not None:
        names.append(relay_execution_role_name(config))
    return names


class StorageStack(EnvironmentStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, paths: SynthPaths) -> None:
        super().__init__(scope, config.resource_name("storage"), config, paths)
        identity = DataAwsCallerIdentity(self, "current")
        partition = DataAwsPartition(self, "partition")
        account_root = f"arn:{partition.partition}:iam::{identity.account_id}:root"
        role_arns = [f"arn:{partition.partition}:iam::{identity.account_id}:role/{name}"
                     for name in key_user_role_names(config)]
        # Exact names: a pattern such as /aws/lambda/*-<suffix> would let any function of the account
        # whose name ends in the suffix have its logs encrypted with this key.
        log_groups = log_group_arns(config, partition.partition, identity.account_id)

        self.key = KmsKey(
            self, "key",
            description=f"Crypto price pipeline data and function settings ({config.suffix})",
            enable_key_rotation=True,
            # 30 days where destroy backs the tables up (their backups restore only while this key
            # exists), 7 elsewhere: environments/config.py, key_deletion_window_days.
            deletion_window_in_days=config.key_deletion_window_days,
            policy=policy_document(
                statement("AccountAdministersKey", KEY_ADMIN_ACTIONS, ["*"], principal={"AWS": account_root}),
                # Role ARNs are built from their fixed names: the roles live in the pipeline
                # stack, and naming them as principals would need them to exist first.
                statement("PipelineRolesUseKey", KEY_USE_ACTIONS, ["*"], principal={"AWS": account_root},
                          condition={"ArnEquals": {"aws:PrincipalArn": role_arns}}),
                # No local scenario exercises the two service statements below (UNEXERCISED in
                # tests/e2e/test_least_privilege.py): the emulator does not play CloudWatch alarms
                # publishing to the encrypted alerts topic, nor CloudWatch Logs encrypting the log groups.
                statement("CloudWatchAlarmsUseKey", ["kms:Decrypt", "kms:GenerateDataKey"], ["*"],
                          principal={"Service": "cloudwatch.amazonaws.com"}),
                statement("LogsServiceUsesKey", KEY_USE_ACTIONS, ["*"],
                          principal={"Service": f"logs.{config.region}.amazonaws.com"},
                          condition={"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": log_groups}}),
            ),
        )
        KmsAlias(self, "key-alias", name=f"alias/{config.resource_name('crypto-pipeline')}",
                 target_key_id=self.key.key_id)

        self.table = self._table(
            "prices", PRICES_TABLE_RESOURCE, (PARTITION_KEY, "S"), (SORT_KEY, "N"),
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            # Only with a retention: without one, no TTL block at all, and every tick is kept. The
            # attribute is the item format's (epoch seconds, written by the webhook and the
            # webhook-DLQ re-drive); TTL deletes reach the stream as REMOVE records, which the
            # enricher's INSERT-only filter drops.
            ttl=(DynamodbTableTtl(attribute_name=EXPIRES_AT, enabled=True)
                 if config.tick_retention_days is not None else None),
        )
        # No stream: candles are written by the enricher and read by the API; nothing reacts to them.
        self.candles = self._table("candles", CANDLES_TABLE_RESOURCE, (CANDLE_PARTITION_KEY, "S"),
                                   (CANDLE_SORT_KEY, "S"))
        self.webhook_secrets = SecretsmanagerSecret(
            self, "webhook-secrets",
            name=webhook_secrets_name(config),
            description="Webhook sources' signing secrets (JSON document). Set with `invoke secrets`, "
                        "never by Terraform.",
            kms_key_id=self.key.arn,
            # Disposable copies (an emulator, a --suffix copy) are deleted at once, so that the
            # same name can be created again; a named environment keeps 7 days to undo a destroy.
            recovery_window_in_days=0 if config.is_emulated or config.suffix != config.name else 7,
        )
        skip_check(self.webhook_secrets, "CKV2_AWS_57",
                   "No rotation Lambda: the secrets are shared with external senders (exchanges, TradingView), "
                   "which a Lambda cannot hand a new value to. Operators rotate with `invoke secrets` "
                   "(add: new and old both valid; retire: old removed), and the webhook re-reads the secret "
                   "within 60 s, so no deploy is needed.")

        self.webhook_dlq = self._dead_letter_queue("webhook-processor-dlq")
        self.enricher_dlq = self._dead_letter_queue("price-enricher-dlq")
        self.success_topic = SnsTopic(self, "success-topic", name=config.resource_name("price-updates-success"),
                                      kms_master_key_id=self.key.arn)
        self.alerts_topic = SnsTopic(self, "alerts-topic", name=config.resource_name("pipeline-alerts"),
                                     kms_master_key_id=self.key.arn)
        for index, address in enumerate(config.alert_emails):
            SnsTopicSubscription(self, f"alert-email-{index}", topic_arn=self.alerts_topic.arn,
                                 protocol="email", endpoint=address)

        outputs = {
            "table_name": self.table.name, "table_arn": self.table.arn, "stream_arn": self.table.stream_arn,
            "webhook_dlq_url": self.webhook_dlq.url, "enricher_dlq_url": self.enricher_dlq.url,
            "webhook_dlq_arn": self.webhook_dlq.arn, "enricher_dlq_arn": self.enricher_dlq.arn,
            "success_topic_arn": self.success_topic.arn, "alerts_topic_arn": self.alerts_topic.arn,
            "kms_key_id": self.key.key_id, "kms_key_arn": self.key.arn,
            "candle_table_name": self.candles.name, "candle_table_arn": self.candles.arn,
            "webhook_secrets_arn": self.webhook_secrets.arn, "webhook_secrets_name": self.webhook_secrets.name,
        }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)

    def _table(self, resource_id: str, resource: str, hash_key: tuple[str, str], range_key: tuple[str, str],
               **extra: Any) -> DynamodbTable:
        """An on-demand table encrypted with the pipeline key, with point-in-time recovery."""
        return DynamodbTable(
            self, resource_id,
            name=self.config.resource_name(resource),
            billing_mode="PAY_PER_REQUEST",
            hash_key=hash_key[0],
            range_key=range_key[0],
            attribute=[DynamodbTableAttribute(name=name, type=kind) for name, kind in (hash_key, range_key)],
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
            server_side_encryption=DynamodbTableServerSideEncryption(enabled=True, kms_key_arn=self.key.arn),
            deletion_protection_enabled=False,
            **extra,
        )

    def _dead_letter_queue(self, resource: str) -> SqsQueue:
        queue = SqsQueue(
            self, resource,
            name=self.config.resource_name(resource),
            message_retention_seconds=self.config.dlq_retention_seconds,
            kms_master_key_id=self.key.arn,
            # Re-drives hold a message this long before it reappears for another try.
            visibility_timeout_seconds=120,
        )
        return queue
