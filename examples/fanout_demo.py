"""A small fan-out demo: one topic, three queues (one filtered), a DLQ, state on disk.

Run it twice: messages published but not yet consumed in the first run are still there in the
second, because every publish is durable before it returns.
"""

from __future__ import annotations

import json
import random
import sys

from fanstack import App

app = App("fanout-demo", data_dir=sys.argv[1] if len(sys.argv) > 1 else ".fanstack")
orders = app.topic("orders")
failed = app.queue("billing-dlq")
billing = app.queue("billing", visibility_timeout=5, max_receive_count=2, dead_letter=failed)
shipping = app.queue("shipping")
compliance = app.queue("compliance")
orders.subscribe(billing, raw=True)
orders.subscribe(shipping)  # enveloped: the SNS Notification JSON
orders.subscribe(compliance, filter_policy={"market": ["ru"]}, raw=True)


def main() -> None:
    """Publish a few orders, then consume each queue and show where they went."""
    markets = ["eu", "us", "ru"]
    for number in range(1, 10):
        order = {"order_id": f"o-{number}", "total": round(random.uniform(5, 500), 2)}
        if number == 7:
            order["total"] = "not a number"  # billing fails on it twice -> DLQ
        orders.publish(order, attributes={"market": markets[number % 3], "total": 1})

    for queue in (billing, shipping, compliance):
        seen = []
        while batch := queue.receive(max_messages=10):
            for message in batch:
                body = json.loads(message.body)
                if "Message" in body:  # enveloped delivery
                    body = json.loads(body["Message"])
                if queue is billing and not isinstance(body["total"], float):
                    queue.change_visibility(message.receipt_handle, 0)  # fail: retry now
                    continue
                seen.append(body["order_id"])
                queue.delete(message.receipt_handle)
        print(f"{queue.name:>10}: {len(seen)} order(s) {', '.join(sorted(seen))}")
    for dead in failed.receive(max_messages=10, visibility_timeout=0):
        print(f"{failed.name:>10}: {json.loads(dead.body)['order_id']} ({dead.failure})")
    print(
        json.dumps({q.name: q.stats().to_dict() for q in (billing, shipping, compliance)}, indent=1)
    )


if __name__ == "__main__":
    main()
