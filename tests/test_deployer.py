"""The deploy orchestrator against a fake `terraform` on PATH: order, failures, prod confirmation, dry run,
no secret in terraform's environment, and saved plans deleted once applied."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest

from delivery.deployer import Aborted, DeployError, deploy, destroy
from environments.config import load_config

FAKE = textwrap.dedent("""\
    #!{python}
    import glob, json, os, sys
    stack = os.path.basename(os.getcwd())
    command = sys.argv[1]
    with open(os.environ["FAKE_TF_LOG"], "a") as log:
        log.write(json.dumps({{"stack": stack, "args": sys.argv[1:],
                              "tf_vars": sorted(k for k in os.environ if k.startswith("TF_VAR_")),
                              "plan_file_present": os.path.exists("tfplan"),
                              "plans_anywhere": sorted(os.path.basename(os.path.dirname(p))
                                                       for p in glob.glob("../*/tfplan"))}}) + "\\n")
    if os.environ.get("FAKE_TF_FAIL") == stack + ":" + command:
        print("Error: creating DynamoDB Table: AccessDenied\\nline two\\nthe last line")
        sys.exit(3)
    if command == "plan":
        out = [a.split("=", 1)[1] for a in sys.argv[2:] if a.startswith("-out=")]
        if out:  # like terraform: the saved plan holds the resources' attributes
            open(out[0], "w").write("plan of " + stack)
        print("Plan: 3 to add, 0 to change, 0 to destroy.")
    if command == "apply" and sys.argv[-1] == "tfplan" and not os.path.exists("tfplan"):
        print("Error: Failed to load \\"tfplan\\" as a plan file")
        sys.exit(1)
    if command == "output":
        print(json.dumps({{"from_" + stack.split("-")[0]: {{"value": stack}},
                          "cross-stack-output-x": {{"value": "hidden"}}}}))
    """)

# A secret a careless deployer might still export: it must reach neither terraform nor the output.
STALE_SECRETS = {"TF_VAR_webhook_secrets": json.dumps({"tradingview": ["s3cr3t-value"]})}


@pytest.fixture
def fake_terraform(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "terraform"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_TF_LOG", str(log))
    monkeypatch.setattr("delivery.deployer.write_outputs", lambda config, outputs: tmp_path / "outputs.json")

    def calls():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return calls


def _plan_files(app):
    return [stack.directory / "tfplan" for stack in app.stacks if (stack.directory / "tfplan").exists()]


def test_deploy_runs_storage_then_pipeline_init_plan_apply(synthesized, fake_terraform):
    printed = []
    outputs = deploy(load_config("dev"), synthesized["dev"], {}, echo=printed.append)
    calls = fake_terraform()
    assert [(c["stack"], c["args"][0]) for c in calls] == [
        ("storage-dev", "init"), ("storage-dev", "plan"), ("storage-dev", "apply"),
        ("pipeline-dev", "init"), ("pipeline-dev", "plan"), ("pipeline-dev", "apply"),
        ("storage-dev", "output"), ("pipeline-dev", "output")]
    apply = [c for c in calls if c["args"][0] == "apply"][0]
    assert apply["args"][-1] == "tfplan"  # the saved plan is what gets applied
    assert "    Plan: 3 to add, 0 to change, 0 to destroy." in printed
    assert outputs == {"from_storage": "storage-dev", "from_pipeline": "pipeline-dev"}


def test_a_deploy_needs_no_secret_and_passes_none_to_terraform(synthesized, fake_terraform, monkeypatch):
    """The secrets are in Secrets Manager: a staging deploy runs with an empty environment (it used to
    stop without TF_VAR_webhook_secrets), and a TF_VAR_webhook_secrets in the environment handed to
    the deploy is passed on to terraform no more, nor printed; no stack declares a variable."""
    monkeypatch.delenv("TF_VAR_webhook_secrets", raising=False)
    deploy(load_config("staging"), synthesized["staging"], {}, echo=lambda _: None)
    assert sum(c["args"][0] == "apply" for c in fake_terraform()) == 2
    printed = []
    deploy(load_config("dev"), synthesized["dev"], STALE_SECRETS, echo=printed.append)
    assert all(c["tf_vars"] == [] for c in fake_terraform())
    assert "s3cr3t-value" not in "\n".join(printed)
    for stack in synthesized["dev"].stacks:
        assert "variable" not in stack.document()


def test_plan_files_are_deleted_after_apply(synthesized, fake_terraform):
    """Each stack's apply found its saved plan (the fake fails without it), and none is left after."""
    deploy(load_config("dev"), synthesized["dev"], {}, echo=lambda _: None)
    calls = fake_terraform()
    applies = [c for c in calls if c["args"][0] == "apply"]
    assert [c["plan_file_present"] for c in applies] == [True, True]
    # storage's plan is gone before the pipeline stack starts, not only at the end of the run
    pipeline_init = next(c for c in calls if c["stack"] == "pipeline-dev" and c["args"][0] == "init")
    assert pipeline_init["plans_anywhere"] == []
    pipeline_apply = applies[1]
    assert pipeline_apply["plans_anywhere"] == ["pipeline-dev"]
    assert _plan_files(synthesized["dev"]) == []


