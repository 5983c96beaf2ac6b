"""Target input: AWS's documented and recorded vectors, the limits, failed delivery, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.errors import InputTransformError, ValidationException
from fanstack.core.target_input import (
    MAX_INPUT_LENGTH,
    MAX_INPUT_PATHS,
    MAX_PATH_LENGTH,
    MAX_TEMPLATE_LENGTH,
    InputTransformer,
    TargetInput,
)

RULE = {
    "rule_name": "example",
    "rule_arn": "arn:aws:events:us-east-2:123456789012:rule/example",
    "ingestion_time": "2015-11-11T21:29:55Z",
}

# The example EC2 event of the user guide's "Input transform examples".
EC2_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "EC2 Instance State-change Notification",
    "source": "aws.ec2",
    "account": "123456789012",
    "time": "2015-11-11T21:29:54Z",
    "region": "us-east-1",
    "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],
    "detail": {"instance-id": "i-0123456789", "state": "RUNNING"},
}
EC2_PATHS = {
    "timestamp": "$.time",
    "instance": "$.detail.instance-id",
    "state": "$.detail.state",
    "resource": "$.resources[0]",
}

# The event LocalStack's recorded tests put (EVENT_DETAIL under TEST_EVENT_PATTERN).
ACCOUNT_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "a1b2c3d4-0000-4000-8000-000000000001",
    "detail-type": "core.update-account-command",
    "source": "core.update-account-command",
    "account": "111111111111",
    "time": "2024-06-11T08:33:10Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"command": "update-account", "payload": {"acc_id": "0a787ecb-4015", "sf_id": "baz"}},
}
ACCOUNT_PATHS = {
    "detail-type": "$.detail-type",
    "timestamp": "$.time",
    "command": "$.detail.command",
}
MISSING_COMMAND = ACCOUNT_PATHS | {"command": "$.detail.notinmessage"}


def transform(paths: dict[str, str], template: str, event: dict[str, Any] | None = None) -> str:
    target = TargetInput(input_transformer=InputTransformer(paths, template))
    return target.render(EC2_EVENT if event is None else event, **RULE)


def rendered_json(paths: dict[str, str], template: str, event: dict[str, Any] | None = None) -> Any:
    return json.loads(transform(paths, template, event))


# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
# ("Input transform examples": template, then the output the page shows)
USER_GUIDE_TEXT = [
    ('"instance <instance> is in <state>"', '"instance i-0123456789 is in RUNNING"'),
    (
        '"instance \\"<instance>\\" is in <state>"',
        '"instance \\"i-0123456789\\" is in RUNNING"',
    ),
    (
        '{\n  "instance" : <instance>,\n  "state": <state>\n}',
        '{\n  "instance" : "i-0123456789",\n  "state": "RUNNING"\n}',
    ),
    (
        '{\n "instance" : <instance>,\n "state": "<state>",\n'
        ' "instanceStatus": "instance \\"<instance>\\" is in <state>"\n}',
        '{\n "instance" : "i-0123456789",\n "state": "RUNNING",\n'
        ' "instanceStatus": "instance \\"i-0123456789\\" is in RUNNING"\n}',
    ),
    ('"<aws.events.rule-name> triggered"', '"example triggered"'),
]


@pytest.mark.parametrize(("template", "expected"), USER_GUIDE_TEXT)
def test_user_guide_examples_render_as_documented(template: str, expected: str) -> None:
    assert transform(EC2_PATHS, template) == expected


def test_user_guide_json_with_a_mix_of_variables_and_static_information() -> None:
    template = (
        '{\n  "instance" : <instance>,\n  "state": [ 9, <state>, true ],\n'
        '  "Transformed" : "Yes"\n}'
    )
    assert rendered_json(EC2_PATHS, template) == {
        "instance": "i-0123456789",
        "state": [9, "RUNNING", True],
        "Transformed": "Yes",
    }


def test_user_guide_reserved_variables_in_json_are_quoted_strings_and_the_event_object() -> None:
    template = (
        '{"instance" : <instance>, "state": <state>, "ruleArn" : <aws.events.rule-arn>,'
        ' "ruleName" : <aws.events.rule-name>, "originalEvent" : <aws.events.event.json>}'
    )
    assert rendered_json(EC2_PATHS, template) == {
        "instance": "i-0123456789",
        "state": "RUNNING",
        "ruleArn": RULE["rule_arn"],
        "ruleName": "example",
        "originalEvent": EC2_EVENT,
    }


# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html
API_PATHS = {"instance": "$.detail.instance", "status": "$.detail.status"}
API_EVENT = EC2_EVENT | {"detail": {"instance": "i-1", "status": "RUNNING"}}
API_REFERENCE = [
    ("<instance> is in state <status>", "i-1 is in state RUNNING"),
    ('<instance> is in state "<status>"', 'i-1 is in state "RUNNING"'),
    (
        '{"myInstance": <instance>,"myStatus": "<instance> is in state \\"<status>\\""}',
        '{"myInstance": "i-1","myStatus": "i-1 is in state \\"RUNNING\\""}',
    ),
]


@pytest.mark.parametrize(("template", "expected"), API_REFERENCE)
def test_api_reference_examples_render_as_documented(template: str, expected: str) -> None:
    assert transform(API_PATHS, template, API_EVENT) == expected


# Recorded against AWS by LocalStack (markers.aws.validated, 2024-05/06):
# https://github.com/localstack/localstack/blob/main/tests/aws/services/events/test_events_inputs.py
# https://github.com/localstack/localstack/blob/main/tests/aws/services/events/test_events_inputs.snapshot.json
RECORDED_STRING_TEMPLATE = (
    '"Event of <detail-type> type, at time <timestamp>, info extracted from detail <command>"'
)
RECORDED_TEXT = [
    (
        ACCOUNT_PATHS,
        RECORDED_STRING_TEMPLATE,
        '"Event of core.update-account-command type, at time 2024-06-11T08:33:10Z, info extracted'
        ' from detail update-account"',
    ),
    (
        MISSING_COMMAND,
        RECORDED_STRING_TEMPLATE,
        '"Event of core.update-account-command type, at time 2024-06-11T08:33:10Z, info extracted'
        ' from detail "',
    ),
    (
        ACCOUNT_PATHS,
        '"{[/Check with special starting characters for event of <detail-type> type"',
        '"{[/Check with special starting characters for event of core.update-account-command'
        ' type"',
    ),
    (
        {},
        '"Message containing all pre defined variables <aws.events.rule-arn>'
        ' <aws.events.rule-name> <aws.events.event.ingestion-time>"',
        f'"Message containing all pre defined variables {RULE["rule_arn"]} example'
        f' {RULE["ingestion_time"]}"',
    ),
]


@pytest.mark.parametrize(("paths", "template", "expected"), RECORDED_TEXT)
def test_recorded_string_templates_render_as_aws_did(
    paths: dict[str, str], template: str, expected: str
) -> None:
    assert transform(paths, template, ACCOUNT_EVENT) == expected


RECORDED_JSON_TEMPLATE = '{"detailType": <detail-type>,  "time": <timestamp>, "command": <command>}'


@pytest.mark.parametrize(
    ("paths", "command"), [(ACCOUNT_PATHS, "update-account"), (MISSING_COMMAND, "")]
)
def test_recorded_json_template_renders_a_missing_path_as_an_empty_string(
    paths: dict[str, str], command: str
) -> None:
    assert rendered_json(paths, RECORDED_JSON_TEMPLATE, ACCOUNT_EVENT) == {
        "detailType": "core.update-account-command",
        "time": "2024-06-11T08:33:10Z",
        "command": command,
    }


def test_recorded_event_variables_are_the_envelope_without_detail_and_the_whole_envelope() -> None:
    template = '{"originalEvent": <aws.events.event>, "originalEventJson": <aws.events.event.json>}'
    rendered = rendered_json({}, template, ACCOUNT_EVENT)
    assert rendered["originalEventJson"] == ACCOUNT_EVENT
    assert list(rendered["originalEvent"]) == [
        "id", "account", "detailType", "time", "source", "region", "resources", "version"
    ]
    assert rendered["originalEvent"]["detailType"] == "core.update-account-command"


def test_recorded_undefined_placeholder_is_rejected_when_the_target_is_put() -> None:
    template = '"Event of <detail-type> type, with not defined key <notdefinedkey>"'
    with pytest.raises(InputTransformError, match="invalid placeholder notdefinedkey"):
        InputTransformer(ACCOUNT_PATHS, template)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$.detail", ACCOUNT_EVENT["detail"]),
        ("$.detail.payload", ACCOUNT_EVENT["detail"]["payload"]),
        ("$.detail.payload.sf_id", "baz"),
    ],
)
def test_recorded_input_paths_deliver_the_selected_json(path: str, expected: Any) -> None:
    rendered = TargetInput(input_path=path).render(ACCOUNT_EVENT, **RULE)
    assert json.loads(rendered) == expected


# https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
# ("Common issues with transforming input")
OBJECT_EVENT = EC2_EVENT | {"detail": {"prop": "value", "list": ["a", 1, True, None], "n": 1.5}}
OBJECT_PATHS = {"detail": "$.detail", "list": "$.detail.list", "n": "$.detail.n"}


def test_an_object_referenced_in_a_string_loses_its_internal_quotes() -> None:
    rendered = transform(OBJECT_PATHS, '"Detail is <detail>"', OBJECT_EVENT)
    assert rendered == '"Detail is {prop:value,list:[a,1,true,null],n:1.5}"'


def test_an_object_placed_as_a_value_keeps_its_json() -> None:
    rendered = transform(OBJECT_PATHS, '{"detail": <detail>}', OBJECT_EVENT)
    assert rendered == '{"detail": {"prop":"value","list":["a",1,true,null],"n":1.5}}'


def test_objects_lists_and_numbers_inside_a_json_string_render_unquoted() -> None:
    template = '{"text": "<detail> / <list> / <n>", "n": <n>, "list": <list>}'
    assert rendered_json(OBJECT_PATHS, template, OBJECT_EVENT) == {
        "text": "{prop:value,list:[a,1,true,null],n:1.5} / [a,1,true,null] / 1.5",
        "n": 1.5,
        "list": ["a", 1, True, None],
    }


def test_a_wildcard_path_renders_the_list_of_what_it_selects() -> None:
    paths = {"ids": "$.detail.items[*].id", "none": "$.detail.items[*].nope"}
    event = EC2_EVENT | {"detail": {"items": [{"id": "a"}, {"id": "b"}]}}
    assert rendered_json(paths, '{"ids": <ids>, "none": <none>}', event) == {
        "ids": ["a", "b"],
        "none": [],
    }
    assert transform(paths, "ids=<ids>", event) == "ids=[a,b]"


QUOTED = {"name": "$.detail.name"}
TRICKY = 'say "hi"\nthen\ttab \\ and é'


def test_a_string_value_is_quoted_and_escaped_where_it_stands_as_a_json_value() -> None:
    event = EC2_EVENT | {"detail": {"name": TRICKY}}
    rendered = transform(QUOTED, '{"name": <name>}', event)
    assert rendered == '{"name": "say \\"hi\\"\\nthen\\ttab \\\\ and é"}'
    assert json.loads(rendered) == {"name": TRICKY}


def test_a_string_value_in_a_string_template_is_inserted_raw() -> None:
    event = EC2_EVENT | {"detail": {"name": TRICKY}}
    assert transform(QUOTED, "name: <name>!", event) == f"name: {TRICKY}!"


@pytest.mark.parametrize("name", ['say "hi"', "two\nlines", "back\\slash"])
def test_a_value_that_breaks_a_json_string_is_a_failed_delivery(name: str) -> None:
    # EventBridge does not escape values placed inside a string of a JSON template.
    event = EC2_EVENT | {"detail": {"name": name}}
    with pytest.raises(InputTransformError, match="not valid JSON"):
        transform(QUOTED, '{"greeting": "hello <name>"}', event)


def test_a_json_template_that_renders_invalid_json_is_a_failed_delivery() -> None:
    with pytest.raises(InputTransformError, match="not valid JSON"):
        transform(EC2_PATHS, '{"instance": <instance>')


def test_the_event_variable_inside_a_json_string_is_a_failed_delivery() -> None:
    # "Can only be used as a value for a JSON field, as its contents are not escaped."
    with pytest.raises(InputTransformError, match="not valid JSON"):
        transform({}, '{"text": "event: <aws.events.event.json>"}')


def test_a_json_array_template_is_a_json_template() -> None:
    assert rendered_json(EC2_PATHS, "[<instance>, <state>]") == ["i-0123456789", "RUNNING"]


# https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_Target.html (Input, InputPath)
def test_no_input_delivers_the_whole_event_as_minified_json() -> None:
    rendered = TargetInput().render(EC2_EVENT, **RULE)
    assert rendered == json.dumps(EC2_EVENT, separators=(",", ":"))


def test_a_constant_input_is_delivered_as_written() -> None:
    constant = '{ "key": "value", "list": [1, true, "x"] }'
    assert TargetInput(input=constant).render(EC2_EVENT, **RULE) == constant


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", EC2_EVENT),
        ("$.resources[0]", EC2_EVENT["resources"][0]),
        ("$['detail']['instance-id']", "i-0123456789"),
        ('$["detail"].state', "RUNNING"),
        ("$.resources[*]", EC2_EVENT["resources"]),
        ("$.detail.*", ["i-0123456789", "RUNNING"]),
    ],
)
def test_an_input_path_delivers_what_it_selects(path: str, expected: Any) -> None:
    assert json.loads(TargetInput(input_path=path).render(EC2_EVENT, **RULE)) == expected


def test_a_path_key_may_hold_a_forward_slash() -> None:
    event = EC2_EVENT | {"detail": {"a/b": "slash"}}
    assert transform({"v": "$.detail.a/b"}, "<v>", event) == "slash"


def test_an_input_path_that_selects_nothing_is_a_failed_delivery() -> None:
    with pytest.raises(InputTransformError, match="selects nothing"):
        TargetInput(input_path="$.detail.missing").render(EC2_EVENT, **RULE)


def paths_of(count: int) -> dict[str, str]:
    return {f"k{i}": "$.detail" for i in range(count)}


INVALID: list[tuple[dict[str, Any], str]] = [
    ({"input": "1", "input_path": "$"}, "Only one of"),
    ({"input_path": "$", "input_transformer": InputTransformer({}, '"x"')}, "Only one of"),
    ({"input": "not json"}, "input is not valid JSON"),
    ({"input": ""}, "input is not valid JSON"),
    ({"input": '{"a": NaN}'}, "not valid JSON"),
    ({"input": '"' + "x" * (MAX_INPUT_LENGTH - 1) + '"'}, "8193 characters long; the limit is"),
    ({"input_path": "detail"}, "must start with '\\$'"),
    ({"input_path": "$." + "a" * MAX_PATH_LENGTH}, "the limit is 256"),
    ({"input_path": "$..detail"}, "not a JSONPath EventBridge accepts"),
    ({"input_path": "$.detail[?(@.x)]"}, "not a JSONPath EventBridge accepts"),
    ({"input_path": "$.resources[0:2]"}, "not a JSONPath EventBridge accepts"),
    ({"input_path": "$.resources[-1]"}, "not a JSONPath EventBridge accepts"),
    ({"input_path": "$.detail."}, "not a JSONPath EventBridge accepts"),
    ({"input_path": "$.detail.a b"}, "not a JSONPath EventBridge accepts"),
]


@pytest.mark.parametrize(("fields", "message"), INVALID)
def test_an_invalid_target_input_is_rejected(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InputTransformError, match=message):
        TargetInput(**fields)


def test_a_constant_of_exactly_the_limit_is_accepted() -> None:
    constant = '"' + "x" * (MAX_INPUT_LENGTH - 2) + '"'
    assert TargetInput(input=constant).input == constant


INVALID_TRANSFORMERS: list[tuple[Any, Any, str]] = [
    (paths_of(MAX_INPUT_PATHS + 1), '"x"', "101 entries; the limit is 100"),
    ({}, "", "1-8192 characters"),
    ({}, "x" * (MAX_TEMPLATE_LENGTH + 1), "1-8192 characters"),
    ({"a.b": "$.detail"}, '"x"', "must match"),
    ({"a b": "$.detail"}, '"x"', "must match"),
    ({"": "$.detail"}, '"x"', "1-256 characters"),
    ({"k" * 257: "$.detail"}, '"x"', "1-256 characters"),
    ({"aws.events.rule-name": "$.detail"}, '"x"', "reserved"),
    ({"v": "$['detail']"}, '"x"', "not a JSONPath EventBridge accepts"),
    ({"v": "detail"}, '"x"', "must start with"),
    ({"v": 5}, '"x"', "must be a JSONPath string"),
    (["$.detail"], '"x"', "must map names"),
    ({}, '"<nope>"', "invalid placeholder nope"),
    ({}, '"<>"', "invalid placeholder"),
    ({"k": "$.detail"}, '{<k>: "v"}', "cannot be used as an object key"),
    ({"k": "$.detail"}, '{"a": 1, "<k>": "v"}', "cannot be used as an object key"),
    ({"k": "$.detail"}, '{"a": {"b": [1, {"x<k>": 2}]}}', "cannot be used as an object key"),
]


@pytest.mark.parametrize(("paths", "template", "message"), INVALID_TRANSFORMERS)
def test_an_invalid_transformer_is_rejected(paths: Any, template: Any, message: str) -> None:
    with pytest.raises(InputTransformError, match=message):
        InputTransformer(paths, template)


def test_limits_themselves_are_accepted() -> None:
    transformer = InputTransformer(paths_of(MAX_INPUT_PATHS), "x" * MAX_TEMPLATE_LENGTH)
    assert len(transformer.input_paths) == MAX_INPUT_PATHS
    assert InputTransformer({"k" * 256: "$." + "a" * (MAX_PATH_LENGTH - 2)}, '"x"')


def test_input_transform_error_is_a_validation_exception() -> None:
    assert issubclass(InputTransformError, ValidationException)


def test_a_placeholder_in_an_object_value_string_is_not_a_key() -> None:
    rendered = transform(EC2_PATHS, '{"a": {"b": ["<state>", {"c": "x<state>"}]}}')
    assert json.loads(rendered) == {"a": {"b": ["RUNNING", {"c": "xRUNNING"}]}}


def test_compiled_paths_stay_out_of_equality_and_repr() -> None:
    first = TargetInput(input_transformer=InputTransformer(dict(EC2_PATHS), '"<state>"'))
    second = TargetInput(input_transformer=InputTransformer(dict(EC2_PATHS), '"<state>"'))
    assert first == second
    assert repr(first) == (
        f"TargetInput(input=None, input_path=None, input_transformer=InputTransformer("
        f"input_paths={EC2_PATHS!r}, input_template='\"<state>\"'))"
    )
    assert TargetInput(input_path="$.detail") == TargetInput(input_path="$.detail")


@pytest.mark.parametrize(
    "target",
    [
        TargetInput(),
        TargetInput(input='{"a": 1}'),
        TargetInput(input_path="$.detail"),
        TargetInput(input_transformer=InputTransformer(EC2_PATHS, '{"i": <instance>}')),
        TargetInput(input_transformer=InputTransformer({}, '"<aws.events.rule-name>"')),
    ],
)
def test_to_dict_round_trips_through_json(target: TargetInput) -> None:
    stored = json.loads(json.dumps(target.to_dict()))
    assert TargetInput.from_dict(stored | {"unknown": 1}) == target


def test_from_dict_validates_what_it_reads() -> None:
    with pytest.raises(InputTransformError, match="1-8192 characters"):
        TargetInput.from_dict({"input_transformer": {"input_paths": {}}})


# -- properties ------------------------------------------------------------------------------

PRINTABLE_WITHOUT_BREAKERS = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\<>')
)
STRING_TEMPLATE_TEXT = st.text(st.characters(exclude_characters="<>")).filter(
    lambda text: not text.lstrip().startswith(("{", "["))
)


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_string_placeholders_as_json_values_always_render_valid_json(values: list[str]) -> None:
    paths = {f"v{i}": f"$.detail.v{i}" for i in range(len(values))}
    event = EC2_EVENT | {"detail": {f"v{i}": value for i, value in enumerate(values)}}
    template = "{" + ", ".join(f'"k{i}": <v{i}>' for i in range(len(values))) + "}"
    assert rendered_json(paths, template, event) == {
        f"k{i}": value for i, value in enumerate(values)
    }


@given(st.text(), STRING_TEMPLATE_TEXT)
def test_a_string_template_inserts_a_string_value_as_it_is(value: str, around: str) -> None:
    event = EC2_EVENT | {"detail": {"v": value}}
    assert transform({"v": "$.detail.v"}, f"{around}<v>{around}", event) == around + value + around


@given(PRINTABLE_WITHOUT_BREAKERS, PRINTABLE_WITHOUT_BREAKERS)
def test_plain_strings_inside_a_json_string_render_valid_json(value: str, prefix: str) -> None:
    event = EC2_EVENT | {"detail": {"v": value}}
    rendered = rendered_json({"v": "$.detail.v"}, f'{{"text": "{prefix}<v>"}}', event)
    assert rendered == {"text": prefix + value}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(JSON_VALUES)
def test_any_value_as_a_json_value_or_input_path_round_trips(value: Any) -> None:
    event = EC2_EVENT | {"detail": {"v": value}}
    assert rendered_json({"v": "$.detail.v"}, '{"v": <v>}', event) == {"v": value}
    assert json.loads(TargetInput(input_path="$.detail.v").render(event, **RULE)) == value


def test_the_event_variable_carries_the_ingestion_time_and_the_full_one_the_event_time() -> None:
    # AWS's recording shows <aws.events.event>'s `time` differing from the event's own time.
    rendered = rendered_json({}, '{"e": <aws.events.event>, "j": <aws.events.event.json>}')
    assert rendered["e"]["time"] == RULE["ingestion_time"]
    assert rendered["j"]["time"] == EC2_EVENT["time"]
    assert "detail" not in rendered["e"]


def test_the_event_variable_in_a_string_template_is_its_json_verbatim() -> None:
    assert transform({}, "event: <aws.events.event.json>") == "event: " + json.dumps(
        EC2_EVENT, separators=(",", ":")
    )
