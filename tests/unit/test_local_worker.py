"""The local worker handles up to `concurrency` queue messages at once, as the Functions host does."""

from __future__ import annotations

import base64
import threading
import time
from types import SimpleNamespace

from bcsync.worker import LocalWorker
from shared.queue import Delivery


class FakeQueue:
    def __init__(self, messages: int):
        self.waiting = [Delivery(base64.b64encode(f"m{i}".encode()).decode(), 1, f"m{i}", "r") for i in range(messages)]
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def receive(self, visibility_timeout: int, max_messages: int = 16):
        with self.lock:
            taken, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        return iter(taken)

    def delete(self, delivery: Delivery) -> None:
        with self.lock:
            self.deleted.append(delivery.id)

    def poison_queue(self) -> "FakeQueue":
        return self


def worker(messages: int, concurrency: int) -> tuple[LocalWorker, FakeQueue, list[int]]:
    """A worker whose every message takes 0.1 s; the list holds the number in hand at each start."""
    queue, in_hand, lock = FakeQueue(messages), [], threading.Lock()
    running = 0

    def handle(body: bytes) -> None:
        nonlocal running
        with lock:
            running += 1
            in_hand.append(running)
        time.sleep(0.1)
        with lock:
            running -= 1

    services = SimpleNamespace(settings=SimpleNamespace(job_lease_seconds=60), queue=queue,
                               handle_message=handle, coordinator=None)
    return LocalWorker(services, poll_seconds=0.01, concurrency=concurrency), queue, in_hand


def test_messages_are_handled_side_by_side_up_to_the_concurrency():
    local, queue, in_hand = worker(8, concurrency=4)
    assert local.run_until(lambda: not queue.waiting, timeout=10)
    assert sorted(queue.deleted) == sorted(f"m{i}" for i in range(8)) and local.handled == 8
    assert max(in_hand) == 4


def test_one_at_a_time_by_default():
    local, queue, in_hand = worker(3, concurrency=1)
    assert local.run_until(lambda: not queue.waiting, timeout=10)
    assert len(queue.deleted) == 3 and max(in_hand) == 1


def test_while_jobs_run_an_empty_queue_is_looked_at_less_and_less_often():
    local, queue, _ = worker(1, concurrency=4)
    looks, receive = [], queue.receive

    def counted(*args, **kwargs):
        looks.append(time.monotonic())
        return receive(*args, **kwargs)

    queue.receive = counted
    local.services.handle_message = lambda body: time.sleep(1.5)   # one long job, nothing else queued
    assert local.run_until(lambda: not queue.waiting and queue.deleted, timeout=10)
    # every 0.01 s that would be about 150 looks; backing off to MAX_POLL_SECONDS, about 10
    assert len(looks) < 20


def test_the_timeout_holds_while_jobs_run():
    local, queue, _ = worker(40, concurrency=4)   # 40 messages of 0.1 s, 4 at a time: a second of work
    started = time.monotonic()
    assert not local.run_until(lambda: False, timeout=0.25)
    assert time.monotonic() - started < 0.6
    assert len(queue.waiting) >= 20                 # no message was taken after the timeout


def test_the_timeout_holds_between_messages_one_at_a_time():
    local, queue, _ = worker(20, concurrency=1)   # two seconds of work, one message after the other
    started = time.monotonic()
    assert not local.run_until(lambda: False, timeout=0.25)
    assert time.monotonic() - started < 0.6 and len(queue.waiting) >= 15
