"""Webhooks: what Dataverse's asynchronous service does for a step registered on a service endpoint of the webhook
contract, after the write that ran the step's message commits.

A committed Create, Update or Delete of a row finds the enabled asynchronous post-operation steps (stage 40, mode 1)
of its message and table (a step without a message filter serves every table; an Update step with filtering
attributes only when the update named one of them, whatever its value). Each becomes a system job: the execution
context (RemoteExecutionContext as JSON) POSTed over real HTTP to the endpoint's URL with the endpoint's
authentication: HttpHeader (5) sends each `<setting name value>` of authvalue as a header, WebhookKey (4) adds
`?code=<authvalue>`, HttpQueryString (6) adds the settings as query parameters. A bulk write (CreateMultiple,
UpdateMultiple, UpsertMultiple, a `$batch`) runs the message once per row, so each row gets its own post.

Jobs are delivered by a background thread (`auto`, after `delay_seconds`), or by `deliver()` in the caller's thread
(tests turn `auto` off and call it). A post that fails (no answer, or a status outside 2xx) is retried after
`retry_seconds` × the attempts so far, `max_attempts` times in all, then the job is failed and kept in `jobs` with
its error, as a failed system job is. `duplicate` and `newest_first` post each context twice and the latest first, as
the service may (it promises neither one post nor an order). `clear()` (on reset) restores every knob's default.
Synchronous steps and plug-in types are not served.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import requests

from .rules import WEBHOOK_CONTRACT
from .store import Event

if TYPE_CHECKING:
    from .simulator import DataverseSimulator

log = logging.getLogger(__name__)

WEBHOOK_KEY, HTTP_HEADER, HTTP_QUERY_STRING = 4, 5, 6
POST_OPERATION, ASYNCHRONOUS = 40, 1
CONTRACTS = "http://schemas.microsoft.com/xrm/2011/Contracts"
NO_USER = "00000000-0000-0000-0000-000000000000"
OPTION_KINDS = ("picklist", "state", "status")


@dataclass
class SystemJob:
    """One post of one step's execution context: waiting, succeeded or failed."""

    url: str
    headers: dict
    body: dict
    due: float                        # time.monotonic() when it may be sent
    status: str = "waiting"
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def _settings(authvalue: str) -> list[tuple[str, str]]:
    """`<settings><setting name="k" value="v" /></settings>` -> [(k, v)] (the HttpHeader and HttpQueryString form)."""
    try:
        root = ElementTree.fromstring(authvalue or "<settings/>")
    except ElementTree.ParseError:
        return []
    return [(s.get("name", ""), s.get("value", "")) for s in root.iter("setting") if s.get("name")]


def _wcf_date(moment: dt.datetime) -> str:
    return f"/Date({int(moment.timestamp() * 1000)})/"


