"""The exchange relay (relay/price_relay) as one ECS Fargate task: `relay-<suffix>`, only when the
environment file has a `relay` section.

Why Fargate rather than a scheduled Lambda holding websockets ~14 minutes: the relay is a
long-lived process whose guarantee is "received means on disk" (an SQLite spool) and which
replaces its Binance connection only every ~24 h. A Lambda would lose the spool at every
hand-over, overlap two connections each cycle (Kraken rows carry the receive time, so an
overlap stores ticks twice), and need a state store and a scheduler of its own. One Spot
task of 0.25 vCPU runs the relay as written; docs/operations.md, "Where the relay runs", has the trade-offs.

What is in the task:
- `relay-setup` (essential=false, runs first, exits): receives the webhook secrets document
  from Secrets Manager and writes the relay source's newest secret and the relay's
  --config file to the `run` volume (relay/price_relay/task_setup.py says why);
- `relay` (essential): `python -m price_relay --config /run/relay/relay.json`, spool on the
  `spool` volume, stopTimeout 120 s so a Spot interruption's SIGTERM lets it drain.
No task role: the relay calls no AWS API (it posts to the public, HMAC-checked webhook URL).
The execution role pulls the image, writes the log group and reads that one secret.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cdktf import TerraformOutput
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_subscription_filter import CloudwatchLogSubscriptionFilter
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.data_aws_subnets import DataAwsSubnets, DataAwsSubnetsFilter
from cdktf_cdktf_provider_aws.data_aws_vpc import DataAwsVpc
from cdktf_cdktf_provider_aws.ecs_cluster import EcsCluster, EcsClusterSetting
from cdktf_cdktf_provider_aws.ecs_cluster_capacity_providers import (
    EcsClusterCapacityProviders,
    EcsClusterCapacityProvidersDefaultCapacityProviderStrategy,
)
from cdktf_cdktf_provider_aws.ecs_service import (
    EcsService,
    EcsServiceCapacityProviderStrategy,
    EcsServiceDeploymentCircuitBreaker,
    EcsServiceNetworkConfiguration,
)
from cdktf_cdktf_provider_aws.ecs_task_definition import (
    EcsTaskDefinition,
    EcsTaskDefinitionRuntimePlatform,
    EcsTaskDefinitionVolume,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from constructs import Construct

from environments.config import EnvironmentConfig, RelaySettings
from stacks.artifacts import SynthPaths
from stacks.base import EnvironmentStack
from stacks.checkov_skips import skip_check
from stacks.iam import ecs_tasks_assume_role_policy, policy_document, statement
from stacks.names import relay_execution_role_name, relay_log_group_name
from stacks.pipeline import ERROR_LOG_PATTERN, PipelineStack
from stacks.storage import StorageStack

# The setup container's program: a stdlib-only script of the relay package, which runs inside the
# relay's image; its text is the container's command, so it works with any image that has a python.
SETUP_SCRIPT = Path(__file__).resolve().parent.parent / "relay" / "price_relay" / "task_setup.py"
SETUP_SOURCE = SETUP_SCRIPT.read_text(encoding="utf-8")
RUN_DIR = "/run/relay"
SPOOL_DIR = "/var/lib/relay"
# HTTPS (Coinbase and Kraken websockets, the webhook URL, the AWS endpoints the task's agent
# uses) and Binance's websocket port. Nothing else leaves the task; nothing comes in.
EGRESS_PORTS = {443: "HTTPS: exchange websockets, the webhook URL, AWS endpoints",
                9443: "Binance websocket streams (stream.binance.com:9443)"}
_ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/"
                        r"(?P<repository>[a-z0-9._/-]+?)(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$")


def ecr_repository_arn(image: str, partition: str = "aws") -> str | None:
    """The ECR repository an image URI names (pull permissions on exactly it), or None if not ECR."""
    match = _ECR_IMAGE.match(image)
    if match is None:
        return None
    return (f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repository']}")


def relay_config(settings: RelaySettings, webhook_url: str) -> dict[str, object]:
    """The relay's --config file (relay/README.md), without a secret: the setup container adds
    `secret_file`."""
    return {
        "webhook_url": webhook_url,
        "source": settings.source,
        "spool": f"{SPOOL_DIR}/spool.sqlite",
        "exchanges": [{"exchange": item.exchange, "symbols": list(item.symbols)} for item in settings.exchanges],
    }


class RelayStack(EnvironmentStack):
    def __init__(self, scope: Construct, config: EnvironmentConfig, paths: SynthPaths, storage: StorageStack,
                 pipeline: PipelineStack) -> None:
        super().__init__(scope, config.resource_name("relay"), config, paths)
        settings = config.relay
        if settings is None:
            raise ValueError("the relay stack needs the environment's relay section")
        name = config.resource_name("relay")

        log_group = CloudwatchLogGroup(self, "relay-logs", name=relay_log_group_name(config),
                                       retention_in_days=config.log_retention_days, kms_key_id=storage.key.arn)
        skip_check(log_group, "CKV_AWS_338", "Logs are kept 3 days on purpose (cost); alerts are raised "
                                             "from them as they arrive, not read back later.")

        pulls = [statement("WriteOwnLogStreams", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group.arn}:*"]),
                 statement("ReadWebhookSecrets", ["secretsmanager:GetSecretValue"], [storage.webhook_secrets.arn]),
                 statement("DecryptWebhookSecrets", ["kms:Decrypt"], [storage.key.arn])]
        repository = ecr_repository_arn(settings.image)
        if repository is not None:
            pulls += [statement("PullRelayImage", ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                                                   "ecr:GetDownloadUrlForLayer"], [repository]),
                      statement("EcrAuthorization", ["ecr:GetAuthorizationToken"], ["*"])]
        execution_role = IamRole(self, "relay-execution-role", name=relay_execution_role_name(config),
                                 assume_role_policy=ecs_tasks_assume_role_policy())
        execution_policy = IamRolePolicy(self, "relay-execution-policy", role=execution_role.id,
                                         name="least-privilege", policy=policy_document(*pulls))

        cluster = EcsCluster(self, "relay-cluster", name=name,
                             setting=[EcsClusterSetting(name="containerInsights", value="enabled")])
        provider = "FARGATE_SPOT" if settings.spot else "FARGATE"
        capacity = EcsClusterCapacityProviders(
            self, "relay-capacity", cluster_name=cluster.name, capacity_providers=["FARGATE", "FARGATE_SPOT"],
            default_capacity_provider_strategy=[
                EcsClusterCapacityProvidersDefaultCapacityProviderStrategy(capacity_provider=provider, weight=1)])

        logging = {"logDriver": "awslogs", "options": {"awslogs-group": log_group.name,
                                                         "awslogs-region": config.region,
                                                         "awslogs-stream-prefix": "relay"}}
        containers = [
            {
                "name": "relay-setup",
                "image": settings.image,
                "essential": False,
                "entryPoint": ["python", "-c"],
                "command": [SETUP_SOURCE],
                "readonlyRootFilesystem": True,
                "environment": [
                    {"name": "RELAY_SOURCE", "value": settings.source},
                    {"name": "RELAY_RUN_DIR", "value": RUN_DIR},
                    {"name": "RELAY_CONFIG", "value": json.dumps(relay_config(settings, pipeline.webhook_url))},
                ],
                # The whole document, to this container only (see relay/price_relay/task_setup.py).
                "secrets": [{"name": "WEBHOOK_SECRETS_DOCUMENT", "valueFrom": storage.webhook_secrets.arn}],
                "mountPoints": [{"sourceVolume": "run", "containerPath": RUN_DIR, "readOnly": False}],
                "logConfiguration": logging,
            },
            {
                "name": "relay",
                "image": settings.image,
                "essential": True,
                "entryPoint": ["python", "-m", "price_relay"],
                "command": ["--config", f"{RUN_DIR}/relay.json", "--no-status"],
                "dependsOn": [{"containerName": "relay-setup", "condition": "SUCCESS"}],
                "readonlyRootFilesystem": True,
                # Fargate's longest: a Spot interruption's SIGTERM leaves the relay two minutes to drain.
                "stopTimeout": 120,
                "mountPoints": [{"sourceVolume": "run", "containerPath": RUN_DIR, "readOnly": True},
                                {"sourceVolume": "spool", "containerPath": SPOOL_DIR, "readOnly": False}],
                "logConfiguration": logging,
            },
        ]
        task = EcsTaskDefinition(
            self, "relay-task",
            family=name,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(settings.cpu),
            memory=str(settings.memory_mb),
            runtime_platform=EcsTaskDefinitionRuntimePlatform(operating_system_family="LINUX",
                                                              cpu_architecture="ARM64"),
            execution_role_arn=execution_role.arn,
            container_definitions=json.dumps(containers),
            volume=[EcsTaskDefinitionVolume(name="run"), EcsTaskDefinitionVolume(name="spool")],
            depends_on=[execution_policy],
        )

        if settings.vpc_id is None or settings.subnet_ids is None:
            # The account's default VPC and its default subnets (one public subnet per zone).
            # An account whose default VPC was deleted fails here at plan time: name a VPC and
            # subnets in the environment file instead.
            default_vpc = DataAwsVpc(self, "default-vpc", default=True)
            default_subnets = DataAwsSubnets(self, "default-subnets", filter=[
                DataAwsSubnetsFilter(name="vpc-id", values=[default_vpc.id]),
                DataAwsSubnetsFilter(name="default-for-az", values=["true"])])
            vpc_id, subnet_ids = default_vpc.id, default_subnets.ids
        else:
            vpc_id, subnet_ids = settings.vpc_id, list(settings.subnet_ids)
        group = SecurityGroup(self, "relay-egress", name=name, vpc_id=vpc_id,
                              description="The relay: outbound HTTPS and Binance websockets only, nothing inbound")
        for port, reason in EGRESS_PORTS.items():
            VpcSecurityGroupEgressRule(self, f"relay-egress-{port}", security_group_id=group.id,
                                       ip_protocol="tcp", from_port=port, to_port=port, cidr_ipv4="0.0.0.0/0",
                                       description=reason)

        service = EcsService(
            self, "relay-service",
            name=name,
            cluster=cluster.arn,
            task_definition=task.arn,
            # Exactly one relay: the spool is the task's, and two relays would send Kraken's ticks
            # (stamped with their receive time) twice. A deploy stops the old task first.
            desired_count=1,
            deployment_minimum_healthy_percent=0,
            deployment_maximum_percent=100,
            deployment_circuit_breaker=EcsServiceDeploymentCircuitBreaker(enable=True, rollback=True),
            capacity_provider_strategy=[EcsServiceCapacityProviderStrategy(capacity_provider=provider, weight=1)],
            platform_version="LATEST",
            network_configuration=EcsServiceNetworkConfiguration(subnets=subnet_ids,
                                                                 security_groups=[group.id],
                                                                 assign_public_ip=settings.assign_public_ip),
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            depends_on=[capacity],
        )
        if settings.assign_public_ip:
            skip_check(service, "CKV_AWS_333", "A public IP in a public subnet instead of a NAT gateway (about "
                                               "$33 a month for one small task); the security group allows "
                                               "no inbound traffic at all.")

        alerts_function = pipeline.function("log_alerts")
        permission = LambdaPermission(
            self, "relay-logs-invoke-alerts",
            statement_id=f"AllowErrorLinesFrom-{name}",
            action="lambda:InvokeFunction",
            function_name=alerts_function.function_name,
            principal=f"logs.{config.region}.amazonaws.com",
            source_arn=f"{log_group.arn}:*",
        )
        CloudwatchLogSubscriptionFilter(self, "relay-error-lines", name=config.resource_name("relay-error-lines"),
                                        log_group_name=log_group.name, filter_pattern=ERROR_LOG_PATTERN,
                                        destination_arn=alerts_function.arn, depends_on=[permission])
        CloudwatchMetricAlarm(
            self, "relay-not-running",
            alarm_name=config.resource_name("relay-not-running"),
            alarm_description=f"No relay task runs in {name}: tickers are not being relayed. Check the "
                              f"service's events and the {relay_log_group_name(config)} log group.",
            namespace="ECS/ContainerInsights", metric_name="RunningTaskCount",
            dimensions={"ClusterName": cluster.name, "ServiceName": service.name},
            statistic="Maximum", period=60, evaluation_periods=5, threshold=1,
            comparison_operator="LessThanThreshold", treat_missing_data="breaching",
            alarm_actions=[storage.alerts_topic.arn], ok_actions=[storage.alerts_topic.arn],
        )

        for output, value in {"relay_cluster_name": cluster.name, "relay_service_name": service.name,
                              "relay_log_group": log_group.name}.items():
            TerraformOutput(self, output, value=value)
