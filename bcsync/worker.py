"""A local stand-in for the Functions host's queue trigger.

It takes messages from the same queue and hands them to the same handler as `run_job` in
function_app.py, with the host's rules: a message that is not base64 moves to the poison queue at once
(the host's queue extension does the same), a message whose handling raises becomes visible again and is
retried, and after MAX_DEQUEUE_COUNT deliveries it moves to the poison queue. A message that can never
work is moved there by the handler itself (Services.handle_message).
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable

from shared.queue import Delivery
from shared.telemetry import submit_in_context
from shared.wiring import Services

log = logging.getLogger("bcsync.worker")

MAX_DEQUEUE_COUNT = 5      # host.json extensions.queues.maxDequeueCount
# While jobs run, an empty queue is looked at less and less often, up to this (the host backs off likewise): a job
# that becomes ready when another ends runs in that job's delivery (RunCoordinator.handle), not after a poll.
MAX_POLL_SECONDS = 0.5


class LocalWorker:
    """`concurrency` messages are handled at once, as the host does (host.json queues.batchSize): jobs whose
    dependencies are done run side by side, each mapping's lease keeping two jobs of one mapping apart."""

    def __init__(self, services: Services, poll_seconds: float = 0.5, concurrency: int = 1):
        self.services = services
        self.concurrency = concurrency
        # a message stays hidden while its job may run (the host renews visibility the same way)
        self.visibility = services.settings.job_lease_seconds
        self.queue = services.queue
        self.poison = self.queue.poison_queue()
        self.poll_seconds = poll_seconds
        self.handled = 0

    def step(self) -> int:
        """Handle what is visible on the queue now; returns how many messages were taken."""
        taken = 0
        for delivery in self.queue.receive(visibility_timeout=self.visibility, max_messages=1):
            taken += 1
            self._take(delivery)
        return taken

    def _take(self, delivery: Delivery) -> None:
        body = delivery.body
        if body is None or delivery.dequeue_count > MAX_DEQUEUE_COUNT:
            log.error("message %s moved to the poison queue %s", delivery.id,
                      "at once: it is not base64" if body is None else f"after {delivery.dequeue_count - 1} deliveries")
            self.queue.move_to_poison(delivery, self.poison)
            return
        try:
            self.services.handle_message(body)
        except Exception:
            log.exception("handling message %s failed; it will be delivered again", delivery.id)
            return
        self.queue.delete(delivery)
        self.handled += 1

    def _step_concurrently(self, pool: ThreadPoolExecutor, running: set[Future]) -> int:
        """Start what is visible on the queue, up to the free places; returns how many messages it took."""
        free, taken = self.concurrency - len(running), 0
        for delivery in self.queue.receive(visibility_timeout=self.visibility, max_messages=free) if free else ():
            running.add(submit_in_context(pool, self._take, delivery))
            taken += 1
        return taken

    def run_until(self, done: Callable[[], bool], timeout: float | None = None,
                  on_idle: Callable[[], None] | None = None, recover_every: float = 60.0) -> bool:
        """Work until `done()` says so (checked whenever the queue is empty). False on timeout, which is checked
        between messages and while jobs run: no message is taken after it, and this returns without waiting for
        the jobs in hand (one handled without threads, concurrency 1, ends first). Those go on in the pool's
        threads, each until it ends or reaches its time budget (BCSYNC_JOB_TIME_BUDGET_SECONDS); the threads are
        not daemons, so a process that returns from here still waits for them before it exits, and a caller that
        closes what the jobs use right after (the queue, the storage clients) closes it under them. A job cut short
        that way is taken over when its lease runs out, as after a crash. No CLI command sets a timeout.

        While idle it also does the timer's recovery now and then, so a job stranded by a crashed
        worker is picked up again rather than waited on for ever."""
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") if self.concurrency > 1 else None
        try:
            return self._work(pool, done, timeout, on_idle, recover_every)
        finally:
            if pool is not None:
                pool.shutdown(wait=False)

    def _work(self, pool: ThreadPoolExecutor | None, done: Callable[[], bool], timeout: float | None,
              on_idle: Callable[[], None] | None, recover_every: float) -> bool:
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        last_recovery = time.monotonic()
        running: set[Future] = set()
        poll = self.poll_seconds
        while time.monotonic() <= deadline:
            if pool is not None:
                taken = self._step_concurrently(pool, running)
                poll = self.poll_seconds if taken else min(poll * 2, max(MAX_POLL_SECONDS, self.poll_seconds))
            if pool is not None and running:
                finished, running_now = wait(running, timeout=min(poll, max(deadline - time.monotonic(), 0)),
                                             return_when=FIRST_COMPLETED)
                running.intersection_update(running_now)
                for future in finished:
                    future.result()  # what stops a worker (a BaseException) stops this one too
                if finished:
                    poll = self.poll_seconds  # what ended may have queued more
            elif pool is not None or self.step() == 0:
                if done():
                    return True
                if on_idle:
                    on_idle()
                if time.monotonic() - last_recovery > recover_every:
                    self.services.recover()
                    last_recovery = time.monotonic()
                time.sleep(max(min(self.poll_seconds, deadline - time.monotonic()), 0))
        return False
