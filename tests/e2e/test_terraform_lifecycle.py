"""Last in the session: the applied stacks re-plan clean, then destroy in reverse order (real terraform).

Destroying takes down the session's one deployed stack, so every test here is marked
`destroys_stack`: tests/e2e/conftest.py moves marked tests after all others, whatever the
file is called, and keeps their own order (re-plan before destroy)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from delivery.deployer import destroy, make_deployer
from emulator import session

pytestmark = pytest.mark.destroys_stack


def test_applied_stacks_re_plan_clean(stack):
    deployer = make_deployer(stack.info.config, stack.app, {"AWS_ENDPOINT_URL": stack.info.endpoint},
                             echo=lambda _: None)
    for synthesized in stack.app.stacks:
        result = deployer.run(synthesized, "plan", "-detailed-exitcode", "-input=false", "-no-color")
        assert result.returncode == 0, result.last_lines()  # 2 would mean drift


def test_destroy_removes_relay_then_pipeline_then_storage(stack):
    printed: list[str] = []
    destroy(stack.info.config, stack.app, {"AWS_ENDPOINT_URL": stack.info.endpoint}, echo=printed.append)
    order = [line for line in printed if line.startswith("==>") and "destroy" in line]
    relay = stack.info.config.relay is not None  # applied on the embedded target only
    assert order == ["==> relay-local: terraform destroy"] * relay + ["==> pipeline-local: terraform destroy",
                                                                       "==> storage-local: terraform destroy"]
    with pytest.raises(ClientError):
        stack.aws["dynamodb"].describe_table(TableName=stack.info.outputs["table_name"])
    assert stack.aws["lambda"].list_functions()["Functions"] == []
    if relay:
        ecs = session.client("ecs", stack.info.endpoint, stack.info.config.region)
        clusters = ecs.describe_clusters(clusters=[stack.info.outputs["relay_cluster_name"]])["clusters"]
        assert [cluster["status"] for cluster in clusters] in ([], ["INACTIVE"])  # ECS keeps a deleted one a while
