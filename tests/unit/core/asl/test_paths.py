"""JSONPath data processing: AWS's documented examples, the spec's, runtime errors, properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanstack.core.asl.data import MAX_PAYLOAD_BYTES, AslError, check_size
from fanstack.core.asl.paths import (
    check_path,
    put_result,
    select,
    select_with_context,
)
from fanstack.core.asl.templates import check_template, render_template

# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-example.html
# ("InputPath, ResultPath and OutputPath Example": the Lambda returns "Hello, <who>!")
HELLO_INPUT = {
    "comment": "An input comment.",
    "data": {"val1": 23, "val2": 17},
    "extra": "foo",
    "lambda": {"who": "AWS Step Functions"},
}


def test_classic_example_inputpath_resultpath_outputpath() -> None:
    task_input = select(HELLO_INPUT, "$.lambda")
    assert task_input == {"who": "AWS Step Functions"}
    combined = put_result(HELLO_INPUT, "$.data.lambdaresult", f"Hello, {task_input['who']}!")
    assert combined["data"] == {
        "val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"
    }
    assert combined["extra"] == "foo"
    assert select(combined, "$.data") == {
        "val1": 23, "val2": 17, "lambdaresult": "Hello, AWS Step Functions!"
    }
    assert "lambdaresult" not in HELLO_INPUT["data"]  # the input is not modified


# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html
RESULTPATH_INPUT = {
    "comment": "This is a test of the input and output of a Task state.",
    "details": "Default example",
    "who": "AWS Step Functions",
}
RESULT = "Hello, AWS Step Functions!"


def test_resultpath_dollar_replaces_the_input_with_the_result() -> None:
    assert put_result(RESULTPATH_INPUT, "$", RESULT) == RESULT


def test_resultpath_adds_a_field_with_the_result() -> None:
    assert put_result(RESULTPATH_INPUT, "$.taskresult", RESULT) == {
        **RESULTPATH_INPUT, "taskresult": RESULT
    }


def test_resultpath_creates_intervening_objects() -> None:
    assert put_result(RESULTPATH_INPUT, "$.strings.lambdaresult", RESULT) == {
        **RESULTPATH_INPUT, "strings": {"lambdaresult": RESULT}
    }


def test_resultpath_null_discards_the_result() -> None:
    assert put_result(RESULTPATH_INPUT, None, RESULT) is RESULTPATH_INPUT


# https://states-language.net/spec.html ("Input and Output Processing with JSONPath")
def test_spec_resultpath_overwrites_an_existing_field() -> None:
    raw = {"master": {"detail": [1, 2, 3]}}
    assert put_result(raw, "$.master.detail", 6) == {"master": {"detail": 6}}
    assert put_result(raw, "$.master.result.sum", 6) == {
        "master": {"detail": [1, 2, 3], "result": {"sum": 6}}
    }
    assert put_result({"a": 1}, "$.b.greeting", "Hi!") == {"a": 1, "b": {"greeting": "Hi!"}}


def test_spec_resultpath_on_a_string_input_is_a_match_failure() -> None:
    with pytest.raises(AslError) as caught:
        put_result("foo", "$.x", 1)
    assert caught.value.error == "States.ResultPathMatchFailure"


@pytest.mark.parametrize(
    ("document", "path"),
    [({"a": 1}, "$.a.b"), ({"a": None}, "$.a.b"), ({"a": [1]}, "$.a[3]"), ({"a": {}}, "$.a[0]")],
)
def test_resultpath_into_a_non_object_is_a_match_failure(document: Any, path: str) -> None:
    with pytest.raises(AslError) as caught:
        put_result(document, path, 1)
    assert caught.value.error == "States.ResultPathMatchFailure"
    assert path in caught.value.cause


def test_resultpath_replaces_an_existing_array_item() -> None:
    assert put_result({"a": [1, 2, 3]}, "$.a[1]", "x") == {"a": [1, "x", 3]}


def test_spec_inputpath_and_outputpath_select_the_sum() -> None:
    raw = {"title": "Numbers to add", "numbers": {"val1": 3, "val2": 4}}
    assert select(raw, "$.numbers") == {"val1": 3, "val2": 4}
    output = put_result(raw, "$.sum", 7)
    assert output == {**raw, "sum": 7}
    assert select(output, "$.sum") == 7


# https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html
REFERENCE_INPUT = {"foo": 123, "bar": ["a", "b", "c"], "car": {"cdr": True}}


@pytest.mark.parametrize(
    ("path", "value"),
    [("$.foo", 123), ("$.bar", ["a", "b", "c"]), ("$.car.cdr", True), ("$", REFERENCE_INPUT)],
)
def test_reference_paths_of_the_docs(path: str, value: Any) -> None:
    check_path(path, field="ResultPath", reference=True)
    assert select(REFERENCE_INPUT, path) == value


def test_a_slice_yields_a_list_of_values() -> None:
    assert select({"a": [1, 2, 3, 4]}, "$.a[0:2]") == [1, 2]
    assert select({"a": [1, 2, 3, 4]}, "$.a[0,1]") == [1, 2]


def test_inputpath_null_gives_an_empty_object() -> None:
    assert select({"a": 1}, None) == {}


def test_indefinite_paths_without_a_match_give_an_empty_list() -> None:
    assert select({"a": []}, "$.a[*]") == []
    assert select({"a": [1]}, "$.a[5:]") == []
    assert select({"a": [{"b": 1}]}, "$.a[?(@.b > 1)]") == []
    assert select({}, "$..missing") == []


def test_a_definite_path_without_a_match_is_a_runtime_error() -> None:
    with pytest.raises(AslError) as caught:
        select({"a": 1}, "$.b")
    assert caught.value.error == "States.Runtime"
    assert "'$.b'" in caught.value.cause and '{"a":1}' in caught.value.cause


@pytest.mark.parametrize("path", ["$.a.b", "$.a[0]", "$.list.name", "$.list[3]"])
def test_a_definite_path_through_the_wrong_type_is_a_runtime_error(path: str) -> None:
    with pytest.raises(AslError) as caught:
        select({"a": 1, "list": [1]}, path)
    assert caught.value.error == "States.Runtime"


def test_filters_wildcards_and_descendants() -> None:
    store = {"book": [{"title": "A", "price": 8}, {"title": "B", "price": 22}]}
    assert select(store, "$.book[?(@.price < 10)].title") == ["A"]
    assert select(store, "$.book[*].price") == [8, 22]
    assert select(store, "$..title") == ["A", "B"]
    assert select(store, "$.book[-1].title") == "B"


# https://states-language.net/spec.html ("Reference Paths": acceptable syntax)
@pytest.mark.parametrize(
    ("path", "document", "value"),
    [
        ("$.store\\.book", {"store.book": 1}, 1),
        ("$.\\stor\\e.boo\\k", {"store": {"book": 2}}, 2),
        ("$.foo.\\.bar", {"foo": {".bar": 3}}, 3),
        ("$.foo\\@bar.baz\\[\\[.\\?pretty", {"foo@bar": {"baz[[": {"?pretty": 4}}}, 4),
        ("$.&Ж中.\U00010346", {"&Ж中": {"\U00010346": 5}}, 5),
        ("$.ledgers.branch[0].pending.count", {"ledgers": {"branch": [{"pending": {"count": 6}}]}},
         6),
        ("$.ledgers[0][1][0].foo", {"ledgers": [[0, [{"foo": 7}]]]}, 7),
        ("$['store']['book']", {"store": {"book": 8}}, 8),
        ("$['store'][0]['book']", {"store": [{"book": 9}]}, 9),
        ("$.abc.['def ghi']", {"abc": {"def ghi": 10}}, 10),
    ],
)
def test_spec_reference_path_syntax(path: str, document: Any, value: Any) -> None:
    check_path(path, field="ResultPath", reference=True)
    assert select(document, path) == value
    assert put_result(document, path, "new") != document


@pytest.mark.parametrize(
    "path", ["$.a[*]", "$..a", "$.a[0:1]", "$.a[0,1]", "$.a[?(@.b)]", "$.*", "$.a.length()"]
)
def test_wildcards_and_filters_are_not_reference_paths(path: str) -> None:
    with pytest.raises(ValueError, match="ResultPath"):
        check_path(path, field="ResultPath", reference=True)


@pytest.mark.parametrize("path", ["a.b", "", "$.a b", "$.[", "$$$", "$.a[?(@.b ==]"])
def test_invalid_paths_are_refused_naming_the_field(path: str) -> None:
    with pytest.raises(ValueError, match="InputPath"):
        check_path(path, field="InputPath")


def test_resultpath_cannot_write_to_the_context_object() -> None:
    with pytest.raises(AslError) as caught:
        put_result({}, "$$.Execution", 1)
    assert caught.value.error == "States.ResultPathMatchFailure"


# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-contextobject.html
CONTEXT = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:stateMachineName:executionName",
        "Input": {"key": "value"},
        "Name": "executionName",
        "StartTime": "2019-03-26T20:14:13.192Z",
    },
    "State": {"EnteredTime": "2019-03-26T20:14:13.192Z", "Name": "Test", "RetryCount": 3},
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:name"},
    "Map": {"Item": {"Index": 0, "Value": "x"}},
}


def test_context_object_paths_read_the_context() -> None:
    assert select_with_context({}, CONTEXT, "$$.Execution.Name") == "executionName"
    assert select_with_context({}, CONTEXT, "$$.State.RetryCount") == 3
    assert select_with_context({}, CONTEXT, "$$.Map.Item.Value") == "x"
    assert select_with_context({}, CONTEXT, "$$") == CONTEXT
    assert select_with_context({"Execution": 1}, CONTEXT, "$.Execution") == 1


def test_a_missing_context_field_is_a_runtime_error() -> None:
    with pytest.raises(AslError) as caught:
        select_with_context({}, CONTEXT, "$$.Task.Token")
    assert caught.value.error == "States.Runtime" and "context object" in caught.value.cause


# https://docs.aws.amazon.com/step-functions/latest/dg/input-output-inputpath-params.html
PRODUCT_INPUT = {
    "comment": "Example for Parameters.",
    "product": {
        "details": {"color": "blue", "size": "small", "material": "cotton"},
        "availability": "in stock",
        "sku": "2317",
        "cost": "$23",
    },
}


def test_parameters_key_value_pairs_of_the_docs() -> None:
    template = {
        "comment": "Selecting what I care about.",
        "MyDetails": {
            "size.$": "$.product.details.size",
            "exists.$": "$.product.availability",
            "StaticValue": "foo",
        },
    }
    check_template(template, field="Parameters")
    assert render_template(template, PRODUCT_INPUT, {}) == {
        "comment": "Selecting what I care about.",
        "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"},
    }


def test_parameters_read_the_context_object() -> None:
    template = {"Execution.$": "$$.Execution.Id", "Name.$": "$$.State.Name"}
    assert render_template(template, {}, CONTEXT) == {
        "Execution": CONTEXT["Execution"]["Id"], "Name": "Test"
    }


def test_resultselector_of_the_docs_reshapes_the_result() -> None:
    result = {
        "resourceType": "elasticmapreduce",
        "resource": "createCluster.sync",
        "output": {"SdkHttpMetadata": {"HttpStatusCode": 200}, "ClusterId": "AKIAIOSFODNN7EXAMPLE"},
    }
    selector = {"ClusterId.$": "$.output.ClusterId", "ResourceType.$": "$.resourceType"}
    assert render_template(selector, result, {}) == {
        "ClusterId": "AKIAIOSFODNN7EXAMPLE", "ResourceType": "elasticmapreduce"
    }


def test_resultselector_flattens_an_array_of_arrays() -> None:
    parallel_output = [[{"a": 1}, {"a": 2}], [{"a": 3}]]
    assert render_template({"flat.$": "$[*][*]"}, parallel_output, {}) == {
        "flat": [{"a": 1}, {"a": 2}, {"a": 3}]
    }


# https://states-language.net/spec.html ("Payload Template")
def test_spec_payload_template_example() -> None:
    template = {
        "flagged": True,
        "parts": {"first.$": "$.vals[0]", "last3.$": "$.vals[-3:]"},
        "weekday.$": "$$.DayOfWeek",
        "formattedOutput.$": "States.Format('Today is {}', $$.DayOfWeek)",
    }
    check_template(template, field="Parameters")
    payload = render_template(template, {"flagged": 7, "vals": [0, 10, 20, 30, 40, 50]},
                              {"DayOfWeek": "TUESDAY"})
    assert payload == {
        "flagged": True,
        "parts": {"first": 0, "last3": [30, 40, 50]},
        "weekday": "TUESDAY",
        "formattedOutput": "Today is TUESDAY",
    }


def test_templates_render_inside_arrays_and_leave_plain_strings() -> None:
    template = [{"a.$": "$.x"}, "$.x", {"b": ["$.x", {"c.$": "States.Array($.x)"}]}]
    assert render_template(template, {"x": 1}, {}) == [{"a": 1}, "$.x", {"b": ["$.x", {"c": [1]}]}]


def test_a_template_path_that_selects_nothing_is_a_runtime_error() -> None:
    with pytest.raises(AslError) as caught:
        render_template({"a.$": "$.missing"}, {}, {})
    assert caught.value.error == "States.Runtime"


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ({"a.$": 3}, "Parameters.a.$"),
        ({"x": {"a.$": "not a path"}}, "Parameters.x.a.$"),
        ({"a.$": "States.Nope(1)"}, "Parameters.a.$"),
        ({"a.$": "States.Format('{}')"}, "Parameters.a.$"),
        ({"l": [{"a.$": "$.["}]}, "Parameters.l[0].a.$"),
        ({"a": 1, "a.$": "$.a"}, "'a.$'"),
    ],
)
def test_check_template_names_the_offending_key(template: Any, named: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_template(template, field="Parameters")
    assert named in str(caught.value)


def test_check_size_refuses_more_than_256_kib() -> None:
    check_size("x" * (MAX_PAYLOAD_BYTES - 2), "state 'A'")
    with pytest.raises(AslError) as caught:
        check_size("x" * (MAX_PAYLOAD_BYTES - 1), "state 'A'")
    assert caught.value.error == "States.DataLimitExceeded"
    assert "state 'A'" in caught.value.cause and str(MAX_PAYLOAD_BYTES) in caught.value.cause


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
NAMES = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4)


def _reference(names: list[str]) -> str:
    quoted = (name.replace("\\", "\\\\").replace("'", "\\'") for name in names)
    return "$" + "".join(f"['{name}']" for name in quoted)


@given(document=st.dictionaries(st.text(max_size=3), JSON, max_size=3), names=NAMES, result=JSON)
def test_put_result_then_select_at_the_same_path_gives_the_result(
    document: dict[str, Any], names: list[str], result: Any
) -> None:
    path = _reference(names)
    try:
        placed = put_result(document, path, result)
    except AslError as exc:  # the path walked into a non-object of the document
        assert exc.error == "States.ResultPathMatchFailure"
        return
    assert select(placed, path) == result


@given(names=NAMES)
def test_dotted_and_bracketed_reference_paths_agree(names: list[str]) -> None:
    document = put_result({}, _reference(names), 1)
    escaped = "".join("." + "".join("\\" + char for char in name) for name in names)
    assert select(document, "$" + escaped) == 1
