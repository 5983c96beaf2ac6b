"""Topic publishing with 1 subscription beside 200, nearly all filtered out by their policies.

The 200 subscriptions of a topic (SNS's limit of filter policies per topic) are one that
matches every event, `{"market": ["eu"]}`, and 199 that never do: mostly exact values
(`{"market": ["m0"]}`...), some prefixes on another attribute, some exact values ANDed with a
numeric range, and some numeric ranges alone, which no lookup finds and so are tested on every
event (the message carries their attribute). Each event carries `market`, `shop` and a Number
`total`, with a ~300-byte JSON body; each publish delivers to the one matching queue (raw).

Part 1: events/s published through an `App` on the embedded store in a temp data dir, in
batches of 10, with the matching subscription alone and with all 200 (median of `--rounds`,
default 3, the two alternating which goes first). Part 2, pure CPU: `plan_publication` alone,
the same two ways, beside the matching step by itself, through the topic's `FilterIndex` and by
testing every policy in turn as fan-out did before the index (best of interleaved rounds).
The ceiling is the 1-subscription figure: `ratio` = cost with 200 / cost with 1, and the goal
is at most 3 through the App. Prints one JSON line; a publish that fails or delivers other than
to the matching queue alone, or index and every-policy matching that disagree, fails the run
instead (exit 1, the reason on stderr).

    .venv/bin/python benchmarks/filter_index.py --events 5000
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from fanstack import App
from fanstack.core.fanout import Route, index_routes, make_route, plan_publication
from fanstack.core.message import MessageAttribute, to_attributes
from fanstack.core.specs import QueueSpec, SubscriptionSpec, TopicSpec

SUBSCRIPTIONS = 200
BATCH = 10
ROUNDS = 10
MATCHING = {"market": ["eu"]}

Event = tuple[dict[str, Any], str]
"""The attributes (plain values) and the JSON body of one publish."""


def fail(text: str) -> NoReturn:
    raise SystemExit(f"filter_index: FAILED: {text}")


def policies(count: int) -> list[dict[str, Any]]:
    """The matching policy, then `count - 1` that match no event, in a fixed mix."""
    found = [MATCHING]
    for n in range(count - 1):
        shape = n % 10
        if shape < 7:
            found.append({"market": [f"m{n}"]})
        elif shape == 7:
            found.append({"shop": [{"prefix": f"shop-{n}-"}]})
        elif shape == 8:
            found.append({"market": [f"m{n}"], "total": [{"numeric": [">", 1000]}]})
        else:
            found.append({"total": [{"numeric": [">=", 10_000 + n]}]})
    return found


def make_events(count: int) -> list[Event]:
    """Events every one of which only the first policy matches."""
    return [
        (
            {"market": "eu", "shop": f"web-{n % 7}", "total": 150.5 + n % 50},
            json.dumps({"order_id": f"o-{n}", "total": 150.5 + n % 50, "note": "x" * 240}),
        )
        for n in range(count)
    ]


def publish_rate(subscriptions: int, events: list[Event], data_dir: Path) -> float:
    """Events/s through an App whose topic has the first `subscriptions` policies."""
    app = App("bench", data_dir=data_dir)
    topic = app.topic("orders")
    for n, policy in enumerate(policies(subscriptions)):
        topic.subscribe(app.queue(f"q{n}"), filter_policy=policy, raw=True)
    app.backend  # noqa: B018 - open and provision outside the timed part
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        entries = [
            {"id": str(n), "body": body, "attributes": attributes}
            for n, (attributes, body) in enumerate(events[start : start + BATCH])
        ]
        result = topic.publish_batch(entries)
        if not result.ok:
            fail(f"publish_batch failed with {subscriptions} subscriptions: {result.failed}")
    elapsed = time.perf_counter() - started
    check_deliveries(app, subscriptions, len(events))
    app.close()
    return len(events) / elapsed


def check_deliveries(app: App, subscriptions: int, events: int) -> None:
    """Fail unless queue q0 (the matching policy's) holds every event and no other queue any."""
    depths = {}
    for n in range(subscriptions):
        stats = app.queues[f"q{n}"].stats()
        depths[f"q{n}"] = stats.visible + stats.in_flight + stats.delayed
    wrong = {
        name: depth for name, depth in depths.items() if depth != (events if name == "q0" else 0)
    }
    if wrong:
        fail(f"{events} events published to {subscriptions} subscriptions; queue depths: {wrong}")


def app_figures(events: list[Event], rounds: int) -> dict[str, float]:
    """Median events/s with 1 and with 200 subscriptions, and the cost ratio."""
    rates: dict[int, list[float]] = {1: [], SUBSCRIPTIONS: []}
    for round_number in range(rounds):
        order = [1, SUBSCRIPTIONS] if round_number % 2 else [SUBSCRIPTIONS, 1]
        with tempfile.TemporaryDirectory() as tmp:
            for count in order:
                rates[count].append(publish_rate(count, events, Path(tmp) / str(count)))
    one, many = statistics.median(rates[1]), statistics.median(rates[SUBSCRIPTIONS])
    return {
        "events_per_s_1": round(one),
        f"events_per_s_{SUBSCRIPTIONS}": round(many),
        "ratio": round(one / many, 2),
    }


def routes(count: int) -> list[Route]:
    """The first `count` subscriptions compiled, as a backend hands them to fan-out."""
    return [
        make_route(
            SubscriptionSpec(
                topic="orders", queue=f"q{n}", filter_policy=json.dumps(policy), raw=True
            ),
            QueueSpec(name=f"q{n}"),
        )
        for n, policy in enumerate(policies(count))
    ]


def planner(count: int) -> Callable[[dict[str, MessageAttribute], str], object]:
    """`plan_publication` for one event, over the topic's routes indexed once."""
    topic = TopicSpec(name="orders")
    index = index_routes(routes(count))

    def plan(attributes: dict[str, MessageAttribute], body: str) -> object:
        publication = plan_publication(
            topic, index, message_id="m", body=body, attributes=attributes, now=0.0
        )
        if len(publication.deliveries) != 1:
            fail(f"plan_publication over {count} routes: {len(publication.deliveries)} deliveries")
        return publication

    return plan


def matchers(count: int) -> dict[str, Callable[[dict[str, MessageAttribute], str], list[Route]]]:
    """The matching step alone: through the index, and testing every policy in turn."""
    compiled = routes(count)
    index = index_routes(compiled)

    def indexed(attributes: dict[str, MessageAttribute], body: str) -> list[Route]:
        return index.matching(attributes=attributes, body=body)

    def each(attributes: dict[str, MessageAttribute], body: str) -> list[Route]:
        return [
            route
            for route in compiled
            if route.policy is None or route.policy.matches(attributes=attributes, body=body)
        ]

    return {f"match_index_{count}": indexed, f"match_each_{count}": each}


def cpu_figures(events: list[Event], seconds: float) -> dict[str, float]:
    """Best events/s of each CPU-only contender over interleaved rounds, and the plan ratio."""
    prepared = [(to_attributes(attributes), body) for attributes, body in events[:500]]
    matching = matchers(SUBSCRIPTIONS)
    for attributes, body in prepared:
        found = [match(attributes, body) for match in matching.values()]
        if found[0] != found[1] or len(found[0]) != 1:
            fail(f"the index and every policy in turn found {found} for {attributes}")
    contenders = {
        "plan_1": planner(1),
        f"plan_{SUBSCRIPTIONS}": planner(SUBSCRIPTIONS),
        **matching,
    }
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(ROUNDS):
        for name, contender in contenders.items():
            done = 0
            started = time.perf_counter()
            while time.perf_counter() < started + seconds / ROUNDS:
                for attributes, body in prepared:
                    contender(attributes, body)
                done += len(prepared)
            best[name] = max(best[name], done / (time.perf_counter() - started))
    figures: dict[str, float] = {f"{name}_per_s": round(rate) for name, rate in best.items()}
    figures["plan_ratio"] = round(best["plan_1"] / best[f"plan_{SUBSCRIPTIONS}"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per App run")
    parser.add_argument("--rounds", type=int, default=3, help="App runs per side (median)")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU time per contender")
    args = parser.parse_args()
    if args.events < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error("--events and --rounds must be at least 1, --seconds above 0")
    events = make_events(args.events)
    print(
        json.dumps(
            {
                "benchmark": "filter_index",
                "subscriptions": SUBSCRIPTIONS,
                "app": app_figures(events, args.rounds),
                "cpu": cpu_figures(events, args.seconds),
                "goal": "app ratio <= 3",
            }
        )
    )


if __name__ == "__main__":
    main()
