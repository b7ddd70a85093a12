"""terraform validate and checkov on the synthesized stacks."""

from __future__ import annotations

import pytest

from delivery.terraform import find_provider_mirror, terraform_binary, validate_stack, write_cli_config
from tests.conftest import require_tool


def _validate(stack, tmp_path):
    require_tool("terraform", terraform_binary() is not None)
    require_tool("the offline AWS provider mirror", find_provider_mirror() is not None)
    result = validate_stack(stack.directory, write_cli_config(tmp_path))
    assert result.returncode == 0, result.last_lines()
    assert "The configuration is valid" in result.output


@pytest.mark.parametrize("stack_prefix", ["storage", "pipeline"])
def test_terraform_validate_local_stacks(synthesized, stack_prefix, tmp_path):
    _validate(synthesized["local"].stack(stack_prefix), tmp_path)


def test_terraform_validate_optional_features(variant, tmp_path):
    """The optional resources (tick TTL, ...) against the provider schema, every stack of the variant."""
    for stack in variant.stacks:
        _validate(stack, tmp_path)


def _checkov_findings(stacks):
    from delivery.checkov import run_checkov

    findings = run_checkov([stack.directory / "cdk.tf.json" for stack in stacks])
    unexplained = [f"{f.check_id} {f.resource}: {f.check_name}" for f in findings if not f.skip_reason]
    assert unexplained == []
    return findings


@pytest.mark.parametrize("env", ["local", "prod"])
def test_checkov_has_no_finding_without_a_written_skip(synthesized, env):
    findings = _checkov_findings(synthesized[env].stacks)
    # The skips are real: the public function URL is flagged and carries its reason.
    assert any(f.check_id == "CKV_AWS_258" and f.resource == "webhook-url" and "HMAC" in f.skip_reason
               for f in findings)
    # The price API's URL is AWS_IAM: the check passes, no skip needed.
    assert not any(f.check_id == "CKV_AWS_258" and f.resource == "price-api-url" for f in findings)
    # The secret has no rotation Lambda, with its reason at the resource.
    assert any(f.check_id == "CKV2_AWS_57" and f.resource == "webhook-secrets" and "invoke secrets" in f.skip_reason
               for f in findings)
    # Every function, the price API's included, was checked (its skips are listed).
    assert {f.resource for f in findings if f.check_id == "CKV_AWS_117"} == {
        "webhook_processor", "price_enricher", "log_alerts", "price_api"}


def test_checkov_optional_features(variant):
    _checkov_findings(variant.stacks)
