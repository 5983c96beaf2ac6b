"""A worker process: loads one function's handler and runs invocations sent over a pipe.

Started by the pool as `python -m fanstack.runtime.worker`. The dispatcher's frames arrive on
stdin; results leave on a private copy of stdout, while fd 1 itself is pointed at stderr so a
handler's `print` cannot corrupt the channel. A memory cap is an address-space rlimit.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any, BinaryIO

import msgspec

from fanstack.core.arns import DEFAULT_ACCOUNT, DEFAULT_REGION, function_arn
from fanstack.core.arns import configure as configure_arns
from fanstack.core.errors import FanstackSignal, IdempotencyInProgress, RetryLater
from fanstack.observability import tracing
from fanstack.runtime.context import Context, Invocation, running
from fanstack.runtime.heap import settle_heap
from fanstack.runtime.logs import configure_logging, flush_logs, log_context
from fanstack.runtime.protocol import ChannelClosed, encode, read_frame, write_frame
from fanstack.runtime.records import unpack_sqs_event
from fanstack.runtime.role import become_function_worker

MAX_STACK_FRAMES = 20
IN_PROGRESS_RETRY_DELAY = 1.0
THREAD_STACK_BYTES = 1024 * 1024
log = logging.getLogger("fanstack.worker")


def load_target(target: dict[str, Any]) -> Any:
    """Import the module that declares a function and return the object named by qualname."""
    for entry in reversed(target.get("sys_path", [])):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module = _import(target["module"], target.get("file"))
    value: Any = module
    for part in target["qualname"].split("."):
        value = getattr(value, part)
    return value


def _import(name: str, file: str | None) -> ModuleType:
    if name != "__main__":
        try:
            return importlib.import_module(name)
        except ImportError:
            if file is None:
                raise
    if file is None:
        raise ImportError(f"module {name!r} has no file to load")
    alias = "__fanstack_main__" if name == "__main__" else name
    spec = importlib.util.spec_from_file_location(alias, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    return module


def error_payload(exc: BaseException) -> dict[str, Any]:
    """Lambda's error shape for an exception, with a trimmed stack trace."""
    frames = traceback.format_tb(exc.__traceback__)[-MAX_STACK_FRAMES:]
    return {
        "errorType": type(exc).__name__,
        "errorMessage": _utf8(_message(exc)),
        "stackTrace": [_utf8(frame.rstrip()) for frame in frames],
    }


def _message(exc: BaseException) -> str:
    """`str(exc)`, or what the traceback module prints when that fails."""
    try:
        return str(exc)
    except Exception:
        return f"<exception str() failed> ({type(exc).__name__})"


def _utf8(text: str) -> str:
    """`text` with any lone surrogate escaped (`\\udce9`, as repr() shows it): an error's
    message may hold one (a file name that was not UTF-8), which no UTF-8 frame can carry."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _call_shape(handler: Callable[..., Any]) -> int:
    """1 if the handler takes only the event, 2 if it takes (event, context)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return 2
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return 2 if variadic or len(positional) >= 2 else 1


def run_invocation(
    handler: Callable[..., Any],
    arity: int,
    request: dict[str, Any],
    function: str,
    notify: Callable[[dict[str, Any]], None] = lambda frame: None,
) -> dict[str, Any]:
    """Run one invocation and describe its outcome as a response frame; `notify` sends the
    dispatcher frames during the invocation (claims it holds)."""
    context = Context(
        function_name=function,
        aws_request_id=request["invocation_id"],
        invoked_function_arn=function_arn(function),
        memory_limit_in_mb=request.get("memory_mb", 0),
        deadline=time.monotonic() + request.get("timeout", 3),
    )
    fields = {"function": function, "invocation_id": request["invocation_id"]}
    fields.update(request.get("log_fields", {}))
    with (
        log_context(**fields),
        tracing.continued(request.get("trace_context")),
        running(Invocation(context, notify)),
    ):
        try:
            event = (
                request["event"] if "event" in request else unpack_sqs_event(request["sqs_event"])
            )
            args = (event, context) if arity == 2 else (event,)
            result = handler(*args)
        except RetryLater as signal:
            return {
                "ok": False,
                "signal": type(signal).__name__,
                "delay": signal.delay,
                "error": error_payload(signal),
            }
        except IdempotencyInProgress as exc:
            # A duplicate of a running invocation: come back later, without burning a receive.
            return {
                "ok": False,
                "signal": "RetryLater",
                "delay": IN_PROGRESS_RETRY_DELAY,
                "error": error_payload(exc),
            }
        except FanstackSignal as signal:
            return {"ok": False, "signal": type(signal).__name__, "error": error_payload(signal)}
        except MemoryError as exc:
            return {"ok": False, "error": error_payload(exc), "exit": True}
        except Exception as exc:  # a handler's error is the invocation's outcome
            return {"ok": False, "error": error_payload(exc)}
    try:
        json.dumps(result)  # JSON, as Lambda's result must be (no datetime, no set)
        # ... and what the frame's encoder takes: no lone surrogate (not UTF-8), no key that
        # json turns into a string (None, True).
        encode(result)
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        return {"ok": False, "error": _marshal_error(exc)}
    return {"ok": True, "result": result}


