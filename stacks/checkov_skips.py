"""Per-resource checkov skips that live next to the resource in the stack code.

checkov ignores inline skip comments in Terraform JSON, so each skip is written into
the resource's "//" comment block (Terraform ignores "//" keys) and `delivery.checkov`
filters its findings on them. A skip without a reason is refused at synth time.
"""

from cdktf import TerraformResource

from stacks.artifacts import CHECKOV_SKIP_KEY


def skip_check(resource: TerraformResource, check_id: str, reason: str) -> None:
    if not check_id.startswith("CKV") or len(reason.strip()) < 20:
        raise ValueError(f"checkov skip {check_id!r} needs a check id and a written reason")
    resource.add_override(f"//.{CHECKOV_SKIP_KEY}.{check_id}", reason.strip())
