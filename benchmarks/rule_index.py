"""Rule matching throughput: one event against 10, 100, 1,000 and 10,000 event-bus rules.

The rules are a realistic mix over `--services` services (200; each rule names one): exact
`source` and `detail-type`, `prefix` on a region, `numeric` ranges on an amount, `anything-but` on
a status, `equals-ignore-case`, and a few `$or`s. Events come from the same services. For each
size it prints events/s through `RuleIndex.matching` beside the same-run baseline of
`EventPattern.matches` on every rule, the time to build the index, and the mean matches per event
(both ways must agree); fewer services make more rules match each event, which costs any index.
The project's goal: at 1,000 rules, at least half the events/s of 10 rules. Prints one JSON line;
if the index and the baseline disagree on an event's matches, the run fails instead (exit 1, the
reason on stderr).

    python benchmarks/rule_index.py --seconds 2
    python benchmarks/rule_index.py --services 40
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any, NoReturn

from fanstack.core.event_pattern import EventPattern
from fanstack.core.rule_index import RuleIndex

SIZES = (10, 100, 1_000, 10_000)
ROUNDS = 10

Contender = tuple[Callable[[dict[str, Any]], object], list[dict[str, Any]]]
"""A way to match one event, and the events to time it on."""

DOMAINS = ("shop", "billing", "shipping", "identity", "catalog")
ACTIONS = ("Created", "Updated", "Deleted", "Approved", "Rejected", "Shipped", "Refunded", "Paid")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-south-1")
STATUSES = ("new", "active", "cancelled", "failed", "done")
TIERS = ("basic", "silver", "gold", "platinum")


def fail(text: str) -> NoReturn:
    raise SystemExit(f"rule_index: FAILED: {text}")


def service_names(count: int) -> tuple[str, ...]:
    """`count` event sources, spread over a few domains."""
    return tuple(f"com.example.{DOMAINS[i % len(DOMAINS)]}.svc{i}" for i in range(count))


def detail_type(service: str, action: str) -> str:
    domain, name = service.split(".")[2:]
    return f"{domain.title()}{name[3:]} {action}"


def make_rule(rng: random.Random, services: tuple[str, ...], number: int) -> dict[str, Any]:
    """One rule, its shape chosen by `number` so each size holds the same mix."""
    service = rng.choice(services)
    kind = detail_type(service, rng.choice(ACTIONS))
    low = rng.randrange(0, 900)
    shape = number % 10
    if shape in (0, 1, 2, 3):
        return {"source": [service], "detail-type": [kind]}
    if shape == 4:
        region = {"prefix": rng.choice(("eu-", "us-"))}
        return {"source": [service], "detail": {"region": [region]}}
    if shape == 5:
        amount = {"numeric": [">=", low, "<", low + 50]}
        return {"detail-type": [kind], "detail": {"amount": [amount]}}
    if shape == 6:
        status = {"anything-but": ["cancelled", "failed"]}
        return {"source": [service], "detail": {"status": [status]}}
    if shape == 7:
        return {
            "source": [service],
            "$or": [{"detail-type": [kind]}, {"detail": {"priority": ["high"]}}],
        }
    if shape == 8:
        return {
            "detail-type": [{"equals-ignore-case": kind.upper()}],
            "detail": {"amount": [{"numeric": [">", low]}]},
        }
    return {"source": [service], "detail": {"customer": {"tier": list(rng.sample(TIERS, 2))}}}


def make_event(rng: random.Random, services: tuple[str, ...]) -> dict[str, Any]:
    """One PutEvents-shaped event of a random service."""
    service = rng.choice(services)
    return {
        "version": "0",
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "detail-type": detail_type(service, rng.choice(ACTIONS)),
        "source": service,
        "account": "123456789012",
        "time": "2026-03-01T12:00:00Z",
        "region": "eu-west-1",
        "resources": [f"arn:aws:shop:eu-west-1:123456789012:order/{rng.randrange(10**6)}"],
        "detail": {
            "region": rng.choice(REGIONS),
            "amount": round(rng.uniform(0, 1000), 2),
            "status": rng.choice(STATUSES),
            "priority": rng.choice(("low", "normal", "high")),
            "customer": {"id": f"c-{rng.randrange(10**5)}", "tier": rng.choice(TIERS)},
            "items": [{"sku": f"SKU-{rng.randrange(500)}", "qty": rng.randrange(1, 5)}],
        },
    }


def rate(contender: Contender, seconds: float) -> float:
    """Events per second through a contender, cycling over its events for about `seconds`."""
    match, events = contender
    done = 0
    started = time.perf_counter()
    while time.perf_counter() < started + seconds:
        for event in events:
            match(event)
        done += len(events)
    return done / (time.perf_counter() - started)


def best_rates(runs: dict[str, Contender], seconds: float) -> dict[str, int]:
    """Each contender's best rate over ROUNDS interleaved rounds, so load spikes hit them all."""
    best = dict.fromkeys(runs, 0.0)
    for _ in range(ROUNDS):
        for name, contender in runs.items():
            best[name] = max(best[name], rate(contender, seconds / ROUNDS))
    return {name: round(value) for name, value in best.items()}


def contenders(
    size: int, patterns: list[EventPattern], events: list[dict[str, Any]]
) -> tuple[dict[str, Contender], dict[str, float]]:
    """The index and the baseline over the first `size` rules, with build time and matches."""
    rules = list(enumerate(patterns[:size]))
    started = time.perf_counter()
    index = RuleIndex(rules)
    build_ms = (time.perf_counter() - started) * 1000

    def baseline(event: dict[str, Any]) -> list[int]:
        return [key for key, pattern in rules if pattern.matches(event)]

    sample = events[: max(5, 5000 // size)]
    for event in sample:
        if (found := index.matching(event)) != (expected := baseline(event)):
            fail(f"{size} rules: the index found {found}, the baseline {expected}, for {event}")
    runs: dict[str, Contender] = {
        f"index_{size}": (index.matching, events),
        f"baseline_{size}": (baseline, sample),
    }
    facts = {"build_ms": round(build_ms, 1), "matches_per_event": _mean_matches(index, events)}
    return runs, facts


def _mean_matches(index: RuleIndex[int], events: list[dict[str, Any]]) -> float:
    return round(sum(len(index.matching(event)) for event in events) / len(events), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per contender")
    parser.add_argument("--services", type=int, default=200, help="distinct event sources")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.seconds <= 0 or args.services < 1:
        parser.error("--seconds must be above 0 and --services at least 1")
    rng = random.Random(args.seed)
    services = service_names(args.services)
    patterns = [EventPattern.parse(make_rule(rng, services, n)) for n in range(max(SIZES))]
    events = [make_event(rng, services) for _ in range(500)]
    runs: dict[str, Contender] = {}
    results: dict[str, dict[str, float]] = {}
    for size in SIZES:
        size_runs, results[str(size)] = contenders(size, patterns, events)
        runs.update(size_runs)
    rates = best_rates(runs, args.seconds)
    for size in SIZES:
        results[str(size)] = {
            "index_events_per_s": rates[f"index_{size}"],
            "baseline_events_per_s": rates[f"baseline_{size}"],
            **results[str(size)],
        }
    ratio = results["1000"]["index_events_per_s"] / results["10"]["index_events_per_s"]
    summary = {"services": args.services, "ratio_1000_to_10": round(ratio, 2), "goal": ">= 0.5"}
    print(json.dumps({"rules": results, **summary}))


if __name__ == "__main__":
    main()
