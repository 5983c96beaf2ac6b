"""SNS subscriptions to endpoints that are not queues: functions (`lambda`) and URLs (`http(s)`).

Fan-out stores publications only into queues, so each such subscription is an internal queue
subscribed to its topic plus a record naming the endpoint (`subscriptions.py`); the worker
role's delivery service (`delivery.py`) empties the queues into the endpoints (`endpoints.py`)
with SNS's documents (`messages.py`), retrying by the subscription's policy
(`delivery_policy.py`) and dead-lettering to its RedrivePolicy queue.
"""

from fanstack.notifications.delivery import EndpointDeliveries, EndpointNotifications
from fanstack.notifications.delivery_policy import DeliveryPolicy, parse_delivery_policy
from fanstack.notifications.subscriptions import (
    EndpointSubscription,
    EndpointSubscriptions,
    is_internal_queue,
)

__all__ = [
    "DeliveryPolicy",
    "EndpointDeliveries",
    "EndpointNotifications",
    "EndpointSubscription",
    "EndpointSubscriptions",
    "is_internal_queue",
    "parse_delivery_policy",
]
