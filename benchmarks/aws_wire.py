"""The seed's fan-out through boto3: fanstack's AWS endpoint beside the client's own ceiling.

One SNS topic, five SQS queues (one behind a filter policy `{"market": ["ru"]}`, a third of the
events), ~1 KB JSON bodies; `--threads` boto3 threads publish batches of 10, then drain every
queue with receive 10 + delete-batch. Three runs of exactly the same calls, in one process run:

- fanstack: `fanstack gateway` on a fresh embedded store (durable: each 200 means the messages
  are on disk), over HTTP on loopback;
- ceiling: the same boto3 calls against a server (uvicorn with httptools, as fanstack uses)
  that tells the operation from its marker (`X-Amz-Target`, `Action=`) without parsing the
  input and answers with a canned, valid response made once by fanstack's own serializer —
  the client's own speed on this machine, so the ratio says what the endpoint costs;
- python_api: fanstack's Python API doing the same work in-process (no HTTP).

Prints one JSON line: events per second end to end for each, and fanstack / ceiling.

    python benchmarks/aws_wire.py --events 3000 --threads 4
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import boto3
import httpx
from botocore.config import Config

QUEUES = ["process", "notify", "delivery", "reports", "compliance"]
BATCH = 10
PORT_RANGE = (20_000, 32_000)
APP_SOURCE = 'from fanstack import App\napp = App("wire-bench")\n'


def fail(text: str) -> NoReturn:
    raise SystemExit(f"aws_wire: FAILED: {text}")


def pick_port() -> int:
    """A free port in `PORT_RANGE` (checked by binding it)."""
    for _ in range(100):
        port = random.randint(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    fail(f"no free port in {PORT_RANGE}")


def events(count: int) -> list[tuple[str, str]]:
    """(market, ~1 KB JSON body) per event; every third event is market ru."""
    pad = "x" * 900
    return [
        ("ru" if n % 3 == 0 else "eu", json.dumps({"order_id": f"o-{n}", "pad": pad}))
        for n in range(count)
    ]


def expected(count: int) -> dict[str, int]:
    """Deliveries each queue must get."""
    ru = sum(1 for n in range(count) if n % 3 == 0)
    return {name: ru if name == "compliance" else count for name in QUEUES}


# -- the workload over boto3 -------------------------------------------------------------


def clients(url: str, threads: int) -> list[tuple[Any, Any]]:
    config = Config(retries={"max_attempts": 1}, max_pool_connections=threads * 2)
    made = []
    for _ in range(threads):
        session = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        )
        made.append(
            (
                session.client("sns", endpoint_url=url, config=config),
                session.client("sqs", endpoint_url=url, config=config),
            )
        )
    return made


def provision(sns: Any, sqs: Any) -> tuple[str, dict[str, str]]:
    topic = sns.create_topic(Name="orders")["TopicArn"]
    urls = {}
    for name in QUEUES:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        attributes = {"RawMessageDelivery": "true"}
        if name == "compliance":
            attributes["FilterPolicy"] = json.dumps({"market": ["ru"]})
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes=attributes)
        urls[name] = url
    return topic, urls


def run_wire(
    url: str, batch_events: list[tuple[str, str]], threads: int, *, canned: bool, server: int
) -> dict[str, float]:
    """Publish every event in batches over `threads` clients, then drain every queue; with the
    CPU seconds the server process (`server`, a pid) and this client process spent doing it."""
    pairs = clients(url, threads)
    topic, urls = provision(*pairs[0])
    batches = [batch_events[i : i + BATCH] for i in range(0, len(batch_events), BATCH)]
    wanted = expected(len(batch_events))
    server_cpu, client_cpu = process_cpu(server), time.process_time()
    started = time.perf_counter()
    in_parallel(threads, lambda t: publish_share(pairs[t][0], topic, batches[t::threads]))
    published = time.perf_counter()
    got = dict.fromkeys(QUEUES, 0)
    drainers = min(threads, len(QUEUES))

    def drain(t: int) -> None:
        for name in QUEUES[t::drainers]:
            got[name] = drain_queue(pairs[t][1], urls[name], wanted[name], canned=canned)

    in_parallel(drainers, drain)
    drained = time.perf_counter()
    server_cpu, client_cpu = process_cpu(server) - server_cpu, time.process_time() - client_cpu
    if got != wanted:
        fail(f"drained {got}, expected {wanted}")
    return {
        **figures(len(batch_events), sum(wanted.values()), started, published, drained),
        "server_cpu_s": round(server_cpu, 2),
        "client_cpu_s": round(client_cpu, 2),
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def publish_share(sns: Any, topic: str, batches: list[list[tuple[str, str]]]) -> None:
    for batch in batches:
        entries = [
            {
                "Id": str(n),
                "Message": body,
                "MessageAttributes": {"market": {"DataType": "String", "StringValue": market}},
            }
            for n, (market, body) in enumerate(batch)
        ]
        result = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        if result.get("Failed"):
            fail(f"publish_batch failed: {result['Failed'][:1]}")


def drain_queue(sqs: Any, url: str, wanted: int, *, canned: bool) -> int:
    got = 0
    deadline = time.monotonic() + 300
    while got < wanted:
        if time.monotonic() > deadline:
            fail(f"draining {url} took over 300 s ({got} of {wanted})")
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=BATCH).get("Messages", [])
        if canned:
            messages = messages[: min(BATCH, wanted - got)]
        if not messages:
            continue
        entries = [
            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
        ]
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        if deleted.get("Failed"):
            fail(f"delete_message_batch failed: {deleted['Failed'][:1]}")
        got += len(messages)
    return got


def in_parallel(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # reported below, the run fails
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    if errors:
        fail(f"a client thread failed: {errors[0]!r}")


def figures(
    count: int, deliveries: int, started: float, published: float, drained: float
) -> dict[str, float]:
    return {
        "publish_events_per_s": round(count / (published - started), 1),
        "drain_deliveries_per_s": round(deliveries / (drained - published), 1),
        "end_to_end_events_per_s": round(count / (drained - started), 1),
        "deliveries": deliveries,
    }


# -- the servers ---------------------------------------------------------------------------


def start(command: list[str], url: str, probe: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            fail(f"{command[2:4]} exited: {error[-2000:]}")
        try:
            httpx.get(url + probe, timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    fail(f"{command} did not come up in 60 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def canned_app() -> Any:
    """An ASGI app answering each operation of the workload with a valid canned response."""
    from fanstack.aws.protocols import identify, protocol_for, service_model
    from fanstack.aws.protocols.http import HttpRequest

    sns_model, sqs_model = service_model("sns"), service_model("sqs")
    message = {"MessageId": "m", "ReceiptHandle": "r", "MD5OfBody": "0" * 32, "Body": "x" * 1000}
    outputs = {
        "CreateTopic": {"TopicArn": "arn:aws:sns:us-east-1:000000000000:orders"},
        "Subscribe": {"SubscriptionArn": "arn:aws:sns:us-east-1:000000000000:orders:q"},
        "PublishBatch": {
            "Successful": [{"Id": str(n), "MessageId": f"m{n}"} for n in range(BATCH)],
            "Failed": [],
        },
        "CreateQueue": {"QueueUrl": "http://127.0.0.1/000000000000/q"},
        "GetQueueAttributes": {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:0:q"}},
        "ReceiveMessage": {"Messages": [message] * BATCH},
        "DeleteMessageBatch": {"Successful": [{"Id": str(n)} for n in range(BATCH)], "Failed": []},
    }
    answers: dict[tuple[str, str], tuple[int, list[tuple[bytes, bytes]], bytes]] = {}

    def answer(request: HttpRequest) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        # The operation from its marker alone (no parsing of the input), the answer made once.
        target = request.headers.get("x-amz-target", "")
        if target:
            key = ("sqs", target.rsplit(".", 1)[1])
        else:
            action = request.body.split(b"Action=", 1)[1].split(b"&", 1)[0].decode()
            key = ("sns", action)
        if key not in answers:
            service = identify(request) or "sqs"
            model = sns_model if service == "sns" else sqs_model
            protocol = protocol_for(model, request)
            operation = model.operation_model(key[1])
            response = protocol.serialize(operation, outputs[key[1]], request_id="canned")
            headers = [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
            headers.append((b"content-length", str(len(response.body)).encode()))
            answers[key] = (response.status, headers, response.body)
        return answers[key]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if scope["path"] == "/ping":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        request = HttpRequest(scope["method"], scope["path"], scope["query_string"].decode(),
                              headers, body)  # fmt: skip
        status, response_headers, payload = answer(request)
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def serve_canned(port: int) -> None:
    import uvicorn

    uvicorn.run(canned_app(), host="127.0.0.1", port=port, log_level="warning",
                http="httptools", loop="uvloop", access_log=False)  # fmt: skip


# -- the Python API comparison -----------------------------------------------------------


def run_python_api(batch_events: list[tuple[str, str]], data_dir: Path) -> dict[str, float]:
    from fanstack import App

    app = App("wire-bench-python", data_dir=data_dir)
    topic = app.topic("orders")
    queues = [app.queue(name) for name in QUEUES]
    for queue in queues:
        policy = {"market": ["ru"]} if queue.name == "compliance" else None
        topic.subscribe(queue, filter_policy=policy, raw=True)
    app.backend  # noqa: B018 - provision outside the timed part
    wanted = expected(len(batch_events))
    started = time.perf_counter()
    for start_at in range(0, len(batch_events), BATCH):
        result = topic.publish_batch(
            [{"id": str(n), "body": body, "attributes": {"market": market}}
             for n, (market, body) in enumerate(batch_events[start_at : start_at + BATCH])]
        )  # fmt: skip
        if not result.ok:
            fail(f"python api: publish_batch failed: {result.failed[:1]}")
    published = time.perf_counter()
    for queue in queues:
        got = 0
        while batch := queue.receive(max_messages=BATCH):
            got += len(batch)
            if not queue.delete_batch([m.receipt_handle for m in batch]).ok:
                fail("python api: delete_batch failed")
        if got != wanted[queue.name]:
            fail(f"python api: {queue.name} drained {got}, expected {wanted[queue.name]}")
    drained = time.perf_counter()
    app.close()
    return figures(len(batch_events), sum(wanted.values()), started, published, drained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="events published per run")
    parser.add_argument("--threads", type=int, default=4, help="boto3 client threads")
    parser.add_argument("--serve-canned", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_canned is not None:
        serve_canned(args.serve_canned)
        return
    if args.events < BATCH or args.events % BATCH:
        fail(f"--events must be a positive multiple of {BATCH}")
    workload = events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "app.py").write_text(APP_SOURCE)
        port = pick_port()
        url = f"http://127.0.0.1:{port}"
        fanstack = start(
            [sys.executable, "-m", "fanstack.cli", "--data-dir", str(root / "state"),
             "--log-level", "warning", "gateway", str(root / "app.py"), "--port", str(port)],
            url, "/_fanstack/health",
        )  # fmt: skip
        try:
            wire = run_wire(url, workload, args.threads, canned=False, server=fanstack.pid)
        finally:
            stop(fanstack)
        canned_port = pick_port()
        canned_url = f"http://127.0.0.1:{canned_port}"
        canned = start(
            [sys.executable, __file__, "--serve-canned", str(canned_port)], canned_url, "/ping"
        )
        try:
            ceiling = run_wire(canned_url, workload, args.threads, canned=True, server=canned.pid)
        finally:
            stop(canned)
        python_api = run_python_api(workload, root / "python-state")
    print(
        json.dumps(
            {
                "benchmark": "aws_wire",
                "events": args.events,
                "threads": args.threads,
                "cpus": os.cpu_count(),
                "fanstack_over_boto3": wire,
                "ceiling_canned_responses": ceiling,
                "python_api": python_api,
                "ratio_end_to_end": round(
                    wire["end_to_end_events_per_s"] / ceiling["end_to_end_events_per_s"], 3
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
