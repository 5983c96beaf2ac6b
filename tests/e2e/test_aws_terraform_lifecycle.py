"""Terraform's AWS provider, replayed: its calls for plan/apply/refresh/update/destroy, answered.

Terraform cannot run here (no binary, no network), so each test makes, with boto3 against a real
`fanstack run`, the AWS calls hashicorp/terraform-provider-aws makes for a resource's lifecycle,
and checks every answer the way the provider reads it: an answer it cannot parse fails an apply,
a value that reads back different from the configuration is a diff on every plan, and an error
code it does not know as "not found" breaks refresh and destroy.

The sequences follow the provider's v5/v6 sources (aws-sdk-go-v2 era):

- `internal/service/sqs/queue.go`: resourceQueueCreate (CreateQueue with attributes and tags,
  retried on QueueDeletedRecently), waitQueueAttributesPropagated / statusQueueAttributeState
  (GetQueueAttributes All equals what was sent, 6 reads in a row; redrive policies compared as
  JSON), resourceQueueRead (findQueueAttributesByURL, queueNameFromURL), resourceQueueUpdate
  (SetQueueAttributes with the changed attributes, then the same wait), resourceQueueDelete
  (DeleteQueue, then waitQueueDeleted / statusQueueState: 15 reads in a row that are gone);
  "gone" is `errCodeQueueDoesNotExist` = `AWS.SimpleQueueService.NonExistentQueue`
  (`sqs/consts.go`), the code aws-sdk-go-v2 reports from SQS's `x-amzn-query-error` header;
  `sqs/tags_gen.go` (ListQueueTags, UntagQueue, TagQueue).
- `internal/attrmap/attrmap.go`: ResourceDataToAPIAttributesCreate (booleans sent only when true,
  integers always unless Optional+Computed and zero, strings when set),
  ResourceDataToAPIAttributesUpdate (changed attributes only), APIAttributesToResourceData
  (strconv.ParseBool / strconv.Atoi per schema type; a missing attribute reads as null).
- `internal/service/sns/topic.go`: resourceTopicCreate (CreateTopic with tags, then
  putTopicAttributes: one SetTopicAttributes per attribute, retried two minutes on
  InvalidParameter), resourceTopicRead (findTopicAttributesWithValidAWSPrincipalsByARN: the
  Policy attribute must be JSON whose `Statement[*].Principal.AWS` are `*`, ARNs or account IDs),
  resourceTopicDelete (DeleteTopic; NotFoundException tolerated), parseTopicNameFromARN;
  `sns/tags_gen.go` (ListTagsForResource, UntagResource, TagResource); `sns/consts.go`.
- `internal/service/sns/topic_subscription.go`: resourceTopicSubscriptionCreate (Subscribe with
  ReturnSubscriptionArn and the attribute map, then waitSubscriptionConfirmed: PendingConfirmation
  "true" -> "false"), findSubscriptionAttributesByARN, putSubscriptionAttributes
  (SetSubscriptionAttributes per changed attribute), resourceTopicSubscriptionDelete (Unsubscribe,
  then waitSubscriptionDeleted until GetSubscriptionAttributes answers NotFound);
  TestAccSNSTopicSubscription_basic (an sqs subscription reads confirmation_was_authenticated true).
  SNS's "not found" is `types.NotFoundException`, wire code `NotFound`.
- Provider configuration (hashicorp/aws-sdk-go-base): GetCallerIdentity, whose Arn goes through
  `arn.Parse` for the account ID and partition.

The waits keep the provider's state rules (pending/target states, reads in a row, not-found
counts) but poll quickly instead of with its back-off.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from .aws_clients import REGION, aws_client
from .conftest import Server, start_server, wait_for

APP = Path(__file__).with_name("aws_app.py")

# The error codes the provider reads as "the resource is gone".
SQS_NOT_FOUND = "AWS.SimpleQueueService.NonExistentQueue"  # sqs errCodeQueueDoesNotExist
SNS_NOT_FOUND = "NotFound"  # the code of sns types.NotFoundException

POLL_INTERVAL = 0.05
WAIT_TIMEOUT = 10.0

Attributes = dict[str, str]
Refresh = Callable[[], tuple[Attributes | None, str]]


@dataclass(frozen=True)
class Field:
    """One entry of a provider attribute map: the API attribute and its schema type and flags."""

    api: str
    kind: type = str
    optional: bool = True
    computed: bool = False
    default: bool | int | str | None = None
    is_json: bool = False  # the schema normalises or diff-suppresses it as a JSON document
    is_iam_policy: bool = False  # read through verify.PolicyToSet, which needs valid JSON

    @property
    def computed_only(self) -> bool:
        return self.computed and not self.optional

    @property
    def optional_computed(self) -> bool:
        return self.computed and self.optional


def planned_value(name: str, field: Field, config: Mapping[str, Any]) -> Any:
    """The value Terraform plans for `name`: the configuration's, else the default, else zero."""
    zero = field.default if field.default is not None else field.kind()
    return config.get(name, zero)


