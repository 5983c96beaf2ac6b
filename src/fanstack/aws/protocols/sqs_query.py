"""SQS's former query protocol, for SDKs that predate its JSON protocol (AWS still serves both).

botocore now ships SQS's model for JSON only, which kept the query protocol's `flattened` traits
but not its query names. Those follow one pattern, restored here as data: a flattened list is
named after its singular member (`QueueUrl.1`, `SendMessageBatchRequestEntry.1.Id`), a map
member after its singular entry (`Attribute.1.Name` / `.Value`, `Tag.1.Key`), and responses
use SQS's XML namespace. The result is a query-protocol view of the same current model.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from botocore.model import ServiceModel

from fanstack.aws.protocols.models import service_description

XML_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
LIST_MEMBER_NAMES = {
    "AWSAccountIdList": "AWSAccountId",
    "ActionNameList": "ActionName",
    "AttributeNameList": "AttributeName",
    "MessageSystemAttributeList": "AttributeName",
    "MessageAttributeNameList": "MessageAttributeName",
    "MessageList": "Message",
    "QueueUrlList": "QueueUrl",
    "StringList": "StringListValue",
    "BinaryList": "BinaryListValue",
    "TagKeyList": "TagKey",
    "BatchResultErrorEntryList": "BatchResultErrorEntry",
    "SendMessageBatchRequestEntryList": "SendMessageBatchRequestEntry",
    "SendMessageBatchResultEntryList": "SendMessageBatchResultEntry",
    "DeleteMessageBatchRequestEntryList": "DeleteMessageBatchRequestEntry",
    "DeleteMessageBatchResultEntryList": "DeleteMessageBatchResultEntry",
    "ChangeMessageVisibilityBatchRequestEntryList": "ChangeMessageVisibilityBatchRequestEntry",
    "ChangeMessageVisibilityBatchResultEntryList": "ChangeMessageVisibilityBatchResultEntry",
    "ListMessageMoveTasksResultEntryList": "ListMessageMoveTasksResultEntry",
}
# A map member's query name, and its entries' key and value names, by the map's shape.
MAP_NAMES = {
    "QueueAttributeMap": ("Attribute", "Name", "Value"),
    "MessageSystemAttributeMap": ("Attribute", "Name", "Value"),
    "MessageBodyAttributeMap": ("MessageAttribute", "Name", "Value"),
    "MessageBodySystemAttributeMap": ("MessageSystemAttribute", "Name", "Value"),
    "TagMap": ("Tag", "Key", "Value"),
}


@cache
def sqs_query_model() -> ServiceModel:
    """SQS's current model as its query protocol names things."""
    description = service_description("sqs")
    description["metadata"].update(
        protocol="query", protocols=["query"], xmlNamespace=XML_NAMESPACE
    )
    shapes: dict[str, dict[str, Any]] = description["shapes"]
    for name, member_name in LIST_MEMBER_NAMES.items():
        shapes[name]["flattened"] = True
        shapes[name]["member"]["locationName"] = member_name
    for name, (_, key_name, value_name) in MAP_NAMES.items():
        shapes[name]["key"]["locationName"] = key_name
        shapes[name]["value"]["locationName"] = value_name
    for shape in shapes.values():
        for member in shape.get("members", {}).values():
            if member["shape"] in MAP_NAMES:
                member["locationName"] = MAP_NAMES[member["shape"]][0]
    return ServiceModel(description, service_name="sqs")
