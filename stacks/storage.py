"""Data at rest: the KMS key, the prices table, the dead-letter queues and the topics."""

from __future__ import annotations


from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
)
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from environments.config import EnvironmentConfig
from functions.shared.price_table.keys import PARTITION_KEY, SORT_KEY
from stacks.artifacts import BuiltZip, SynthPaths
from stacks.base import EnvironmentStack
from stacks.iam import policy_document, statement
from stacks.names import FUNCTION_RESOURCES, role_name

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


class StorageStack(EnvironmentStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, paths: SynthPaths) -> None:
        super().__init__(scope, config.resource_name("storage"), config, paths)
        identity = DataAwsCallerIdentity(self, "current")
        partition = DataAwsPartition(self, "partition")
        account_root = f"arn:{partition.partition}:iam::{identity.account_id}:root"
        role_arns = [f"arn:{partition.partition}:iam::{identity.account_id}:role/{role_name(config, fn)}"
                     for fn in FUNCTION_RESOURCES]
        log_group_arns = f"arn:{partition.partition}:logs:{config.region}:{identity.account_id}:log-group:/aws/lambda/*-{config.suffix}"

        self.key = KmsKey(
            self, "key",
            description=f"Crypto price pipeline data and function settings ({config.suffix})",
            enable_key_rotation=True,
            deletion_window_in_days=7,
            policy=policy_document(
                statement("AccountAdministersKey", KEY_ADMIN_ACTIONS, ["*"], principal={"AWS": account_root}),
                # Role ARNs are built from their fixed names: the roles live in the pipeline
                # stack, and naming them as principals would need them to exist first.
                statement("PipelineRolesUseKey", KEY_USE_ACTIONS, ["*"], principal={"AWS": account_root},
                          condition={"ArnEquals": {"aws:PrincipalArn": role_arns}}),
                statement("CloudWatchAlarmsUseKey", ["kms:Decrypt", "kms:GenerateDataKey"], ["*"],
                          principal={"Service": "cloudwatch.amazonaws.com"}),
                statement("LogsServiceUsesKey", KEY_USE_ACTIONS, ["*"],
                          principal={"Service": f"logs.{config.region}.amazonaws.com"},
                          condition={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_group_arns}}),
            ),
        )
        KmsAlias(self, "key-alias", name=f"alias/{config.resource_name('crypto-pipeline')}",
                 target_key_id=self.key.key_id)

        self.table = DynamodbTable(
            self, "prices",
            name=config.resource_name("crypto-prices"),
            billing_mode="PAY_PER_REQUEST",
            hash_key=PARTITION_KEY,
            range_key=SORT_KEY,
            attribute=[DynamodbTableAttribute(name=PARTITION_KEY, type="S"),
                       DynamodbTableAttribute(name=SORT_KEY, type="N")],
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
            server_side_encryption=DynamodbTableServerSideEncryption(enabled=True, kms_key_arn=self.key.arn),
            deletion_protection_enabled=False,
        )

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
        }
        for name, value in outputs.items():
            TerraformOutput(self, name, value=value)

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
