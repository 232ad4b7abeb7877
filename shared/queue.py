"""The job queue on Azure Queue Storage.

Messages are base64-encoded, which is what the Functions queue trigger expects by default
(`messageEncoding: base64`); a message sent here is accepted by the trigger in function_app.py.
The encoding is done here rather than by the SDK's policies: those decode a whole batch at once and fail it
for one message that is not base64, without saying which, so that message could never be moved aside.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Iterator

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from sync.runs import JobMessage

from .storage import StorageAccount, counting_responses, storage_errors

MESSAGE_TTL_SECONDS = -1  # never expire: a run must not silently lose a job


class StorageJobQueue:
    def __init__(self, account: StorageAccount, queue_name: str):
        self.account = account
        self.name = queue_name
        self.client = account.queue_client(queue_name, raw_response_hook=counting_responses("Queue Storage"))
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with storage_errors():
                try:
                    self.client.create_queue()
                except ResourceExistsError:
                    pass
            self._ready = True

    def send(self, message: JobMessage, delay_seconds: int = 0) -> None:
        self._send(message.to_json().encode("utf-8"), delay_seconds)

    def _send(self, body: bytes, delay_seconds: int = 0) -> None:
        self._ensure()
        with storage_errors():
            self.client.send_message(base64.b64encode(body).decode("ascii"), visibility_timeout=delay_seconds or None,
                                     time_to_live=MESSAGE_TTL_SECONDS)

    def receive(self, visibility_timeout: int, max_messages: int = 16) -> Iterator["Delivery"]:
        """For the local worker, which stands in for the Functions host."""
        self._ensure()
        with storage_errors():
            messages = list(self.client.receive_messages(max_messages=max_messages, visibility_timeout=visibility_timeout))
        for m in messages:
            yield Delivery(m.content, m.dequeue_count or 1, m.id, m.pop_receipt)

    def delete(self, delivery: "Delivery") -> None:
        with storage_errors():
            try:
                self.client.delete_message(delivery.id, delivery.pop_receipt)
            except ResourceNotFoundError:
                pass  # its visibility ran out and another worker took it; that worker deletes it
            except HttpResponseError as exc:
                if exc.error_code != "PopReceiptMismatch":
                    raise
                # the same, while the other delivery still holds it: the service answers 400, not 404

    def poison_queue(self) -> "StorageJobQueue":
        """Where the host (and the local worker) moves a message that failed too often, or can never work."""
        return StorageJobQueue(self.account, f"{self.name}-poison")

    def poison(self, body: bytes) -> None:
        """A message's body put on the poison queue, as the host would move the message there."""
        self.poison_queue()._send(body)

    def move_to_poison(self, delivery: "Delivery", poison: "StorageJobQueue") -> None:
        """The message itself, as it is (base64 or not), then deleted here."""
        poison._ensure()
        with storage_errors():
            poison.client.send_message(delivery.content, time_to_live=MESSAGE_TTL_SECONDS)
        self.delete(delivery)


@dataclass(frozen=True)
class Delivery:
    content: str       # the message as stored
    dequeue_count: int
    id: str
    pop_receipt: str

    @property
    def body(self) -> bytes | None:
        """The content base64-decoded, as the host hands it to the trigger; None when it is not base64."""
        try:
            return base64.b64decode(self.content or "", validate=True)
        except (binascii.Error, ValueError):
            return None