# The parts of the provider's attribute maps these configurations touch (queue.go queueSchema and
# queueAttributeMap, topic.go topicSchema/topicAttributeMap, topic_subscription.go
# subscriptionSchema/subscriptionAttributeMap). Fields left out are optional strings that are
# never configured here, so the provider neither sends them nor diffs them.
SQS_QUEUE = {
    "arn": Field("QueueArn", optional=False, computed=True),
    "content_based_deduplication": Field("ContentBasedDeduplication", bool, default=False),
    "deduplication_scope": Field("DeduplicationScope", computed=True),
    "delay_seconds": Field("DelaySeconds", int, default=0),
    "fifo_queue": Field("FifoQueue", bool, default=False),
    "fifo_throughput_limit": Field("FifoThroughputLimit", computed=True),
    "kms_data_key_reuse_period_seconds": Field("KmsDataKeyReusePeriodSeconds", int, computed=True),
    "kms_master_key_id": Field("KmsMasterKeyId"),
    "max_message_size": Field("MaximumMessageSize", int, default=262_144),
    "message_retention_seconds": Field("MessageRetentionPeriod", int, default=345_600),
    "policy": Field("Policy", computed=True, is_json=True, is_iam_policy=True),
    "receive_wait_time_seconds": Field("ReceiveMessageWaitTimeSeconds", int, default=0),
    "redrive_allow_policy": Field("RedriveAllowPolicy", computed=True, is_json=True),
    "redrive_policy": Field("RedrivePolicy", computed=True, is_json=True),
    "sqs_managed_sse_enabled": Field("SqsManagedSseEnabled", bool, computed=True),
    "visibility_timeout_seconds": Field("VisibilityTimeout", int, default=30),
}
SNS_TOPIC = {
    "arn": Field("TopicArn", optional=False, computed=True),
    "application_success_feedback_sample_rate": Field("ApplicationSuccessFeedbackSampleRate", int),
    "content_based_deduplication": Field("ContentBasedDeduplication", bool, default=False),
    "delivery_policy": Field("DeliveryPolicy", is_json=True),
    "display_name": Field("DisplayName"),
    "fifo_topic": Field("FifoTopic", bool, default=False),
    "firehose_success_feedback_sample_rate": Field("FirehoseSuccessFeedbackSampleRate", int),
    "http_success_feedback_sample_rate": Field("HTTPSuccessFeedbackSampleRate", int),
    "kms_master_key_id": Field("KmsMasterKeyId"),
    "lambda_success_feedback_sample_rate": Field("LambdaSuccessFeedbackSampleRate", int),
    "owner": Field("Owner", optional=False, computed=True),
    "policy": Field("Policy", computed=True, is_json=True, is_iam_policy=True),
    "signature_version": Field("SignatureVersion", int, computed=True),
    "sqs_success_feedback_sample_rate": Field("SQSSuccessFeedbackSampleRate", int),
    "tracing_config": Field("TracingConfig", computed=True),
}
SNS_SUBSCRIPTION = {
    "arn": Field("SubscriptionArn", optional=False, computed=True),
    "confirmation_was_authenticated": Field(
        "ConfirmationWasAuthenticated", bool, optional=False, computed=True
    ),
    "delivery_policy": Field("DeliveryPolicy", is_json=True),
    "endpoint": Field("Endpoint"),
    "filter_policy": Field("FilterPolicy", is_json=True),
    "filter_policy_scope": Field("FilterPolicyScope", computed=True),
    "owner_id": Field("Owner", optional=False, computed=True),
    "pending_confirmation": Field("PendingConfirmation", bool, optional=False, computed=True),
    "protocol": Field("Protocol"),
    "raw_message_delivery": Field("RawMessageDelivery", bool, default=False),
    "redrive_policy": Field("RedrivePolicy", is_json=True),
    "replay_policy": Field("ReplayPolicy", is_json=True),
    "subscription_role_arn": Field("SubscriptionRoleArn"),
    "topic_arn": Field("TopicArn"),
}
# Subscribe takes these as parameters, not attributes (resourceTopicSubscriptionCreate).
SUBSCRIBE_PARAMETERS = ("Endpoint", "Protocol", "TopicArn")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(APP, tmp_path_factory.mktemp("aws-terraform") / "state")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sqs(server: Server) -> Any:
    return aws_client(server.url, "sqs")


