"""The driver: one thread leases, invokes and settles the batches of every queue consumer.

Why one thread: with a thread per batch in flight (ten for five consumers of two workers each),
every lease and delete contends for the store's connection, the writer lock and the GIL with the
others, and each contended hand-over is a thread switch. Measured on the functions benchmark
(draining a backlog), the dispatcher spent ~97 µs of CPU per delivery that way, where one
thread draining the same queues without functions spends ~35; with one driver thread it spends
~65-70.

- **A lane per consumer**: its batches leased and not yet answered (at most its
  `max_concurrency`), whether its queue may have messages, a batch leased and not sent yet
  (waiting for a worker, or filling up within its batch window), messages leased for its
  next batches (its stock, in bulk), and when a paused consumer (an open circuit breaker)
  may lease again.
- **Each turn**, a lane with a free slot whose queue may have messages asks its function's pool
  for a permit (`WorkerPool.permit`: a warm worker is free, or the consumer may start one, one
  cold start at a time), leases a batch, takes the worker (or the slot to start one in) and
  sends the batch: the worker process runs it while the driver goes on. A cold start runs on a
  thread of its own, which hands the started worker back. Nothing is taken before the lease,
  so an idle consumer holds no worker. When a worker answers, it is given a next batch (of
  another consumer of its function first, in turn, then of its own) before the answered one
  is settled. A batch not sent yet is kept invisible by the heartbeat.
- **Then the driver waits** (one `poll` over every busy worker's channel and a wake-up pipe)
  for an answer, a wake-up or the next deadline: an invocation's timeout (the worker is
  killed), the end of a batch window, a paused consumer's resumption. Each answered batch is
  settled (deleted, retried or handed back) on the driver.
- **An empty queue is watched**, not polled: its lane's watcher thread long-polls it
  (`Backend.wait`, woken by commits) and wakes the driver when a message may be there.
- **Each batch keeps a context of its own** (`contextvars`), holding its consumer span, log
  fields and invocation span from its lease to its settlement, whatever ran in between.
- **Rare slow paths leave the driver**: a batch that asks to be retried later runs record by
  record on a thread of its own (`ConsumerLoop.run_alone`), then comes back to be closed.
- **In bulk, on the embedded store** (`bulk`): a lease for a batch a warm worker takes also
  takes the lane's next batch per slot (LEASE_BULK messages in all, at most) into its stock,
  kept invisible by the heartbeat until batches take them (not on a FIFO queue, not for a
  cold start); settled batches' messages are deleted together (`Deletions`). A statement
  leasing or deleting 50 messages costs a third less per message than five of 10: draining
  the functions benchmark's backlog, the dispatcher process spent ~115 µs of CPU per delivery
  in bulk against ~136 without. The price: a stocked message counts as received (a process
  killed with it returns it, receive counted, as one in flight), and no other consumer of
  the queue gets it meanwhile: one more batch per slot at most.
- **On a backend whose every call is a round trip** (NATS), the dispatcher runs a driver per
  batch slot instead of one for all (`Backend.calls_are_local`): one driver would wait on one
  round trip at a time.
- **Stopping**: no more leases; a batch not sent yet and the stock go back at once, uncounted
  (the stock too when a consumer pauses for an open circuit breaker); waiting deletes are made;
  batches in flight run to their end (the dispatcher's grace period, then `force` kills their
  workers, and their messages go back, uncounted).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any, Protocol

from opentelemetry import trace

from fanstack.core.errors import FanstackError
from fanstack.core.message import ReceivedMessage
from fanstack.core.outcome import Outcome
from fanstack.core.queue_rules import MAX_RECEIVE_BATCH
from fanstack.core.specs import MAX_VISIBILITY_TIMEOUT
from fanstack.observability import tracing
from fanstack.runtime.consumers import ConsumerLoop, Deletions
from fanstack.runtime.heartbeat import HeldBatch
from fanstack.runtime.host import Host
from fanstack.runtime.polling import POLL_WAIT
from fanstack.runtime.pool import Permit, WorkerPool, ended
from fanstack.runtime.process import Worker, WorkerCrashed
from fanstack.runtime.protocol import ChannelTimeout
from fanstack.runtime.records import pack_sqs_event

log = logging.getLogger("fanstack.dispatcher")

Answer = dict[str, Any] | ChannelTimeout | WorkerCrashed | None

# Messages a lease that leases ahead takes at most, with its own batch's (`Driver(bulk=True)`:
# what its batch does not take waits in the lane's stock, kept invisible, for the next ones).
LEASE_BULK = 50


class DriverHost(Host, Protocol):
    """The dispatcher, as the driver sees it: it counts the batches running."""

    def batch_started(self) -> None:
        """A leased batch is running (`stop` waits for it within its grace period)."""
        ...

    def batch_ended(self) -> None:
        """A batch `batch_started` counted has ended."""
        ...


class Lane:
    """One consumer, as the driver runs it."""

    def __init__(self, loop: ConsumerLoop, pool: WorkerPool, slots: int, *, bulk: bool) -> None:
        self.loop = loop
        self.pool = pool
        self.slots = slots  # batches at once, at most
        self.batch_size = loop.consumer.batch_size
        self.batch_window = loop.consumer.batch_window
        self.running = 0  # batches leased and not yet answered (each holds a worker slot)
        self.ready = True  # the queue may have messages: lease when a slot is free
        self.resume_at = 0.0  # paused (an open circuit breaker) until then
        self.held: Held | None = None  # leased, not sent yet
        self.filling = False  # `Driver._fill` runs for this lane
        self.watch = threading.Event()  # set: long-poll the queue, then wake the driver
        # A lease for a warm worker takes the next batch per slot too, into the stock (never
        # on a FIFO queue: a group's messages in two batches would run at once).
        self.bulk = bulk and not loop.queue.fifo
        self.stock: deque[Stocked] = deque()  # leased ahead, oldest first


class Stocked:
    """Messages a bulk lease took beyond its batch, kept invisible by the heartbeat (for the
    timeout they were leased for) until batches take them."""

    def __init__(self, messages: list[ReceivedMessage], timeout: int) -> None:
        self.messages = messages
        self.timeout = timeout
        self.keeping = ExitStack()
        self.record: HeldBatch | None = None  # the heartbeat's: what it extends, and when


class Leased:
    """Messages for a batch (`Driver._lease`), since when their visibility runs (their lease,
    or the heartbeat's last extension), and the shortest timeout they were leased for."""

    def __init__(self, messages: list[ReceivedMessage], since: float, timeout: int) -> None:
        self.messages = messages
        self.since = since
        self.timeout = timeout


class Held:
    """A leased batch not sent yet: it fills up until its batch window ends (`ends`), or
    waits for a worker."""

    def __init__(self, leased: Leased, permit: Permit) -> None:
        self.batch = leased.messages
        self.handles = [m.receipt_handle for m in self.batch]
        self.received_at = leased.since
        self.timeout = leased.timeout
        self.permit = permit
        self.taken = False  # a worker, or a slot to start one in, is the batch's
        self.worker: Worker | None = None
        self.ends = 0.0
        self.keeping = ExitStack()  # the heartbeat keeping it invisible
        self.record: HeldBatch | None = None  # the heartbeat's

    def take(self) -> bool:
        """Take the permit's worker (or slot) if there is one now; whether taken."""
        self.taken, self.worker = self.permit.try_take()
        return self.taken


class Flight:
    """One leased batch, from its lease until it is settled."""

    def __init__(self, lane: Lane, held: Held, context: contextvars.Context) -> None:
        self.permit = held.permit  # ends once the batch's worker has started
        self.lane = lane
        self.batch = held.batch
        self.worker = held.worker
        self.cold = held.worker is None
        self.received_at = held.received_at
        self.timeout = held.timeout
        self.context = context
        self.holding = ExitStack()  # the consumer span: until settled
        self.invoking = ExitStack()  # log fields, heartbeat, invocation span: until answered
        self.span: trace.Span | None = None
        self.invoke_span: trace.Span | None = None
        self.fields: dict[str, Any] = {}
        self.request: dict[str, Any] = {}
        self.started = 0.0
        self.begun = False  # the pool counts the invocation (`end` is owed)
        self.answered = False
        self.freed = False  # its slot let go (`Driver._freed`)
        self.landed = False
        self.starting = False  # a thread starts its worker (and will hand it over)


class Driver:
    """Runs the batches of `loops` from one thread (`run`), with a watcher thread per loop;
    `slots`: batches of a loop at once (default: its `max_concurrency`); `bulk`: lease and
    delete many batches' messages at once (for a store whose calls are local: stocked
    messages wait for a batch, settled ones for a delete)."""

    def __init__(
        self,
        host: DriverHost,
        loops: Sequence[ConsumerLoop],
        slots: int | None = None,
        *,
        bulk: bool = False,
    ) -> None:
        self.host = host
        self.lanes = [
            Lane(loop, host.pool(loop.function), slots or loop.max_concurrency, bulk=bulk)
            for loop in loops
        ]
        self._deletions = Deletions(host) if bulk else None
        self._sharing: dict[int, list[Lane]] = {}  # lanes by their pool's id
        for lane in self.lanes:
            self._sharing.setdefault(id(lane.pool), []).append(lane)
        self._sent: dict[int, Flight] = {}  # by the channel its answer comes on
        self._poller = select.poll()
        self._flights = 0  # leased and not settled
        self._handed: deque[Callable[[], None]] = deque()  # work other threads hand over
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._poller.register(self._wake_read, select.POLLIN)
        self._thread_id = 0
        self._context = contextvars.Context()
        self._closed = False
        self._pipe_lock = threading.Lock()  # `wake` never writes to a closed (reused) descriptor

    def threads(self) -> list[threading.Thread]:
        """The driver's thread and the watchers' (not started)."""
        threads = [threading.Thread(target=self.run, name="fanstack-driver", daemon=True)]
        for lane in self.lanes:
            threads.append(
                threading.Thread(
                    target=self._watch, args=(lane,), name=f"fanstack-watch-{lane.loop.name}"
                )
            )
            threads[-1].daemon = True
        return threads

    def wake(self) -> None:
        """Make the driver look again now (from another thread)."""
        if threading.get_ident() == self._thread_id:
            return
        with self._pipe_lock:
            if not self._closed:
                with contextlib.suppress(BlockingIOError):  # already woken
                    os.write(self._wake_write, b"\0")

    def _hand(self, work: Callable[[], None]) -> None:
        """Have the driver run `work` (from another thread)."""
        self._handed.append(work)
        self.wake()

    # -- the driver's thread ----------------------------------------------------------------

    def run(self) -> None:
        """Lease, run and settle batches until the dispatcher stops and none is left."""
        self._thread_id = threading.get_ident()
        self._context = contextvars.copy_context()  # the thread's own: what each batch starts from
        for lane in self.lanes:
            lane.pool.listeners.append(self.wake)  # a worker others held may be free
        stopping = self.host.stopping
        try:
            while True:
                if stopping.is_set():
                    self._give_back_held()
                    if not self._flights:
                        self._flush_deletions()
                        return
                else:
                    now = time.monotonic()
                    for lane in self.lanes:
                        self._fill_safely(lane, now)
                self._wait()
        finally:
            try:  # (already done unless the driver failed)
                self._give_back_held()
            except Exception:
                log.exception("could not hand batches back")
            self._flush_deletions()
            for lane in self.lanes:
                lane.watch.set()  # the watchers see the stop at once
                with contextlib.suppress(ValueError):
                    lane.pool.listeners.remove(self.wake)

    def close(self) -> None:
        """Close the wake-up pipe (once the driver's and watchers' threads have ended)."""
        with self._pipe_lock:
            if not self._closed:
                self._closed = True
                os.close(self._wake_write)
                os.close(self._wake_read)

    def _fill(self, lane: Lane, now: float) -> None:
        """Lease and send batches while the lane has a free slot and its queue may have
        messages. Not re-entered: a batch that ends while this sends another (its worker was
        found dead) leaves its slot to this call's loop."""
        if lane.filling:
            return
        lane.filling = True
        try:
            self._fill_lane(lane, now)
        finally:
            lane.filling = False

    def _fill_safely(self, lane: Lane, now: float) -> None:
        """`_fill`, a failure of fanstack's own logged and the lane paused a poll's wait: the
        other consumers go on."""
        try:
            self._fill(lane, now)
        except Exception:
            log.exception("consumer failed unexpectedly", extra={"queue": lane.loop.queue_name})
            lane.resume_at = now + POLL_WAIT

    def _fill_lane(self, lane: Lane, now: float) -> None:
        if lane.held is not None and not self._release_held(lane, now):
            return
        loop = lane.loop
        while (
            (lane.ready or lane.stock)
            and lane.held is None
            and lane.running < lane.slots
            and lane.resume_at <= now
        ):
            pause = loop.pause()
            if pause > 0:
                lane.resume_at = now + pause
                self._give_back_stock(lane)  # for other consumers meanwhile
                return
            # A warm worker is free, or this consumer may start one (one at a time).
            permit = lane.pool.permit(loop.name, timeout=0)
            if permit is None:
                return  # the pool's listeners wake the driver when that may change
            try:
                leased = self._lease(lane, lane.batch_size, now, warm=not permit.cold)
            except BaseException:
                permit.cancel()
                raise
            if not leased.messages:
                permit.cancel()
                return
            self._started(lane)
            held = Held(leased, permit)
            if len(held.batch) < lane.batch_size and lane.batch_window > 0:
                # It fills up until its window ends, holding no worker meanwhile.
                held.ends = held.received_at + lane.batch_window
                self._hold(lane, held)
                return
            if not held.take():  # another caller took the worker meanwhile
                self._hold(lane, held)
                return
            self._launch(lane, held)

    def _hold(self, lane: Lane, held: Held) -> None:
        """Keep a leased batch until its window ends and a worker takes it, kept invisible
        meanwhile (what is added to it too: the heartbeat reads `handles` as it grows)."""
        held.record = held.keeping.enter_context(
            self.host.heartbeat.keep_visible(
                lane.loop.queue_name, held.handles, held.timeout, held.received_at
            )
        )
        lane.held = held

    def _release_held(self, lane: Lane, now: float) -> bool:
        """Send the lane's held batch if it can go now; whether it went."""
        held = lane.held
        assert held is not None
        if held.ends:  # filling its window
            while len(held.batch) < lane.batch_size and (lane.ready or lane.stock):
                wanted = lane.batch_size - len(held.batch)
                leased = self._lease(lane, wanted, now, warm=not held.permit.cold)
                if not leased.messages:
                    break
                held.received_at = min(held.received_at, leased.since)
                held.timeout = min(held.timeout, leased.timeout)
                if held.record is not None:
                    held.record.cover(leased.since, leased.timeout)
                held.batch.extend(leased.messages)
                held.handles.extend(m.receipt_handle for m in leased.messages)
            if len(held.batch) < lane.batch_size and now < held.ends:
                return False
            held.ends = 0.0  # due now: waiting for a worker, if any
        if not held.taken and not held.take():
            return False
        lane.held = None
        held.keeping.close()
        self._launch(lane, held)
        return True

    def _lease(self, lane: Lane, count: int, now: float, *, warm: bool) -> Leased:
        """Up to `count` messages: stocked ones first, then a lease. None if there are none
        (the queue is watched then) or the lease failed (the lane waits a poll's wait).

        A bulk lane's lease for a batch a warm worker takes (`warm`) also takes what the
        lane's next batch per slot would, up to LEASE_BULK messages in all, into its stock:
        messages are still leased only as workers become ready, not ahead of a cold start.
        A lease of a lane that is not bulk takes a receive's 10 at most.
        """
        taken = Leased([], time.monotonic(), MAX_VISIBILITY_TIMEOUT)
        while lane.stock and len(taken.messages) < count:
            stocked = lane.stock[0]
            assert stocked.record is not None
            taken.since = min(taken.since, stocked.record.extended_at)
            taken.timeout = min(taken.timeout, stocked.timeout)
            taking = count - len(taken.messages)
            taken.messages.extend(stocked.messages[:taking])
            del stocked.messages[:taking]
            if stocked.messages:  # the heartbeat extends only what is still stocked
                stocked.record.keep_only(tuple(m.receipt_handle for m in stocked.messages))
            else:
                lane.stock.popleft()
                stocked.keeping.close()
        if len(taken.messages) == count or not lane.ready:
            return taken
        wanted = count - len(taken.messages)
        if not lane.bulk:
            wanted = min(wanted, MAX_RECEIVE_BATCH)
        ahead = 0
        if lane.bulk and warm:
            ahead = max(0, min(LEASE_BULK - wanted, lane.batch_size * lane.slots))
        leased_at = time.monotonic()
        try:
            leased, timeout = lane.loop.lease(wanted, ahead)
        except Exception:  # what was taken from the stock still runs
            log.exception("receive failed", extra={"queue": lane.loop.queue_name})
            lane.resume_at = now + POLL_WAIT
            return taken
        if not leased:
            lane.ready = False
            lane.watch.set()
            return taken
        taken.messages.extend(leased[:wanted])
        taken.timeout = min(taken.timeout, timeout)
        taken.since = min(taken.since, leased_at)
        if len(leased) > wanted:
            self._stock(lane, Stocked(leased[wanted:], timeout), leased_at)
        return taken

    def _stock(self, lane: Lane, stocked: Stocked, leased_at: float) -> None:
        """Keep leased messages for the lane's next batches, invisible meanwhile."""
        handles = tuple(m.receipt_handle for m in stocked.messages)
        stocked.record = stocked.keeping.enter_context(
            self.host.heartbeat.keep_visible(
                lane.loop.queue_name, handles, stocked.timeout, leased_at
            )
        )
        lane.stock.append(stocked)

    def _give_back_stock(self, lane: Lane) -> None:
        """The lane's stocked messages go back to their queue, uncounted."""
        while lane.stock:
            stocked = lane.stock.popleft()
            self._hand_back(lane, stocked.keeping, stocked.messages)

    def _hand_back(
        self, lane: Lane, keeping: ExitStack, messages: Sequence[ReceivedMessage]
    ) -> None:
        """Stop keeping leased messages invisible, and hand them back, uncounted."""
        try:
            keeping.close()
            handles = [(m.receipt_handle, 0) for m in messages]
            self.host.backend.set_visibility(lane.loop.queue_name, handles, uncount=True)
        except Exception:
            log.exception("could not hand messages back", extra={"queue": lane.loop.queue_name})

    def _flush_deletions(self) -> None:
        if self._deletions is not None:
            try:
                self._deletions.flush()
            except Exception:
                log.exception("deleting settled messages failed")

    def _give_back_held(self) -> None:
        """Stopping: the batches not sent yet and stocked messages go back to their queues,
        uncounted."""
        for lane in self.lanes:
            self._give_back_stock(lane)
            held, lane.held = lane.held, None
            if held is None:
                continue
            self._hand_back(lane, held.keeping, held.batch)
            if held.taken:
                lane.pool.give_back(held.worker)
            held.permit.cancel()
            lane.running -= 1
            self._ended()

    def _started(self, lane: Lane) -> None:
        """A batch was leased: it holds a slot of the lane until answered, and counts as
        running until settled."""
        lane.running += 1
        self._flights += 1
        self.host.batch_started()

    def _ended(self) -> None:
        self._flights -= 1
        self.host.batch_ended()

    def _freed(self, flight: Flight) -> None:
        """The flight's invocation is over: its slot may take the next batch (once)."""
        if not flight.freed:
            flight.freed = True
            flight.lane.running -= 1

    def _landed(self, flight: Flight) -> None:
        """The flight is over, settled or not (once, whatever failed on the way)."""
        self._freed(flight)
        if not flight.landed:
            flight.landed = True
            self._ended()

    def _launch(self, lane: Lane, held: Held) -> None:
        # A context of its own, not the current one: this may run while settling another batch.
        flight = Flight(lane, held, self._context.copy())
        flight.context.run(self._step, flight, self._begin, flight)

    def _step(self, flight: Flight, work: Callable[..., None], *args: Any) -> None:
        """Run one step of a flight (in its context); a failure of fanstack's own ends it."""
        try:
            work(*args)
        except Exception:
            log.exception("batch failed unexpectedly")
            self._abort(flight)

    def _begin(self, flight: Flight) -> None:
        """Open the batch's span, log fields and heartbeat; send it (or start a worker)."""
        lane, loop = flight.lane, flight.lane.loop
        flight.span = flight.holding.enter_context(loop.span(flight.batch))
        flight.fields = loop.fields(flight.batch)
        for manager in loop.invoking(
            flight.batch, flight.received_at, flight.fields, flight.timeout
        ):
            flight.invoking.enter_context(manager)
        pool = lane.pool
        flight.invoke_span = flight.invoking.enter_context(pool.invocation_span(cold=flight.cold))
        flight.request = pool.request(pack_sqs_event(flight.batch, loop.queue), flight.fields)
        flight.started = time.monotonic()
        pool.meter.started()
        flight.begun = True
        if flight.worker is not None:
            self._send(flight, flight.worker)
            return
        threading.Thread(  # its log lines say which batch it starts for
            target=flight.context.copy().run,
            args=(self._start_worker, flight),
            name="fanstack-cold-start",
            daemon=True,
        ).start()
        flight.starting = True

    def _start_worker(self, flight: Flight) -> None:
        """(A thread of its own.) Start a worker for a flight, and hand it to the driver."""
        try:
            worker: Worker | WorkerCrashed = flight.lane.pool.start_worker()
        except WorkerCrashed as exc:
            worker = exc
        except Exception as exc:  # fanstack's own failure: the batch fails as a crash would
            log.exception("cold start failed unexpectedly")
            worker = WorkerCrashed(f"worker failed to start: {exc}")

        def started() -> None:
            flight.permit.cancel()
            if flight.landed:  # given up meanwhile (see `_abort`)
                if not isinstance(worker, WorkerCrashed):
                    worker.kill()
                return
            if isinstance(worker, WorkerCrashed):
                self._answer(flight, worker)
            else:
                self._send(flight, worker)

        self._hand(lambda: flight.context.run(self._step, flight, started))

    def _send(self, flight: Flight, worker: Worker) -> None:
        flight.worker = worker
        flight.lane.pool.running(worker)
        try:
            worker.send(flight.request, flight.lane.pool.spec.timeout)
        except WorkerCrashed as exc:
            self._answer(flight, exc)
            return
        self._sent[worker.channel] = flight
        self._poller.register(worker.channel, select.POLLIN)

    def _wait(self) -> None:
        """Wait for answers, wake-ups or the next deadline, and act on what came."""
        now = time.monotonic()
        timeout = self._timeout(now)
        deletions = self._deletions
        if deletions is not None and deletions.pending and timeout > 0:
            events = self._poll(0.0)
            if not events:  # nothing else to do now: delete what was settled
                self._flush_deletions()
                events = self._poll(self._timeout(time.monotonic()))
        else:
            events = self._poll(timeout)
        for fd, _ in events:
            if fd == self._wake_read:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._wake_read, 4096):
                        pass
                continue
            flight = self._sent.get(fd)
            if flight is None or flight.worker is None:
                continue
            try:
                answer: Answer = flight.worker.answer()
            except WorkerCrashed as exc:
                answer = exc
            except Exception as exc:  # an answer that cannot be read: the worker is not trusted
                log.exception("could not read a worker's answer")
                flight.worker.signal_kill()
                answer = WorkerCrashed(f"unreadable answer: {exc}")
            if answer is not None:
                self._unsend(fd)
                flight.context.run(self._step, flight, self._answer, flight, answer)
        while self._handed:
            self._handed.popleft()()
        now = time.monotonic()
        for fd, flight in list(self._sent.items()):
            if flight.worker is not None and now >= flight.worker.deadline:
                self._unsend(fd)
                flight.worker.kill()
                flight.context.run(
                    self._step, flight, self._answer, flight, ChannelTimeout("deadline passed")
                )
        for lane in self.lanes:
            if lane.resume_at and lane.resume_at <= now:
                lane.resume_at = 0.0
        if deletions is not None and deletions.pending:
            try:
                deletions.flush_due(now)
            except Exception:
                log.exception("deleting settled messages failed")

    def _poll(self, timeout: float) -> list[tuple[int, int]]:
        try:
            return self._poller.poll(max(0.0, timeout) * 1000)
        except InterruptedError:
            return []

    def _unsend(self, fd: int) -> None:
        del self._sent[fd]
        self._poller.unregister(fd)

    def _timeout(self, now: float) -> float:
        """Seconds until the next thing due: an invocation's deadline, a batch window's end,
        a paused lane's resumption (a poll's wait at most)."""
        due = now + POLL_WAIT
        for flight in self._sent.values():
            if flight.worker is not None:
                due = min(due, flight.worker.deadline)
        for lane in self.lanes:
            if lane.held is not None and lane.held.ends:
                due = min(due, lane.held.ends)
            if lane.resume_at:
                due = min(due, lane.resume_at)
        if self._handed:
            return 0.0
        return due - now

    def _answer(self, flight: Flight, answer: Answer) -> None:
        """The invocation ended: count it, close what ran around it, settle the batch."""
        lane, loop = flight.lane, flight.lane.loop
        flight.answered = True
        outcome = lane.pool.end(
            flight.worker, answer, flight.started, flight.request["invocation_id"], flight.cold
        )
        ended(flight.invoke_span, outcome)
        flight.invoking.close()
        if loop.retries_alone(flight.batch, outcome):  # the slot stays taken meanwhile
            alone = contextvars.copy_context()
            threading.Thread(
                target=alone.run,
                args=(self._run_alone, flight, outcome),
                name="fanstack-retry-alone",
                daemon=True,
            ).start()
            return
        self._freed(flight)
        if not self.host.stopping.is_set():
            # The worker just freed takes a next batch before this one is settled: first one of
            # another consumer of the function, in turn, then this consumer's.
            now = time.monotonic()
            for other in self._in_turn_after(lane):
                self._fill_safely(other, now)
        loop.settle(flight.batch, outcome, flight.fields, self._deletions)
        self._close(flight, outcome)

    def _in_turn_after(self, lane: Lane) -> list[Lane]:
        """The lanes whose batches `lane`'s pool runs, from the one after `lane`, `lane` last."""
        sharing = self._sharing[id(lane.pool)]
        at = sharing.index(lane)
        return sharing[at + 1 :] + sharing[: at + 1]

    def _run_alone(self, flight: Flight, outcome: Outcome) -> None:
        """(A thread of its own.) Run the batch record by record; then the driver closes it."""
        try:
            flight.lane.loop.run_alone(flight.batch)
        except Exception:
            log.exception("batch failed unexpectedly")
        self._hand(lambda: flight.context.run(self._step, flight, self._close, flight, outcome))

    def _close(self, flight: Flight, outcome: Outcome | None) -> None:
        """The batch is settled: close its span and free its slot."""
        if outcome is not None and not outcome.ok and outcome.signal is None:
            tracing.fail(flight.span, outcome.error_summary.partition("\n")[0])
        try:
            flight.holding.close()
        finally:
            self._landed(flight)

    def _abort(self, flight: Flight) -> None:
        """A step failed on fanstack's side: let the worker go and free the slot (the messages
        come back when their visibility timeout ends)."""
        pool = flight.lane.pool
        worker = flight.worker
        if worker is not None and self._sent.get(worker.channel) is flight:
            self._unsend(worker.channel)
        with contextlib.suppress(Exception):
            if flight.begun and not flight.answered:
                flight.answered = True
                if worker is not None:
                    worker.kill()
                pool.end(worker, None, flight.started, flight.request["invocation_id"], True)
            elif not flight.begun:
                pool.give_back(worker)
            if not flight.starting:  # else `started` ends it
                flight.permit.cancel()
        with contextlib.suppress(Exception):
            flight.invoking.close()
        with contextlib.suppress(Exception):
            flight.holding.close()
        self._landed(flight)

    # -- the watchers' threads --------------------------------------------------------------

    def _watch(self, lane: Lane) -> None:
        """Long-poll the lane's queue whenever it was found empty; wake the driver when a
        message may be there (or after a poll's wait, to look again)."""
        stopping = self.host.stopping
        backend_wait = self.host.backend.wait
        while not stopping.is_set():
            if not lane.watch.wait(POLL_WAIT):
                continue
            lane.watch.clear()
            if stopping.is_set():
                return
            try:
                backend_wait(lane.loop.queue_name, POLL_WAIT)
            except FanstackError:
                log.exception("waiting for messages failed", extra={"queue": lane.loop.queue_name})
                stopping.wait(POLL_WAIT)
            lane.ready = True
            self.wake()
