"""The table of AWS operations fanstack answers, made from the services' own registry.

`docs/aws.md` holds it between two markers; `python -m fanstack.aws.supported` prints it, and a
test fails when the page and the code disagree, so the page stays true.
"""

from __future__ import annotations

from fanstack.aws.protocols import service_model
from fanstack.aws.services import SERVICES

BEGIN = "<!-- supported operations: begin (python -m fanstack.aws.supported) -->"
END = "<!-- supported operations: end -->"
TITLES = {
    "sqs": "Amazon SQS",
    "sns": "Amazon SNS",
    "sts": "AWS STS",
    "events": "Amazon EventBridge",
    "scheduler": "Amazon EventBridge Scheduler",
    "stepfunctions": "AWS Step Functions",
    "lambda": "AWS Lambda",
}


def table() -> str:
    """A markdown table: each service, its protocol, the operations answered and left out."""
    lines = [
        "| service | protocol | operations answered | of the API's |",
        "|---|---|---|---|",
    ]
    for service in sorted(SERVICES, key=lambda name: TITLES.get(name, name)):
        model = service_model(service)
        answered = sorted(SERVICES[service])
        protocol = str(model.metadata.get("protocol"))
        names = ", ".join(f"`{name}`" for name in answered)
        title = TITLES.get(service, service)
        share = f"{len(answered)} of {len(model.operation_names)}"
        lines.append(f"| {title} | {protocol} | {names} | {share} |")
    return "\n".join(lines)


def section() -> str:
    """The table between its markers, as `docs/aws.md` holds it."""
    return f"{BEGIN}\n{table()}\n{END}"


if __name__ == "__main__":
    print(section())