@pytest.fixture(scope="module")
def sns(server: Server) -> Any:
    return aws_client(server.url, "sns")


@pytest.fixture(scope="module")
def account(server: Server) -> str:
    """The account ID the provider takes from GetCallerIdentity and builds ARNs with."""
    return parse_arn(aws_client(server.url, "sts").get_caller_identity()["Arn"])[3]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def jsonencode(value: object) -> str:
    """Terraform's jsonencode(): compact, object keys sorted."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def same_json(left: str, right: str) -> bool:
    """verify.JSONStringsEqual: both parse, to equal documents (numbers stay numbers)."""
    try:
        return bool(json.loads(left) == json.loads(right))
    except ValueError:
        return False


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


def parse_arn(text: str) -> list[str]:
    """aws-sdk-go-v2 arn.Parse: `arn:` and six colon-separated sections, the last one free."""
    sections = text.split(":", 5)
    assert text.startswith("arn:") and len(sections) == 6, f"{text!r} is not an ARN to arn.Parse"
    return sections[1:]  # partition, service, region, account, resource


def go_parse_bool(api: str, value: str) -> bool:
    """strconv.ParseBool, which APIAttributesToResourceData reads a TypeBool with."""
    if value in {"1", "t", "T", "TRUE", "true", "True"}:
        return True
    if value in {"0", "f", "F", "FALSE", "false", "False"}:
        return False
    raise AssertionError(f"{api}={value!r}: the provider fails the read (strconv.ParseBool)")


def go_atoi(api: str, value: str) -> int:
    """strconv.Atoi, which APIAttributesToResourceData reads a TypeInt with."""
    assert re.fullmatch(r"[+-]?\d+", value), f"{api}={value!r}: strconv.Atoi fails the read"
    return int(value)


def attributes_to_create(schema: Mapping[str, Field], config: Mapping[str, Any]) -> Attributes:
    """ResourceDataToAPIAttributesCreate: the attributes the provider sends for a new resource."""
    sent: Attributes = {}
    for name, field in schema.items():
        if field.computed_only:
            continue
        value = planned_value(name, field, config)
        if field.kind is bool:
            text = "true" if value else ""
        elif field.kind is int:
            text = str(value) if not field.optional_computed or value != 0 else ""
        else:
            text = value
        if text:
            sent[field.api] = text
    return sent


def attributes_to_update(
    schema: Mapping[str, Field], old: Mapping[str, Any], new: Mapping[str, Any]
) -> Attributes:
    """ResourceDataToAPIAttributesUpdate: the changed attributes, booleans as "true"/"false"."""
    sent: Attributes = {}
    for name, field in schema.items():
        value = planned_value(name, field, new)
        if field.computed_only or planned_value(name, field, old) == value:
            continue
        sent[field.api] = str(value).lower() if field.kind is bool else str(value)
    return sent


def read_state(schema: Mapping[str, Field], attributes: Attributes) -> dict[str, Any]:
    """APIAttributesToResourceData: typed state values, None for attributes the API left out."""
    state: dict[str, Any] = {}
    for name, field in schema.items():
        value = attributes.get(field.api)
        if value is not None and field.kind is bool:
            state[name] = go_parse_bool(field.api, value)
        elif value is not None and field.kind is int:
            state[name] = go_atoi(field.api, value)
        else:
            if value and field.is_iam_policy:
                assert is_json(value), f"{field.api} {value!r} is not JSON (verify.PolicyToSet)"
            state[name] = value
    return state


def assert_no_diff(
    schema: Mapping[str, Field], state: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """`terraform plan` after a read shows no change: every planned value reads back."""
    diffs = []
    for name, field in schema.items():
        if field.computed_only or (field.optional_computed and name not in config):
            continue
        want = planned_value(name, field, config)
        have = field.kind() if state[name] is None else state[name]
        same = (same_json(want, have) or want == have == "") if field.is_json else want == have
        if not same:
            diffs.append(f"{name} ({field.api}): configured {want!r}, read back {state[name]!r}")
    assert not diffs, "plan would show changes:\n" + "\n".join(diffs)


def wait_for_state(
    refresh: Refresh,
    *,
    pending: set[str],
    target: set[str],
    what: str,
    continuous: int = 1,
    not_found_checks: int = 20,
) -> Attributes | None:
    """retry.StateChangeConf.WaitForState, less the back-off: `refresh` gives (answer, state).

    An answer of None is "not found": the goal when there is no target state, else counted
    against `not_found_checks`. A state neither pending nor target fails, as in the provider.
    """
    deadline = time.monotonic() + WAIT_TIMEOUT
    in_target = not_found = 0
    answer: Attributes | None = None
    state = ""
    while time.monotonic() < deadline:
        answer, state = refresh()
        if answer is None:
            if not target:
                in_target += 1
                if in_target >= continuous:
                    return None
            else:
                not_found += 1
                assert not_found <= not_found_checks, f"{what}: read as not found {not_found} times"
        elif state in target:
            not_found = 0
            in_target += 1
            if in_target >= continuous:
                return answer
        elif state in pending:
            not_found = in_target = 0
        else:
            raise AssertionError(
                f"{what}: unexpected state {state!r} (pending {sorted(pending)}, target "
                f"{sorted(target)}); answer {answer!r}"
            )
        time.sleep(POLL_INTERVAL)
    raise AssertionError(
        f"{what}: not {sorted(target) or 'gone'} within {WAIT_TIMEOUT} s; "
        f"last state {state!r}, answer {answer!r}"
    )


# --- aws_sqs_queue -------------------------------------------------------------------------


def attributes_or_gone(call: Callable[[], Any], what: str, gone: str) -> Attributes | None:
    """A provider's find...ByX: the attributes `call` answers, or None on the one error code
    the provider reads as "gone" (any other error, or no attributes, fails the test)."""
    try:
        answer = call()
    except ClientError as error:
        assert error_code(error) == gone, (
            f"{what} answered {error_code(error)!r} ({error.response['Error']}); "
            f"the provider reads only {gone!r} as gone"
        )
        return None
    attributes: Attributes = answer.get("Attributes", {})
    assert attributes, f"{what} answered no attributes (EmptyResultError)"
    return attributes


def find_queue_attributes(sqs: Any, url: str) -> Attributes | None:
    """findQueueAttributesByURL: GetQueueAttributes(All); None where the provider reads "gone"."""
    return attributes_or_gone(
        lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]),
        f"GetQueueAttributes({url})",
        SQS_NOT_FOUND,
    )


def queue_attribute_mismatches(expected: Attributes, got: Attributes) -> list[str]:
    """statusQueueAttributeState's comparison (no Policy or KMS reuse period is sent here)."""
    mismatches = []
    for key, want in expected.items():
        if key not in got:
            if want:
                mismatches.append(f"{key}: sent {want!r}, missing")
            continue
        if key in {"RedrivePolicy", "RedriveAllowPolicy"}:
            same = same_json(got[key], want)
        else:
            same = got[key] == want
        if not same:
            mismatches.append(f"{key}: sent {want!r}, read {got[key]!r}")
    return mismatches


