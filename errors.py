"""The one base of the errors a task turns into a single line (no traceback).

Configuration, build, terraform, checkov, deploy and operations errors subclass it; the
tasks catch `PipelineError` alone, so no error type has to pose as another to be caught.
"""


class PipelineError(Exception):
    """A known failure whose message is one line a person can act on."""
