"""The deploy orchestrator against a fake `terraform` on PATH: order, failures, prod confirmation, dry run,
no secret in terraform's environment, saved plans deleted once applied, the credentials checked
before build and synth, and prod's tables backed up (on moto) before a destroy."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from delivery.deployer import (
    Aborted,
    BackupError,
    CredentialsError,
    DeployError,
    check_credentials,
    deploy,
    destroy,
    table_names,
)
from delivery.paths import ROOT
from environments.config import load_config
from functions.shared.price_table.candles import table_definition as candle_table_definition
from functions.shared.price_table.keys import table_definition as price_table_definition

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


# ---- credentials first: one line before build and synth -----------------------------------------

@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """A shell with no AWS credentials anywhere the default chain looks (and no instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_no_aws_credentials_is_one_line_naming_the_fix(no_credentials):
    with pytest.raises(CredentialsError) as raised:
        check_credentials(load_config("dev"), os.environ)
    message = str(raised.value)
    assert message.startswith("no AWS credentials for dev: set AWS_PROFILE") and "\n" not in message
    assert "nothing was built" in message


def test_refused_credentials_are_one_line_with_the_reason():
    client = boto3.client("sts", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_caller_identity", "ExpiredToken", "The security token included in the "
                              "request is expired", 403)
        with pytest.raises(CredentialsError, match=r"^the AWS credentials for staging do not work \(ExpiredToken\)"):
            check_credentials(load_config("staging"), {}, client=client)


def test_the_local_environment_checks_its_emulator(moto_endpoint):
    line = check_credentials(load_config("local"), {"AWS_ENDPOINT_URL": moto_endpoint})
    assert line.startswith(f"local: the emulator at {moto_endpoint} as arn:aws:")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(CredentialsError) as raised:
        check_credentials(load_config("local"), {"AWS_ENDPOINT_URL": closed})
    message = str(raised.value)
    assert message.startswith(f"no AWS emulator answers at {closed}") and "`invoke local`" in message


@pytest.mark.parametrize("task, kwargs", [("plan", {}), ("deploy", {}), ("destroy", {}),
                                          ("deploy", {"auto_approve": True})])
def test_plan_deploy_and_destroy_check_credentials_before_build_and_synth(no_credentials, monkeypatch, task,
                                                                          kwargs):
    from invoke import Context, Exit

    import tasks

    built: list[str] = []
    monkeypatch.setattr("delivery.build.build_all", lambda *args, **_: built.append("build"))
    monkeypatch.setattr("delivery.synth.synth_environment", lambda *args, **_: built.append("synth"))
    with pytest.raises(Exit) as raised:
        getattr(tasks, task)(Context(), env="dev", **kwargs)
    assert str(raised.value.message).startswith("error: no AWS credentials for dev")
    assert "\n" not in raised.value.message and raised.value.code == 2
    assert built == []


def test_invoke_plan_without_credentials_prints_one_line(no_credentials):
    result = subprocess.run([sys.executable, "-m", "invoke", "plan", "--env", "dev"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: no AWS credentials for dev") and result.stdout == ""


# ---- destroy backs the tables up first where the environment says so (prod) ---------------------

class SlowBackups:
    """moto's DynamoDB, whose backups are AVAILABLE at once, with each backup reported CREATING for
    its first `creating` reads, as DynamoDB does for a while; records what terraform had done by then."""

    def __init__(self, client, terraform_calls, creating: int = 2) -> None:
        self.client, self.terraform_calls, self.creating = client, terraform_calls, creating
        self.reads: dict[str, int] = {}
        self.terraform_seen: list[int] = []

    def __getattr__(self, name):
        return getattr(self.client, name)

    def describe_backup(self, BackupArn):  # boto3's keyword
        self.terraform_seen.append(len(self.terraform_calls()))
        answer = self.client.describe_backup(BackupArn=BackupArn)
        self.reads[BackupArn] = self.reads.get(BackupArn, 0) + 1
        if self.reads[BackupArn] <= self.creating:
            answer["BackupDescription"]["BackupDetails"]["BackupStatus"] = "CREATING"
        return answer


def _prod_tables(moto_endpoint, app):
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=moto_endpoint)
    names = table_names(app)
    assert sorted(names) == ["crypto-prices-prod", "price-candles-prod"]
    client.create_table(**price_table_definition("crypto-prices-prod"))
    client.create_table(**candle_table_definition("price-candles-prod"))
    client.put_item(TableName="crypto-prices-prod", Item={"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1"},
                                                          "price": {"N": "100"}})
    return client


def test_destroying_prod_backs_up_every_table_and_waits_until_available_first(synthesized, fake_terraform,
                                                                             moto_endpoint):
    client = _prod_tables(moto_endpoint, synthesized["prod"])
    slow = SlowBackups(client, fake_terraform)
    printed: list[str] = []
    slept: list[float] = []
    backups = destroy(load_config("prod"), synthesized["prod"], {}, auto_approve=True, dynamodb=slow,
                      echo=printed.append, sleep=slept.append)
    assert sorted(b.table for b in backups) == ["crypto-prices-prod", "price-candles-prod"]
    assert set(slow.terraform_seen) == {0}                   # every wait happened before any terraform call
    assert len(slept) == 2 and all(count == 3 for count in slow.reads.values())
    assert [c["args"][0] for c in fake_terraform()] == ["init", "destroy", "init", "destroy"]
    listed = client.list_backups()["BackupSummaries"]
    assert sorted(item["TableName"] for item in listed) == ["crypto-prices-prod", "price-candles-prod"]
    assert all(item["BackupStatus"] == "AVAILABLE" and "-before-destroy-" in item["BackupName"] for item in listed)
    assert "30 days" in printed[-1] and "docs/operations-destroy.md" in printed[-1]
    # the restore the operations page describes
    prices = next(b for b in backups if b.table == "crypto-prices-prod")
    client.restore_table_from_backup(TargetTableName="crypto-prices-prod-restored", BackupArn=prices.arn)
    restored = client.scan(TableName="crypto-prices-prod-restored")["Items"]
    assert restored == [{"symbol": {"S": "BTC-USD"}, "timestamp": {"N": "1"}, "price": {"N": "100"}}]


def test_a_backup_that_fails_or_never_finishes_destroys_nothing(synthesized, fake_terraform, moto_endpoint):
    client = _prod_tables(moto_endpoint, synthesized["prod"])
    never = SlowBackups(client, fake_terraform, creating=10**9)
    clock = iter(range(0, 10**6, 60))
    with pytest.raises(BackupError, match=r"2 backup\(s\) not AVAILABLE after 1800 s .*nothing was destroyed"):
        destroy(load_config("prod"), synthesized["prod"], {}, auto_approve=True, dynamodb=never, echo=lambda _: None,
                sleep=lambda _: None, clock=lambda: next(clock))
    refused = SlowBackups(client, fake_terraform)
    refused.create_backup = _refuse("BackupLimitExceeded")
    with pytest.raises(BackupError) as raised:
        destroy(load_config("prod"), synthesized["prod"], {}, auto_approve=True, dynamodb=refused,
                echo=lambda _: None, sleep=lambda _: None)
    message = str(raised.value)
    assert "(BackupLimitExceeded); nothing was destroyed" in message and "--skip-backup" in message
    assert "\n" not in message and fake_terraform() == []


def _refuse(code):
    def create_backup(**_):
        raise ClientError({"Error": {"Code": code, "Message": "refused"}}, "CreateBackup")
    return create_backup


def test_a_table_already_gone_is_said_and_the_others_are_backed_up(synthesized, fake_terraform, moto_endpoint):
    client = _prod_tables(moto_endpoint, synthesized["prod"])
    client.delete_table(TableName="price-candles-prod")
    printed: list[str] = []
    backups = destroy(load_config("prod"), synthesized["prod"], {}, auto_approve=True, dynamodb=client,
                      echo=printed.append, sleep=lambda _: None)
    assert [b.table for b in backups] == ["crypto-prices-prod"]
    assert "    price-candles-prod: no such table, nothing to back up" in printed


def test_skipping_the_backup_needs_the_typed_name_even_with_auto_approve(synthesized, fake_terraform,
                                                                         moto_endpoint):
    client = _prod_tables(moto_endpoint, synthesized["prod"])
    prompts: list[str] = []
    for answer in (_eof, lambda prompt: prompts.append(prompt) or "yes"):
        with pytest.raises(Aborted, match="destroy of prod not confirmed; nothing was run"):
            destroy(load_config("prod"), synthesized["prod"], {}, auto_approve=True, skip_backup=True,
                    confirm=answer, dynamodb=client, echo=lambda _: None)
    assert "WITHOUT backing up its tables" in prompts[0] and fake_terraform() == []
    backups = destroy(load_config("prod"), synthesized["prod"], {}, skip_backup=True, confirm=lambda _: "prod",
                      dynamodb=client, echo=lambda _: None)
    assert backups == [] and client.list_backups()["BackupSummaries"] == []
    assert [c["args"][0] for c in fake_terraform()] == ["init", "destroy", "init", "destroy"]
    with pytest.raises(Aborted, match="--skip-backup: dev takes no backup before destroy"):
        destroy(load_config("dev"), synthesized["dev"], {}, skip_backup=True, echo=lambda _: None)


def test_the_prod_dry_run_says_the_tables_are_backed_up_first(synthesized, fake_terraform):
    printed: list[str] = []
    destroy(load_config("prod"), synthesized["prod"], {}, dry_run=True, echo=printed.append)
    assert printed[0] == ("# first: an on-demand backup of crypto-prices-prod, price-candles-prod, each waited for "
                          "until AVAILABLE")
    assert fake_terraform() == []
    printed.clear()
    destroy(load_config("dev"), synthesized["dev"], {}, dry_run=True, echo=printed.append)
    assert not any("backup" in line for line in printed)