def test_plan_files_are_deleted_when_an_apply_fails_or_only_plans_run(synthesized, fake_terraform, monkeypatch):
    monkeypatch.setenv("FAKE_TF_FAIL", "pipeline-dev:apply")
    with pytest.raises(DeployError):
        deploy(load_config("dev"), synthesized["dev"], {}, echo=lambda _: None)
    assert _plan_files(synthesized["dev"]) == []
    monkeypatch.delenv("FAKE_TF_FAIL")
    deploy(load_config("dev"), synthesized["dev"], {}, plan_only=True, echo=lambda _: None)
    assert [c["args"][0] for c in fake_terraform()][-4:] == ["init", "plan", "init", "plan"]
    assert _plan_files(synthesized["dev"]) == []


def test_first_failure_stops_and_names_the_stack_code_and_last_lines(synthesized, fake_terraform, monkeypatch):
    monkeypatch.setenv("FAKE_TF_FAIL", "storage-dev:apply")
    with pytest.raises(DeployError) as raised:
        deploy(load_config("dev"), synthesized["dev"], {}, echo=lambda _: None)
    assert raised.value.stack == "storage-dev" and raised.value.returncode == 3
    assert "exit code 3" in str(raised.value) and "the last line" in str(raised.value)
    assert not any(c["stack"] == "pipeline-dev" for c in fake_terraform())


def test_prod_needs_the_typed_name_or_auto_approve(synthesized, fake_terraform):
    environ: dict[str, str] = {}
    with pytest.raises(Aborted):
        deploy(load_config("prod"), synthesized["prod"], environ, confirm=lambda _: "yes", echo=lambda _: None)
    with pytest.raises(Aborted):
        deploy(load_config("prod"), synthesized["prod"], environ, confirm=_eof, echo=lambda _: None)
    assert fake_terraform() == []
    deploy(load_config("prod"), synthesized["prod"], environ, confirm=lambda _: "prod", echo=lambda _: None)
    assert sum(c["args"][0] == "apply" for c in fake_terraform()) == 2
    deploy(load_config("prod"), synthesized["prod"], environ, auto_approve=True, confirm=_eof, echo=lambda _: None)
    assert sum(c["args"][0] == "apply" for c in fake_terraform()) == 4


def _eof(_prompt):
    raise EOFError


def test_prod_confirmation_comes_before_any_terraform_command(synthesized, fake_terraform):
    with pytest.raises(Aborted):
        deploy(load_config("prod"), synthesized["prod"], {}, confirm=_eof, echo=lambda _: None)
    assert fake_terraform() == []


def test_dry_run_prints_commands_directories_and_backends_and_runs_nothing(synthesized, fake_terraform):
    printed = []
    deploy(load_config("prod"), synthesized["prod"], STALE_SECRETS, dry_run=True, echo=printed.append)
    text = "\n".join(printed)
    assert fake_terraform() == []
    storage_dir = synthesized["prod"].stack("storage").directory
    assert f"(cd {storage_dir} && terraform init -input=false -reconfigure -no-color)" in text
    assert "terraform plan -input=false -no-color -out=tfplan" in text
    assert "terraform apply -input=false -no-color tfplan" in text
    assert "s3://crypto-pipeline-tfstate-prod/crypto-price-pipeline/prod/storage-prod.tfstate" in text
    assert text.index("storage-prod") < text.index("pipeline-prod")
    assert "TF_VAR_webhook_secrets" not in text and "s3cr3t-value" not in text
    assert "tfplan is deleted once applied" in text


def test_single_stack_deploy(synthesized, fake_terraform):
    deploy(load_config("dev"), synthesized["dev"], {}, stack="pipeline", echo=lambda _: None)
    assert {c["stack"] for c in fake_terraform() if c["args"][0] != "output"} == {"pipeline-dev"}


def test_destroy_runs_in_reverse_order(synthesized, fake_terraform):
    destroy(load_config("dev"), synthesized["dev"], {}, echo=lambda _: None)
    assert [(c["stack"], c["args"][0]) for c in fake_terraform()] == [
        ("pipeline-dev", "init"), ("pipeline-dev", "destroy"), ("storage-dev", "init"), ("storage-dev", "destroy")]
