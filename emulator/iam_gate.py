"""IAM enforced at run time: each function's AWS calls are signed with its own role's temporary
credentials (the emulator's STS AssumeRole of the role terraform created), and each call is
evaluated against that role's policies, read back from the emulator's IAM, before it reaches moto.

moto's own enforcement (INITIAL_NO_AUTH_ACTION_COUNT) matches every resource against "*", so every
ARN-scoped statement would deny. The gate sits in the fault proxy (every function call passes it,
with its signing access key) and asks moto's statement matcher (`moto.iam.access_control.
IAMPolicyStatement`) about the action and the call's real resource ARN. Two parts are hand-written,
each marked where it is:
- the resource ARN of a request (TableName -> table ARN, QueueUrl -> queue ARN, ...): no kept
  library maps request parameters to ARNs (policy_sentry has the ARN formats, not the parameters);
- the condition operators the project's policies use (StringEquals, StringLike, ArnEquals, ArnLike,
  Bool): moto's evaluator knows StringEquals only and lets every other operator through.

A call on a resource encrypted with a customer managed key also uses the key, as the service calls
KMS for the caller (moto encrypts nothing, so the gate plays it): a DynamoDB call on a table or
its stream needs kms:Decrypt, an SQS send or an SNS publish kms:GenerateDataKey and kms:Decrypt,
GetSecretValue kms:Decrypt, each allowed by the role's policies and by the key policy (with
aws:PrincipalArn and kms:ViaService), or the call is refused.

What it decides, as AWS decides for a same-account principal with identity-based policies only:
an explicit Deny wins, else an Allow of the action on every resource of the call, else an implicit
deny. Resource policies, permission boundaries and session policies are not evaluated (the
project uses none on these paths). The emulator's own key (`session.ACCESS_KEY_ID`) is the
account's operator (terraform, tasks, tests): it passes unchecked, as root would.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.credentials import Credentials
from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from emulator import session

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/\s]+)/\d{8}/(?P<region>[^/\s]+)/(?P<service>[^/\s]+)/aws4_request")
# JSON-protocol target prefixes -> the IAM service prefix (the signing name is the same for these).
_JSON_PROTOCOL = ("application/x-amz-json-1.0", "application/x-amz-json-1.1")
# API operations that IAM authorizes under another action's name (hand-written, from the services'
# authorization references: a batch call needs the single call's permission). Every other
# operation of the services the functions call is its own action.
ACTION_OF_OPERATION = {
    "PublishBatch": "Publish",  # SNS
    "SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",  # SQS
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


@dataclass(frozen=True)
class Identity:
    """A role session the gate issued: what a function signs with."""

    role_arn: str
    role_name: str
    credentials: Credentials

    @property
    def access_key(self) -> str:
        return self.credentials.access_key


@dataclass(frozen=True)
class Call:
    """One AWS call as IAM sees it: `service:Action`, the resources it touches, its condition keys."""

    action: str
    resources: tuple[str, ...]
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # (policy name, statement Sid) of each Allow that matched, per resource; empty when denied.
    statements: tuple[tuple[str, str], ...]
    denied_resource: str | None = None


# ---- the resource ARN of a request (hand-written: see the module docstring) -------------------------

def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def queue_arn(queue_url: str, region: str) -> str:
    """QueueUrl (http://host/ACCOUNT/NAME) -> arn:aws:sqs:REGION:ACCOUNT:NAME."""
    account, name = urlsplit(queue_url).path.strip("/").split("/")[-2:]
    return _arn("sqs", region, account, name)


def request_resources(action: str, params: Mapping[str, Any], region: str, account: str,
                      secret_arns: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The resource ARNs IAM evaluates a call against, from the request's parameters.

    DynamoDB: TableName (IndexName -> the index), StreamArn, the stream of a ShardIterator (moto's
    iterators begin with the stream ARN), the tables of a batch; ListStreams: "*" (no resource-level
    permission). SQS: QueueUrl. SNS: TopicArn/TargetArn. Secrets Manager: SecretId (a name resolved
    through `secret_arns`). KMS: KeyId. CloudWatch Logs: logGroupName (+ logStreamName).
    Returns () when the call names no resource the gate knows: the gate then denies it.
    """
    service, name = action.split(":", 1)
    if service == "dynamodb":
        if name == "ListStreams":
            return ("*",)
        if "StreamArn" in params:
            return (params["StreamArn"],)
        if "ShardIterator" in params:
            return (str(params["ShardIterator"]).split("|", 1)[0],)
        tables = [params["TableName"]] if "TableName" in params else list(params.get("RequestItems", {}))
        tables += [next(iter(item.values()))["TableName"] for item in params.get("TransactItems", [])]
        if "IndexName" in params and len(tables) == 1:
            return (_arn("dynamodb", region, account, f"table/{tables[0]}/index/{params['IndexName']}"),)
        return tuple(_arn("dynamodb", region, account, f"table/{table}") for table in tables)
    if service == "sqs" and "QueueUrl" in params:
        return (queue_arn(params["QueueUrl"], region),)
    if service == "sns":
        topic = params.get("TopicArn") or params.get("TargetArn")
        return (topic,) if topic else ()
    if service == "secretsmanager" and "SecretId" in params:
        secret = params["SecretId"]
        return (secret if secret.startswith("arn:") else (secret_arns or {}).get(secret, secret),)
    if service == "kms" and "KeyId" in params:
        key = params["KeyId"]
        return (key if key.startswith("arn:") else _arn("kms", region, account, f"key/{key}"),)
    if service == "logs" and "logGroupName" in params:
        group = _arn("logs", region, account, f"log-group:{params['logGroupName']}")
        stream = params.get("logStreamName")
        return (f"{group}:log-stream:{stream}" if stream else group,)
    return ()


def parse_request(method: str, path: str, headers: Mapping[str, str],
                  body: bytes) -> tuple[str, str, str, dict[str, Any]] | None:
    """(access key, region, IAM action, parameters) of a signed AWS request; None when unsigned.

    JSON protocol (DynamoDB, Streams, SQS, Secrets Manager, KMS, Logs): the X-Amz-Target names the
    operation, the body holds the parameters. Query protocol (SNS, STS, IAM): Action= in the form.
    """
    lower = {name.lower(): value for name, value in headers.items()}
    match = _CREDENTIAL.search(lower.get("authorization", ""))
    if match is None:
        return None
    service = match["service"]
    params: dict[str, Any]
    if lower.get("content-type", "").split(";")[0].strip() in _JSON_PROTOCOL:
        operation = lower.get("x-amz-target", "").rsplit(".", 1)[-1]
        params = json.loads(body or b"{}")
    else:
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        form.update({k: v[0] for k, v in parse_qs(urlsplit(path).query).items()})
        operation, params = form.pop("Action", ""), form
    return match["key"], match["region"], f"{service}:{ACTION_OF_OPERATION.get(operation, operation)}", params


# ---- condition operators (hand-written: see the module docstring) -----------------------------------

def _like(pattern: str, value: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")).replace(r"\?", "."),
                        value) is not None


_OPERATORS = {
    "StringEquals": lambda expected, actual: expected == actual,
    "StringLike": _like,
    "ArnEquals": lambda expected, actual: expected == actual,
    "ArnLike": _like,
    "Bool": lambda expected, actual: str(expected).lower() == str(actual).lower(),
}


def conditions_hold(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    """Every operator and key must hold (a key missing from the request fails it, an operator the
    gate does not know fails it: closed, never open); any one of a key's values suffices."""
    for operator, keys in condition.items():
        test = _OPERATORS.get(operator)
        if test is None:
            return False
        for key, expected in keys.items():
            actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
            values = expected if isinstance(expected, list) else [expected]
            if actual is None or not any(test(str(value), actual) for value in values):
                return False
    return True


def statement_result(statement: Mapping[str, Any], action: str, resource: str,
                     context: Mapping[str, str]) -> PermissionResult:
    """One statement's verdict: moto's matcher for action and resource (actions compared
    case-insensitively, as IAM does), the conditions above. A statement with NotResource, which
    moto's matcher does not read, never allows (closed)."""
    if "NotResource" in statement:
        return PermissionResult.NEUTRAL
    bare = {key: value for key, value in statement.items() if key != "Condition"}
    for key in ("Action", "NotAction"):
        if key in bare:
            values = bare[key] if isinstance(bare[key], list) else [bare[key]]
            bare[key] = [value.lower() for value in values]
    result = IAMPolicyStatement(bare).is_action_permitted(action.lower(), resource)
    if result is PermissionResult.NEUTRAL or not conditions_hold(statement.get("Condition", {}), context):
        return PermissionResult.NEUTRAL
    return result


def evaluate(policies: Mapping[str, Mapping[str, Any]], call: Call) -> Decision:
    """IAM's identity-policy logic over every resource of the call: explicit Deny, else Allow, else deny."""
    if not call.resources:
        return Decision(False, (), None)
    matched: list[tuple[str, str]] = []
    for resource in call.resources:
        allows: list[tuple[str, str]] = []
        for policy_name, document in policies.items():
            statements = document["Statement"]
            for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
                result = statement_result(statement, call.action, resource, call.context)
                if result is PermissionResult.DENIED:
                    return Decision(False, (), resource)
                if result is PermissionResult.PERMITTED:
                    allows.append((policy_name, statement.get("Sid") or f"#{index}"))
        if not allows:
            return Decision(False, (), resource)
        matched += allows
    return Decision(True, tuple(dict.fromkeys(matched)))


# ---- the key a call uses (hand-written: which calls use the resource's key, from the services' docs) ----

KEY_POLICY = "key-policy"  # the policy name a key policy's statements are recorded under
KEY_USE = {
    "sqs:SendMessage": ("kms:GenerateDataKey", "kms:Decrypt"), "sqs:ReceiveMessage": ("kms:Decrypt",),
    "sns:Publish": ("kms:GenerateDataKey", "kms:Decrypt"),
    "secretsmanager:GetSecretValue": ("kms:Decrypt",),
}


def key_actions(action: str) -> tuple[str, ...]:
    """The KMS actions a call makes for its caller on its resource's key."""
    if action.startswith("dynamodb:") and action != "dynamodb:ListStreams":
        return ("kms:Decrypt",)  # the table key, to read or write an encrypted table or its stream
    return KEY_USE.get(action, ())


def principal_matches(statement: Mapping[str, Any], role_arn: str, account: str) -> bool:
    """A resource policy statement's Principal names this role: "*", the account (root ARN or id),
    or the role ARN. Service principals never match a role (hand-written: moto's matcher compares
    the AWS principal as a plain string only)."""
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    named = principal.get("AWS", [])
    named = named if isinstance(named, list) else [named]
    return any(name in ("*", account, f"arn:aws:iam::{account}:root", role_arn) for name in named)


# ---- how a service refuses -------------------------------------------------------------------------

def unknown_key(json_protocol: bool) -> tuple[int, dict[str, str], bytes]:
    """AWS's answer to an access key it never issued (JSON services: UnrecognizedClientException,
    400; query services: InvalidClientTokenId, 403)."""
    message = "The security token included in the request is invalid."
    if json_protocol:
        body = json.dumps({"__type": "com.amazon.coral.service#UnrecognizedClientException", "message": message})
        return 400, {"Content-Type": "application/x-amz-json-1.0"}, body.encode()
    xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>{message}"
           f"</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return 403, {"Content-Type": "text/xml"}, xml.encode()


def access_denied(json_protocol: bool, service: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """AWS's refusal in the service's own shape: JSON services answer AccessDeniedException
    (SQS 403 with its query-compatible code AccessDenied, the others 400); query services answer
    an XML ErrorResponse, 403 (SNS's code is AuthorizationError, STS's and IAM's AccessDenied)."""
    request_id = str(uuid.uuid4())
    if json_protocol:
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": request_id}
        if service == "sqs":
            headers["x-amzn-query-error"] = "AccessDenied;Sender"
        body = json.dumps({"__type": "com.amazon.coral.service#AccessDeniedException", "Message": message})
        return (403 if service == "sqs" else 400), headers, body.encode()
    code = "AuthorizationError" if service == "sns" else "AccessDenied"
    xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{_xml(message)}</Message>"
           f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>")
    return 403, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, xml.encode()


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- the gate --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recorded:
    role: str
    action: str
    resource: str
    allowed: bool
    statements: tuple[tuple[str, str], ...]


class IamGate:
    """Issues role sessions, evaluates their calls, and records every (role, action, resource).

    `admin` are the emulator's operator clients (iam, sts, secretsmanager, kms, dynamodb, sqs, sns):
    they read the roles' policies and the key policy back, and resolve names and keys. Policies are
    cached per role: `reload()` after changing one on the emulator.
    """

    ADMIN_CLIENTS = ("iam", "sts", "secretsmanager", "kms", "dynamodb", "sqs", "sns")

    def __init__(self, admin: Mapping[str, Any], account: str) -> None:
        self.admin, self.account = admin, account
        self._identities: dict[str, Identity] = {}
        self._policies: dict[str, dict[str, dict[str, Any]]] = {}
        self._secret_arns: dict[str, str] = {}
        self._facts: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self.recorded: Counter[Recorded] = Counter()

    # ---- identities ------------------------------------------------------------------------
    def assume(self, role_arn: str, session_name: str) -> Identity:
        """The role's temporary credentials from the emulator's STS, known to the gate from now on."""
        answer = self.admin["sts"].assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64])
        issued = answer["Credentials"]
        identity = Identity(role_arn, role_arn.rsplit("/", 1)[-1],
                            Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"]))
        with self._lock:
            self._identities[identity.access_key] = identity
        return identity

    def identity(self, access_key: str) -> Identity | None:
        with self._lock:
            return self._identities.get(access_key)

    @staticmethod
    def environment(identity: Identity) -> dict[str, str]:
        """The variables an SDK in the function's process signs with, as Lambda sets them."""
        frozen = identity.credentials
        return {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key,
                "AWS_SESSION_TOKEN": frozen.token or ""}

    @staticmethod
    def clients(identity: Identity, endpoint: str, region: str, names: Iterable[str]) -> dict[str, Any]:
        """boto3 clients that sign with the role session (the emulator's part played with a role)."""
        import boto3

        frozen = identity.credentials
        signer = boto3.session.Session(aws_access_key_id=frozen.access_key, aws_secret_access_key=frozen.secret_key,
                                       aws_session_token=frozen.token, region_name=region)
        return {name: signer.client(name, endpoint_url=endpoint) for name in names}  # type: ignore[call-overload]

    # ---- policies --------------------------------------------------------------------------
    def policies(self, role_name: str) -> dict[str, dict[str, Any]]:
        """The role's inline and attached policy documents, by policy name, read from the emulator's IAM."""
        with self._lock:
            cached = self._policies.get(role_name)
        if cached is not None:
            return cached
        iam = self.admin["iam"]
        documents: dict[str, dict[str, Any]] = {}
        for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
            documents[name] = _document(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
        for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
            version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
            document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)
            documents[attached["PolicyName"]] = _document(document["PolicyVersion"]["Document"])
        with self._lock:
            self._policies[role_name] = documents
        return documents

    def reload(self) -> None:
        """Forget the cached policies and key facts (after a policy changed on the emulator)."""
        with self._lock:
            self._policies.clear()
            self._facts.clear()

    # ---- decisions -------------------------------------------------------------------------
    def authorize(self, identity: Identity, action: str, resources: Iterable[str],
                  context: Mapping[str, str] | None = None, *, record: bool = True) -> Decision:
        """Evaluate (and unless told otherwise, record) one call of `identity`."""
        call = Call(action, tuple(resources), {"aws:PrincipalArn": identity.role_arn, **(context or {})})
        decision = evaluate(self.policies(identity.role_name), call)
        if record:
            self._record(identity, call, decision)
        return decision

    def _record(self, identity: Identity, call: Call, decision: Decision) -> None:
        with self._lock:
            for resource in call.resources or ("",):
                self.recorded[Recorded(identity.role_name, call.action, resource, decision.allowed,
                                       decision.statements)] += 1

    def refusal(self, method: str, path: str, headers: Mapping[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes] | None:
        """None when the request may go on to the service; else the service's refusal.

        Unsigned requests and the operator's key pass (moto answers them as before); a key the
        gate never issued is refused as AWS refuses an unknown key.
        """
        parsed = parse_request(method, path, headers, body)
        if parsed is None or parsed[0] == session.ACCESS_KEY_ID:
            return None
        access_key, region, action, params = parsed
        service = action.split(":", 1)[0]
        json_protocol = any(kind in {k.lower(): v for k, v in headers.items()}.get("content-type", "")
                            for kind in _JSON_PROTOCOL)
        identity = self.identity(access_key)
        if identity is None:
            return unknown_key(json_protocol)
        resources = request_resources(action, params, region, self.account, self._secret_names(action, params))
        decision = self.authorize(identity, action, resources, {"aws:RequestedRegion": region})
        principal = f"arn:aws:sts::{self.account}:assumed-role/{identity.role_name}/function"
        if not decision.allowed:
            target = decision.denied_resource or "(a resource the emulator cannot name)"
            return access_denied(json_protocol, service,
                                 f"User: {principal} is not authorized to perform: {action} on resource: {target} "
                                 f"because no identity-based policy allows the {action} action")
        for key_action, key in self._key_uses(action, resources):
            if not self.key_use_allowed(identity, key_action, key, f"{service}.{region}.amazonaws.com"):
                return access_denied(json_protocol, service,
                                     f"User: {principal} is not authorized to perform: {key_action} on resource: "
                                     f"{key} (the key that encrypts the resource of {action})")
        return None

    def key_use_allowed(self, identity: Identity, action: str, key: str, via_service: str) -> bool:
        """A KMS use is allowed by the role's policies and by the key policy (same account)."""
        context = {"kms:ViaService": via_service, "kms:CallerAccount": self.account}
        call = Call(action, (key,), {"aws:PrincipalArn": identity.role_arn, **context})
        by_role = self.authorize(identity, action, [key], context, record=False)
        document = self._lookup(("key-policy", key), lambda: _document(
            self.admin["kms"].get_key_policy(KeyId=key, PolicyName="default")["Policy"]))
        statements = document["Statement"]
        statements = statements if isinstance(statements, list) else [statements]
        applying = [s for s in statements if principal_matches(s, identity.role_arn, self.account)]
        by_key = evaluate({KEY_POLICY: {"Statement": applying}}, call)
        both = Decision(by_role.allowed and by_key.allowed,
                        (by_role.statements + by_key.statements) if by_role.allowed and by_key.allowed else ())
        self._record(identity, call, both)  # the statements that allowed it, of both policies
        return both.allowed

    def _key_uses(self, action: str, resources: Iterable[str]) -> list[tuple[str, str]]:
        """(KMS action, key ARN) for each resource of the call encrypted with a customer managed key."""
        actions = key_actions(action)
        if not actions:
            return []
        uses = []
        for resource in resources:
            key = self._lookup(("key-of", resource), lambda resource=resource: self._key_of(resource))
            uses += [(key_action, key) for key_action in actions if key]
        return uses

    def _key_of(self, resource: str) -> str:
        """The customer managed key ARN that encrypts a resource ("" when none), from the emulator."""
        parts = resource.split(":", 5) if resource.startswith("arn:") else []
        _, service, _, account, rest = parts[1:] if len(parts) == 6 else ("", "", "", "", "")
        key = ""
        if service == "dynamodb" and rest.startswith("table/"):
            table = self.admin["dynamodb"].describe_table(TableName=rest.split("/")[1])["Table"]
            key = (table.get("SSEDescription") or {}).get("KMSMasterKeyArn") or ""
        elif service == "sqs":
            url = self.admin["sqs"].get_queue_url(QueueName=rest, QueueOwnerAWSAccountId=account)["QueueUrl"]
            attributes = self.admin["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])
            key = attributes.get("Attributes", {}).get("KmsMasterKeyId", "")
        elif service == "sns":
            key = self.admin["sns"].get_topic_attributes(TopicArn=resource)["Attributes"].get("KmsMasterKeyId", "")
        elif service == "secretsmanager":
            key = self.admin["secretsmanager"].describe_secret(SecretId=resource).get("KmsKeyId", "")
        if not key or key.startswith("alias/aws/"):
            return ""  # none, or an AWS managed key (its key policy lets the account's principals use it)
        return str(self.admin["kms"].describe_key(KeyId=key)["KeyMetadata"]["Arn"])

    def _lookup(self, what: tuple[str, str], read: Any) -> Any:
        """Resource facts read once from the emulator (the stack does not change them while it runs)."""
        with self._lock:
            if what in self._facts:
                return self._facts[what]
        value = read()
        with self._lock:
            self._facts[what] = value
        return value

    def _secret_names(self, action: str, params: Mapping[str, Any]) -> dict[str, str]:
        """A secret named by name, not ARN: its ARN (with AWS's random suffix) from the emulator."""
        secret = params.get("SecretId")
        if not action.startswith("secretsmanager:") or not secret or str(secret).startswith("arn:"):
            return {}
        with self._lock:
            known = self._secret_arns.get(secret)
        if known is None:
            try:
                known = self.admin["secretsmanager"].describe_secret(SecretId=secret)["ARN"]
            except self.admin["secretsmanager"].exceptions.ResourceNotFoundException:
                known = _arn("secretsmanager", "*", self.account, f"secret:{secret}")
            with self._lock:
                self._secret_arns[secret] = known
        return {secret: known}

    # ---- the record ------------------------------------------------------------------------
    def record(self) -> list[dict[str, Any]]:
        """Every (role, action, resource) seen, with its verdict, the statements that allowed it and
        how many times: the end-to-end session writes it to build/."""
        with self._lock:
            items = list(self.recorded.items())
        return sorted(({"role": r.role, "action": r.action, "resource": r.resource, "allowed": r.allowed,
                        "statements": [list(s) for s in r.statements], "count": count} for r, count in items),
                      key=lambda row: (row["role"], row["action"], row["resource"], not row["allowed"]))


def _document(document: Any) -> dict[str, Any]:
    """boto3 decodes a policy document to a dict; moto may hand back its JSON text."""
    return json.loads(document) if isinstance(document, str) else dict(document)
