"""Worker process of the local Lambda runtime (run as `python3.12 -I -S -B bootstrap.py CODE_DIR RUNTIME_DIR HANDLER`).

Isolated: sys.path holds only the function's unpacked zip and the libraries the Lambda
runtime provides (boto3 and its dependencies), so a module missing from the zip fails
here as it would in AWS. Requests arrive as JSON lines on stdin; answers leave on the
original stdout; everything the handler prints goes to stderr, which the parent reads
as the function's log.

It runs on the runtime's Python (3.12, as Lambda's python3.12 runtime), not the venv's,
so it uses the standard library only and never writes bytecode (-B):
the zip brings its own, and Lambda's /var/task is read-only.
"""

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any


class Context:
    """The parts of Lambda's context object the handlers and Powertools read."""

    def __init__(self, request_id: str, deadline: float) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = os.environ.get("LOCAL_FUNCTION_ARN", "")
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = "local"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def main() -> None:
    code_dir, runtime_dir, handler_path = sys.argv[1:4]
    sys.path[:0] = [code_dir, runtime_dir]
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints and logs go to stderr
    sys.stdout = os.fdopen(1, "w", buffering=1)
    module_name, function_name = handler_path.rsplit(".", 1)
    try:
        handler: Any = getattr(importlib.import_module(module_name), function_name)
        answers.write(json.dumps({"ready": True}) + "\n")
    except Exception as error:  # noqa: BLE001 - any import failure is the runtime's Runtime.ImportModuleError
        traceback.print_exc()
        answers.write(json.dumps({"ready": False, "error": f"{type(error).__name__}: {error}"}) + "\n")
        return
    timeout = float(os.environ.get("LOCAL_FUNCTION_TIMEOUT", "60"))
    for line in sys.stdin:
        request = json.loads(line)
        request_id = request.get("request_id") or str(uuid.uuid4())
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        try:
            result = handler(request["event"], Context(request_id, time.time() + timeout))
            answer = {"id": request["id"], "result": result}
        except Exception as error:  # noqa: BLE001 - any handler error is Lambda's "Unhandled" function error
            print(f"[ERROR] {type(error).__name__}: {error}", flush=True)
            traceback.print_exc()
            answer = {"id": request["id"], "error": {"errorType": type(error).__name__, "errorMessage": str(error)}}
        print(f"END RequestId: {request_id}", flush=True)
        answers.write(json.dumps(answer, default=str) + "\n")


if __name__ == "__main__":
    main()