class Webhooks:
    """The asynchronous service's webhook jobs for one organisation."""

    def __init__(self, sim: "DataverseSimulator"):
        self.sim = sim
        self.timeout = 10.0
        self._due = threading.Condition()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()
        self._session.trust_env = False  # a proxy from the environment must not take loopback posts
        self.clear()

    def clear(self) -> None:
        """No jobs, and the documented knobs (a test's settings do not outlive a reset)."""
        with self._due:
            self.jobs: list[SystemJob] = []     # every job made, as the system jobs list keeps them (for tests)
            self.waiting: list[SystemJob] = []  # those waiting for a post: delivery looks at these only
            self.auto = True            # a background thread delivers the jobs as they fall due
            self.delay_seconds = 0.0    # how long after the commit a job falls due
            self.retry_seconds = 1.0    # a failed post is tried again after this × the attempts made
            self.max_attempts = 3       # posts of one job before it is failed
            # the asynchronous service may post a context more than once and promises no order: `duplicate` makes
            # two jobs of each, `newest_first` delivers the latest due job first
            self.duplicate = False
            self.newest_first = False
            self._due.notify_all()

    # ------------------------------------------------------------------ jobs from committed writes

    def committed(self, events: list[Event]) -> None:
        """Called with the store locked, after a transaction commits: a job per matching step and row."""
        store = self.sim.store
        steps = [row.values for row in store.table("sdkmessageprocessingstep").rows.values()
                 if row.values.get("stage") == POST_OPERATION and row.values.get("mode") == ASYNCHRONOUS
                 and row.values.get("statecode") == 0]
        if not steps:
            return
        jobs = []
        for event in events:
            for step in steps:
                endpoint = self._endpoint_for(step, event)
                if endpoint is not None:
                    job = self._job(step, endpoint, event)
                    jobs += [job, dataclasses.replace(job, errors=[])] if self.duplicate else [job]
        if jobs:
            with self._due:
                self.jobs.extend(jobs)
                self.waiting.extend(jobs)
                self._due.notify_all()
            if self.auto:
                self._start()

    def _endpoint_for(self, step: dict, event: Event) -> dict | None:
        """The webhook endpoint `step` posts `event` to, or None when the step does not serve it."""
        store = self.sim.store
        message = store.get("sdkmessage", step.get("sdkmessageid") or "")
        if message is None or message.values.get("name") != event.message:
            return None
        if step.get("sdkmessagefilterid"):
            found = store.get("sdkmessagefilter", step["sdkmessagefilterid"])
            if found is None or found.values.get("primaryobjecttypecode") != event.table:
                return None
        filtering = {name.strip() for name in (step.get("filteringattributes") or "").split(",") if name.strip()}
        if event.message == "Update" and filtering and not filtering & set(event.target):
            return None
        endpoint = store.get("serviceendpoint", step.get("eventhandler") or "")
        if endpoint is None or endpoint.values.get("contract") != WEBHOOK_CONTRACT or not endpoint.values.get("url"):
            return None
        return endpoint.values

    def _job(self, step: dict, endpoint: dict, event: Event) -> SystemJob:
        context = self.context(step, event)
        url, headers = endpoint["url"], {
            "Content-Type": "application/json",
            "x-request-id": context["RequestId"],
            "x-ms-dynamics-organization": context["OrganizationName"],
            "x-ms-dynamics-entity-name": event.table,
            "x-ms-dynamics-request-name": event.message,
            "x-ms-correlation-request-id": context["CorrelationId"],
        }
        authtype, authvalue = endpoint.get("authtype"), endpoint.get("authvalue") or ""
        query: list[tuple[str, str]] = []
        if authtype == HTTP_HEADER:
            headers.update(_settings(authvalue))
        elif authtype == WEBHOOK_KEY:
            query.append(("code", authvalue))
        elif authtype == HTTP_QUERY_STRING:
            query += _settings(authvalue)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return SystemJob(url, headers, context, time.monotonic() + self.delay_seconds)

    def context(self, step: dict, event: Event) -> dict:
        """The execution context of `step` for `event`, as the service serialises a RemoteExecutionContext."""
        sim, store = self.sim, self.sim.store
        user_id = event.caller or NO_USER
        user = store.get("systemuser", user_id)
        user_values = user.values if user is not None else {}
        object_id = user_values.get("azureactivedirectoryobjectid") or NO_USER
        organization = store.get("organization", sim.organization_id)
        correlation = str(uuid.uuid4())
        if event.message == "Delete":
            target = self._reference(event.table, event.row_id)
        else:
            target = {"__type": f"Entity:{CONTRACTS}",
                      "Attributes": [{"key": k, "value": self._value(event, k, v)} for k, v in event.target.items()],
                      "EntityState": None, "FormattedValues": [], "Id": event.row_id, "KeyAttributes": [],
                      "LogicalName": event.table, "RelatedEntities": [], "RowVersion": str(event.version)}
        return {
            "BusinessUnitId": user_values.get("businessunitid") or sim.root_business_unit_id,
            "CorrelationId": correlation,
            "Depth": 1,
            "InitiatingUserAzureActiveDirectoryObjectId": object_id,
            "InitiatingUserId": user_id,
            "InputParameters": [{"key": "Target", "value": target}],
            "IsExecutingOffline": False,
            "IsInTransaction": False,
            "IsOfflinePlayback": False,
            "IsolationMode": 1,
            "MessageName": event.message,
            "Mode": ASYNCHRONOUS,
            "OperationCreatedOn": _wcf_date(sim.engine.now()),
            "OperationId": str(uuid.uuid4()),
            "OrganizationId": sim.organization_id,
            "OrganizationName": organization.values.get("name") if organization is not None else "",
            "OutputParameters": [{"key": "id", "value": event.row_id}] if event.message == "Create" else [],
            "OwningExtension": {"Id": step["sdkmessageprocessingstepid"], "KeyAttributes": [],
                                "LogicalName": "sdkmessageprocessingstep", "Name": step.get("name"),
                                "RowVersion": None},
            "ParentContext": None,
            "PostEntityImages": [],
            "PreEntityImages": [],
            "PrimaryEntityId": event.row_id,
            "PrimaryEntityName": event.table,
            "RequestId": str(uuid.uuid4()),
            "SecondaryEntityName": "none",
            "SharedVariables": [],
            "Stage": POST_OPERATION,
            "UserAzureActiveDirectoryObjectId": object_id,
            "UserId": user_id,
        }

    @staticmethod
    def _reference(table: str, row_id: str) -> dict:
        return {"__type": f"EntityReference:{CONTRACTS}", "Id": row_id, "KeyAttributes": [], "LogicalName": table,
                "Name": None, "RowVersion": None}

    def _value(self, event: Event, name: str, value):
        """A column's value as the data contract serialises it: references, option set values, money, dates."""
        attr = self.sim.schema[event.table].attributes.get(name)
        if value is None or attr is None:
            return value
        if attr.is_lookup:
            return self._reference(event.targets.get(name) or attr.targets[0], value)
        if attr.kind in OPTION_KINDS:
            return {"__type": f"OptionSetValue:{CONTRACTS}", "Value": value}
        if attr.kind == "money":
            return {"__type": f"Money:{CONTRACTS}", "Value": value}
        if isinstance(value, dt.datetime):
            return _wcf_date(value)
        if isinstance(value, dt.date):
            return _wcf_date(dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc))
        return value

    # ------------------------------------------------------------------ delivery

    def deliver(self, at_most: int | None = None) -> int:
        """Post every job that is due now (or `at_most` of them), in this thread; returns how many posts were made."""
        made = 0
        while at_most is None or made < at_most:
            with self._due:
                now = time.monotonic()
                due = [j for j in self.waiting if j.due <= now]
                if not due:
                    return made
                job = due[-1] if self.newest_first else due[0]
                job.status = "in progress"
                self.waiting.remove(job)
            self._post(job)
            made += 1
        return made

    def _post(self, job: SystemJob) -> None:
        job.attempts += 1
        try:
            answer = self._session.post(job.url, json=job.body, headers=job.headers, timeout=self.timeout)
            error = None if 200 <= answer.status_code < 300 else f"{answer.status_code} {answer.text[:200]}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._due:
            if error is None:
                job.status = "succeeded"
            else:
                job.errors.append(error)
                if job.attempts >= self.max_attempts:
                    job.status = "failed"
                    log.warning("webhook job to %s failed after %d attempts: %s", job.url, job.attempts, error)
                else:
                    job.status, job.due = "waiting", time.monotonic() + self.retry_seconds * job.attempts
                    self.waiting.append(job)
            self._due.notify_all()

    def _start(self) -> None:
        with self._due:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="dataverse-webhooks", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            if self.auto:
                self.deliver()
            with self._due:
                waiting = [j.due for j in self.waiting]
                pause = max(0.0, min(waiting) - time.monotonic()) if waiting and self.auto else 1.0
                self._due.wait(timeout=max(pause, 0.01))