def _marshal_error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": "Runtime.MarshalError",
        "errorMessage": f"Unable to marshal response: {exc}",
        "stackTrace": [],
    }


def exit_with_parent(parent: int, interval: float = 0.25) -> None:
    """Exit when the dispatcher `parent` dies (even by kill -9), instead of running on as an
    orphan; at once if it is already gone.

    Not PR_SET_PDEATHSIG: that fires when the parent *thread* that started the worker exits, and
    pools start workers from short-lived request threads too.
    """

    def orphaned() -> bool:
        return os.getppid() != parent

    if orphaned():
        os._exit(70)

    def watch() -> None:
        while not orphaned():
            time.sleep(interval)
        try:
            _before_exit()
        finally:
            os._exit(70)

    threading.Thread(target=watch, name="fanstack-parent-watch", daemon=True).start()


def _arguments(argv: list[str]) -> dict[str, str]:
    """`--parent PID --function NAME` as a dict (a worker is never started by hand)."""
    pairs = zip(argv[::2], argv[1::2], strict=False)
    return {key.removeprefix("--"): value for key, value in pairs}


def main() -> None:
    """Serve invocations until the dispatcher closes the channel."""
    # Small thread stacks: they count against the address-space cap (8 MiB each by default).
    threading.stack_size(THREAD_STACK_BYTES)
    arguments = _arguments(sys.argv[1:])
    if "parent" in arguments:
        exit_with_parent(int(arguments["parent"]))
    channel_out: BinaryIO = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    channel_in: BinaryIO = sys.stdin.buffer
    hello = read_frame(channel_in)
    memory_mb = hello.get("memory_mb")
    if memory_mb:
        limit = int(memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    configure_logging()
    tracing.configure()
    configure_arns(
        account=hello.get("account", DEFAULT_ACCOUNT),
        region=hello.get("region", DEFAULT_REGION),
    )
    become_function_worker()  # the app's API is the dispatcher's to check and serve
    target = load_target(hello["target"])
    handler = getattr(target, "handler", target)
    use_store = getattr(target, "use_store", None)
    if callable(use_store):
        # Tables, idempotency records and breaker state live where the dispatcher's do.
        use_store(hello.get("data_dir"), hello.get("backend"))
    arity = _call_shape(handler)
    settle_heap()
    write_frame(channel_out, {"ready": True, "pid": os.getpid()})
    function = hello["function"]
    while True:
        try:
            request = read_frame(channel_in)
        except ChannelClosed:
            return
        response = run_invocation(
            handler, arity, request, function, lambda frame: write_frame(channel_out, frame)
        )
        if response.get("exit"):
            try:
                _before_exit()
            finally:
                write_frame(channel_out, response)
                os._exit(1)  # memory is exhausted; a fresh worker is cheaper than a sick one
        _write_counts()  # once answered, the pool may stop this worker with SIGKILL
        write_frame(channel_out, response)


def _before_exit() -> None:
    """What `os._exit` would skip: the log lines and the counts (a handler's publishes) not
    written yet."""
    flush_logs()
    _write_counts()


def _write_counts() -> None:
    """Write the counts this worker made (a handler's publishes, say) to the shared files."""
    batched = sys.modules.get("fanstack.observability.batched_values")
    if batched is None:  # loaded only where the handler counted something
        return
    try:
        batched.flush()
    except Exception:  # a full disk, say: the invocation's answer matters more
        log.exception("could not write the worker's counts")


if __name__ == "__main__":
    main()