def wait_queue_attributes_propagated(sqs: Any, url: str, expected: Attributes) -> None:
    """waitQueueAttributesPropagated: what was sent reads back equal, 6 times in a row."""
    seen: list[list[str]] = [[]]

    def refresh() -> tuple[Attributes | None, str]:
        got = find_queue_attributes(sqs, url)
        if got is None:
            return None, ""
        seen[0] = queue_attribute_mismatches(expected, got)
        return got, "notequal" if seen[0] else "equal"

    try:
        wait_for_state(
            refresh, pending={"notequal"}, target={"equal"}, continuous=6, not_found_checks=10,
            what=f"attributes of {url}",
        )  # fmt: skip
    except AssertionError as error:
        raise AssertionError(f"{error}\nmismatches: {seen[0]}") from error


def apply_queue(
    sqs: Any, name: str, config: Mapping[str, Any], tags: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """resourceQueueCreate: CreateQueue, wait for the attributes, then resourceQueueRead."""
    attributes = attributes_to_create(SQS_QUEUE, config)
    extra = {"tags": dict(tags)} if tags else {}  # getTagsIn is nil without tags
    url = sqs.create_queue(QueueName=name, Attributes=attributes, **extra)["QueueUrl"]
    wait_queue_attributes_propagated(sqs, url, attributes)
    return url, read_queue(sqs, url)


def read_queue(sqs: Any, url: str) -> dict[str, Any]:
    """resourceQueueRead and the tags interceptor: GetQueueAttributes(All), ListQueueTags."""
    attributes = find_queue_attributes(sqs, url)
    assert attributes is not None, f"a queue just applied reads as gone: {url}"
    state = read_state(SQS_QUEUE, attributes)
    parts = urlsplit(url).path.split("/")
    assert len(parts) == 3, f"queueNameFromURL: {url} has not the path /<account>/<name>"
    state["name"] = parts[2]
    state["tags"] = sqs.list_queue_tags(QueueUrl=url).get("Tags", {})
    return state


def update_queue(
    sqs: Any,
    url: str,
    old: tuple[Mapping[str, Any], Mapping[str, str]],
    new: tuple[Mapping[str, Any], Mapping[str, str]],
) -> dict[str, Any]:
    """resourceQueueUpdate (SetQueueAttributes, the wait) and the tags interceptor, then a read."""
    changed = attributes_to_update(SQS_QUEUE, old[0], new[0])
    if changed:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
        wait_queue_attributes_propagated(sqs, url, changed)
    # tags_gen.go updateTags: UntagQueue the removed keys, then TagQueue the new and changed ones
    removed = sorted(set(old[1]) - set(new[1]))
    if removed:
        sqs.untag_queue(QueueUrl=url, TagKeys=removed)
    updated = {key: value for key, value in new[1].items() if old[1].get(key) != value}
    if updated:
        sqs.tag_queue(QueueUrl=url, Tags=updated)
    return read_queue(sqs, url)


def destroy_queue(sqs: Any, url: str) -> None:
    """resourceQueueDelete: DeleteQueue, then waitQueueDeleted (gone 15 reads in a row)."""
    sqs.delete_queue(QueueUrl=url)

    def refresh() -> tuple[Attributes | None, str]:
        attributes = find_queue_attributes(sqs, url)
        return attributes, "" if attributes is None else "exists"

    wait_for_state(
        refresh, pending={"exists"}, target=set(), continuous=15, not_found_checks=5,
        what=f"deleted queue {url}",
    )  # fmt: skip


def test_provider_configuration_reads_account_and_partition_from_sts(server: Server) -> None:
    # Provider configure (aws-sdk-go-base): GetCallerIdentity; arn.Parse(Arn) gives the
    # account ID and partition every ARN the provider builds or checks is made of.
    identity = aws_client(server.url, "sts").get_caller_identity()
    partition, _, _, account, resource = parse_arn(identity["Arn"])
    assert partition == "aws"  # us-east-1's partition, which the provider builds ARNs in
    assert account == identity["Account"]
    assert re.fullmatch(r"\d{12}", account)
    assert resource and identity["UserId"]


def test_sqs_queue_with_redrive_policy_and_tags_through_its_terraform_lifecycle(
    sqs: Any, account: str
) -> None:
    # apply aws_sqs_queue.dlq (all defaults): resourceQueueCreate
    dlq_url, dlq = apply_queue(sqs, unique("tf-dlq"), {}, {})
    assert_no_diff(SQS_QUEUE, dlq, {})

    # apply aws_sqs_queue.main: CreateQueue with attributes and tags, the propagation wait, read
    name = unique("tf-main")
    config = {
        "visibility_timeout_seconds": 60,
        "message_retention_seconds": 86_400,
        "delay_seconds": 5,
        "receive_wait_time_seconds": 10,
        "redrive_policy": jsonencode({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 4}),
    }
    tags = {"Environment": "test", "Team": "fan-out"}
    url, state = apply_queue(sqs, name, config, tags)
    assert state["name"] == name
    # TestAccSQSQueue_basic: the ARN is regional, in the caller's account
    assert state["arn"] == f"arn:aws:sqs:{REGION}:{account}:{name}"
    assert_no_diff(SQS_QUEUE, state, config)
    assert state["tags"] == tags

    # terraform plan / refresh: the same read, still nothing to change
    assert read_queue(sqs, url) == state

    # update in place: SetQueueAttributes (changed only), the wait again; UntagQueue, TagQueue
    new_config = {
        **config,
        "visibility_timeout_seconds": 120,
        "delay_seconds": 0,
        "redrive_policy": jsonencode({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 7}),
    }
    new_tags = {"Environment": "prod", "Owner": "platform"}
    state = update_queue(sqs, url, (config, tags), (new_config, new_tags))
    assert_no_diff(SQS_QUEUE, state, new_config)
    assert state["tags"] == new_tags

    # destroy: DeleteQueue and waitQueueDeleted; a later refresh drops it on the same code
    destroy_queue(sqs, url)
    assert find_queue_attributes(sqs, url) is None
    # a repeated destroy (state lagging) passes only on errCodeQueueDoesNotExist
    try:
        sqs.delete_queue(QueueUrl=url)
    except ClientError as error:
        assert error_code(error) == SQS_NOT_FOUND, error.response["Error"]
    destroy_queue(sqs, dlq_url)


def test_fifo_queue_with_content_based_deduplication_through_its_terraform_lifecycle(
    sqs: Any, account: str
) -> None:
    # apply: CreateQueue with FifoQueue and ContentBasedDeduplication "true", the wait, read
    name = unique("tf-orders") + ".fifo"
    config = {"fifo_queue": True, "content_based_deduplication": True}
    url, state = apply_queue(sqs, name, config, {})
    assert state["name"] == name
    assert state["arn"] == f"arn:aws:sqs:{REGION}:{account}:{name}"
    assert state["fifo_queue"] is True and state["content_based_deduplication"] is True
    assert_no_diff(SQS_QUEUE, state, config)

    # update in place: SetQueueAttributes ContentBasedDeduplication "false", the wait, read
    new_config = {**config, "content_based_deduplication": False}
    state = update_queue(sqs, url, (config, {}), (new_config, {}))
    assert_no_diff(SQS_QUEUE, state, new_config)

    # destroy: DeleteQueue and waitQueueDeleted
    destroy_queue(sqs, url)


# --- aws_sns_topic and aws_sns_topic_subscription ------------------------------------------


def find_topic_attributes(sns: Any, arn: str) -> Attributes | None:
    """findTopicAttributesByARN: GetTopicAttributes; None on NotFound (NotFoundException)."""
    return attributes_or_gone(
        lambda: sns.get_topic_attributes(TopicArn=arn), f"GetTopicAttributes({arn})", SNS_NOT_FOUND
    )


def assert_policy_has_valid_aws_principals(policy: str) -> None:
    """iam PolicyHasValidAWSPrincipals on the topic's Policy, which the topic read requires."""
    try:
        document = json.loads(policy)
    except ValueError:
        raise AssertionError(f"topic Policy {policy!r} is not JSON: the read fails") from None
    statements = document.get("Statement") if isinstance(document, dict) else None
    assert isinstance(statements, list), f"Statement[*].Principal.AWS is no list in {policy}"
    for statement in statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        aws = principal.get("AWS") if isinstance(principal, dict) else None
        if isinstance(aws, str):  # the provider checks string principals only
            assert is_valid_aws_principal(aws), f"AWS principal {aws!r} in {policy}"


def is_valid_aws_principal(principal: str) -> bool:
    """IsValidPolicyAWSPrincipal: `*`, an ARN (arn.IsARN) or a 12-digit account ID."""
    is_arn = principal.startswith("arn:") and principal.count(":") >= 5
    return principal == "*" or is_arn or re.fullmatch(r"\d{12}", principal) is not None


def read_topic(sns: Any, arn: str) -> dict[str, Any]:
    """resourceTopicRead and the tags interceptor: GetTopicAttributes, ListTagsForResource."""
    attributes = find_topic_attributes(sns, arn)
    assert attributes is not None, f"a topic just applied reads as gone: {arn}"
    assert_policy_has_valid_aws_principals(attributes.get("Policy", ""))
    state = read_state(SNS_TOPIC, attributes)
    state["name"] = parse_arn(arn)[4]  # parseTopicNameFromARN
    tags = sns.list_tags_for_resource(ResourceArn=arn)["Tags"]
    state["tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    return state


def put_topic_attributes(sns: Any, arn: str, attributes: Attributes) -> None:
    """putTopicAttributes: one SetTopicAttributes each; InvalidParameter stalls an apply 2 min."""
    for name, value in attributes.items():
        if name == "Policy" and not value:
            continue
        try:
            sns.set_topic_attributes(TopicArn=arn, AttributeName=name, AttributeValue=value)
        except ClientError as error:
            raise AssertionError(
                f"SetTopicAttributes {name}={value!r} answered {error.response['Error']}; "
                "putTopicAttribute retries InvalidParameter for 2 minutes, then fails the apply"
            ) from error


def apply_topic(
    sns: Any, name: str, config: Mapping[str, Any], tags: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """resourceTopicCreate: CreateTopic with tags (and FifoTopic), then SetTopicAttributes."""
    attributes = attributes_to_create(SNS_TOPIC, config)
    create: dict[str, Any] = {"Name": name}
    if tags:
        create["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    if "FifoTopic" in attributes:
        create["Attributes"] = {"FifoTopic": attributes.pop("FifoTopic")}
    arn: str = sns.create_topic(**create)["TopicArn"]
    put_topic_attributes(sns, arn, attributes)
    return arn, read_topic(sns, arn)


def destroy_topic(sns: Any, arn: str) -> None:
    """resourceTopicDelete: DeleteTopic (NotFound tolerated); a refresh then reads NotFound."""
    sns.delete_topic(TopicArn=arn)
    assert find_topic_attributes(sns, arn) is None, f"topic {arn} still reads after DeleteTopic"
    try:
        sns.delete_topic(TopicArn=arn)
    except ClientError as error:
        assert error_code(error) == SNS_NOT_FOUND, error.response["Error"]


def find_subscription_attributes(sns: Any, arn: str) -> Attributes | None:
    """findSubscriptionAttributesByARN: GetSubscriptionAttributes; None on NotFound."""
    return attributes_or_gone(
        lambda: sns.get_subscription_attributes(SubscriptionArn=arn),
        f"GetSubscriptionAttributes({arn})",
        SNS_NOT_FOUND,
    )


def subscription_state(sns: Any, arn: str) -> tuple[Attributes | None, str]:
    """statusSubscriptionPendingConfirmation: the PendingConfirmation attribute is the state."""
    attributes = find_subscription_attributes(sns, arn)
    return attributes, "" if attributes is None else attributes.get("PendingConfirmation", "")


def read_subscription(sns: Any, arn: str) -> dict[str, Any]:
    """resourceTopicSubscriptionRead: GetSubscriptionAttributes through the attribute map."""
    attributes = find_subscription_attributes(sns, arn)
    assert attributes is not None, f"a subscription just applied reads as gone: {arn}"
    return read_state(SNS_SUBSCRIPTION, attributes)


def receive_until(sqs: Any, url: str, body: str) -> list[str]:
    """Bodies received (and deleted) from `url` until `body` is among them."""
    bodies: list[str] = []

    def arrived() -> bool:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return body in bodies

    wait_for(arrived, timeout=WAIT_TIMEOUT)
    return bodies


def test_sns_topic_with_display_name_and_tags_through_its_terraform_lifecycle(
    sns: Any, account: str
) -> None:
    # apply: CreateTopic (tags on create), SetTopicAttributes per attribute, read
    name = unique("tf-topic")
    config = {"display_name": "Orders"}
    tags = {"Environment": "test", "Team": "fan-out"}
    arn, state = apply_topic(sns, name, config, tags)
    assert arn == f"arn:aws:sns:{REGION}:{account}:{name}"
    assert (state["arn"], state["owner"], state["name"]) == (arn, account, name)
    assert_no_diff(SNS_TOPIC, state, config)
    assert state["tags"] == tags

    # terraform plan / refresh: the same read, still nothing to change
    assert read_topic(sns, arn) == state

    # update in place: SetTopicAttributes for what changed; UntagResource, TagResource; read
    new_config = {"display_name": "Orders (prod)"}
    put_topic_attributes(sns, arn, attributes_to_update(SNS_TOPIC, config, new_config))
    sns.untag_resource(ResourceArn=arn, TagKeys=["Team"])
    sns.tag_resource(
        ResourceArn=arn,
        Tags=[{"Key": "Environment", "Value": "prod"}, {"Key": "Owner", "Value": "platform"}],
    )
    state = read_topic(sns, arn)
    assert_no_diff(SNS_TOPIC, state, new_config)
    assert state["tags"] == {"Environment": "prod", "Owner": "platform"}

    # destroy: DeleteTopic; refresh and a repeated destroy see NotFound
    destroy_topic(sns, arn)


def test_sns_subscription_to_an_sqs_queue_through_its_terraform_lifecycle(
    sns: Any, sqs: Any, account: str
) -> None:
    # the topic and the queue it feeds, made directly: their Terraform lifecycles are tested above
    topic_arn = sns.create_topic(Name=unique("tf-events"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique("tf-events-sink"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]

    # apply: Subscribe with ReturnSubscriptionArn and the attribute map's values
    config = {
        "topic_arn": topic_arn,
        "protocol": "sqs",
        "endpoint": queue_arn,
        "raw_message_delivery": True,
        "filter_policy": jsonencode({"kind": ["order"]}),
    }
    attributes = attributes_to_create(SNS_SUBSCRIPTION, config)
    for parameter in SUBSCRIBE_PARAMETERS:
        del attributes[parameter]
    arn = sns.subscribe(
        TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes,
        ReturnSubscriptionArn=True,
    )["SubscriptionArn"]  # fmt: skip
    # TestAccSNSTopicSubscription_basic: a regional ARN under the topic's
    assert re.fullmatch(re.escape(topic_arn) + r":.+", arn), arn

    # waitSubscriptionConfirmed: PendingConfirmation "true" -> "false"; an sqs endpoint needs none
    wait_for_state(
        lambda: subscription_state(sns, arn), pending={"true"}, target={"false"},
        what=f"confirmation of {arn}",
    )  # fmt: skip

    # resourceTopicSubscriptionRead: nothing to change, and the computed attributes it reads
    state = read_subscription(sns, arn)
    assert_no_diff(SNS_SUBSCRIPTION, state, config)
    assert (state["arn"], state["owner_id"]) == (arn, account)
    assert state["pending_confirmation"] is False
    assert state["confirmation_was_authenticated"] is True
    # terraform plan / refresh: the same read again
    assert read_subscription(sns, arn) == state

    # what the subscription is for: a matching message arrives raw, another one is filtered out
    for kind in ("refund", "order"):
        attribute = {"DataType": "String", "StringValue": kind}
        sns.publish(TopicArn=topic_arn, Message=f"{kind} 1", MessageAttributes={"kind": attribute})
    assert "refund 1" not in receive_until(sqs, queue_url, "order 1")

    # update in place: SetSubscriptionAttributes per changed attribute, then the read
    new_config = {
        **config,
        "raw_message_delivery": False,
        "filter_policy": jsonencode({"kind": ["order", "refund"]}),
    }
    for name, value in attributes_to_update(SNS_SUBSCRIPTION, config, new_config).items():
        sns.set_subscription_attributes(
            SubscriptionArn=arn, AttributeName=name, AttributeValue=value
        )
    assert_no_diff(SNS_SUBSCRIPTION, read_subscription(sns, arn), new_config)

    # destroy: Unsubscribe, then waitSubscriptionDeleted until GetSubscriptionAttributes is NotFound
    sns.unsubscribe(SubscriptionArn=arn)
    wait_for_state(
        lambda: subscription_state(sns, arn), pending={"true", "false"}, target=set(),
        what=f"deleted subscription {arn}",
    )  # fmt: skip
    assert find_subscription_attributes(sns, arn) is None
    destroy_topic(sns, topic_arn)
    destroy_queue(sqs, queue_url)
