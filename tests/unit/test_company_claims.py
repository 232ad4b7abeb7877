"""The Dataverse endpoint of one of several companies claims the rows of no company it coupled: in `$batch`es the
service takes, on the version read, and a row it cannot claim is that row's problem (a unit test of the endpoint,
on a recording stand-in for the Web API client)."""

from __future__ import annotations

import re

from shared.dataverse import (BATCH_MAX, COMPANY_BIND, COMPANY_VALUE, PATCH_BATCH_MAX, UNCLAIMED_KEPT, CompanyRow,
                              DataverseEndpoint, Inner)
from sync.ports import CLAIM_TAKEN
from sync.tables import CRM_ACCOUNT

MINE, THEIRS = "c0000000-0000-4000-8000-000000000001", "c0000000-0000-4000-8000-000000000002"


def row_id(n: int) -> str:
    return f"a0000000-0000-4000-8000-{n:012d}"


class Client:
    """Rows of `account` by id ({COMPANY_VALUE, version}), this company's bcbi_company row, and what was sent."""

    def __init__(self, rows: dict[str, dict], answers: dict[str, tuple[int, dict]] | None = None):
        self.rows, self.answers = rows, answers or {}
        self.batches: list[list[Inner]] = []
        self.reads: list[str] = []

    def pages(self, entity_set, *, select, filter="", orderby="", page_size=500, lookup_types=False, top=None):
        self.reads.append(entity_set)
        if entity_set == "bcbi_companies":
            yield [{"bcbi_companyid": MINE}]
            return
        wanted = {i.lower() for i in re.findall(r"'([0-9a-f-]{36})'", filter)}
        yield [{"accountid": i, COMPANY_VALUE: r[COMPANY_VALUE], "@odata.etag": r["version"]}
               for i, r in self.rows.items() if i in wanted]

    def patch(self, entity_set, row, body, *, etag, select, lookup_types=False):
        return Inner("PATCH", f"{entity_set}({row})", {"If-Match": etag or "*"}, body)

    def batch(self, requests):
        assert len(requests) <= BATCH_MAX, "the service refuses a $batch of more requests"
        self.batches.append(list(requests))
        answers = []
        for request in requests:
            row = self.rows[request.url.split("(")[1].rstrip(")")]
            if request.url.split("(")[1].rstrip(")") in self.answers:
                answers.append(self.answers[request.url.split("(")[1].rstrip(")")])
            elif request.headers["If-Match"] not in ("*", row["version"]):
                answers.append((412, {"error": {"code": "0x80060882", "message": "The version does not match."}}))
            else:
                bound = request.body[COMPANY_BIND]
                row[COMPANY_VALUE] = bound and bound.split("(")[1].rstrip(")")
                row["version"] = f'W/"{int(row["version"][3:-1]) + 1}"'
                answers.append((200, {"accountid": request.url}))
        return answers


def endpoint(client: Client) -> DataverseEndpoint:
    return DataverseEndpoint(client, company=CompanyRow(MINE, lambda: "CRONUS"))


def read(crm: DataverseEndpoint, client: Client) -> None:
    """The rows as a job reads them, which tells the endpoint which ones have no company."""
    for i, r in client.rows.items():
        crm._record(CRM_ACCOUNT, {"accountid": i, COMPANY_VALUE: r[COMPANY_VALUE], "@odata.etag": r["version"]}, [])


def test_a_page_of_more_rows_than_a_batch_takes_is_claimed_in_batches():
    client = Client({row_id(n): {COMPANY_VALUE: None, "version": 'W/"1"'} for n in range(2 * BATCH_MAX + 1)})
    crm = endpoint(client)
    read(crm, client)
    assert not crm.claim(CRM_ACCOUNT, list(client.rows))
    assert all(r[COMPANY_VALUE] == MINE for r in client.rows.values())
    assert max(len(b) for b in client.batches) <= PATCH_BATCH_MAX


def test_a_row_that_cannot_be_claimed_is_its_own_problem_and_a_read_only_one_only_logged(caplog):
    closed, refused, fine = row_id(1), row_id(2), row_id(3)
    client = Client({i: {COMPANY_VALUE: None, "version": 'W/"1"'} for i in (closed, refused, fine)}, answers={
        closed: (400, {"error": {"code": "0x8004022e", "message": "The object cannot be updated because it is "
                                                                  "read-only."}}),
        refused: (403, {"error": {"code": "0x80040220", "message": "No Write privilege."}})})
    crm = endpoint(client)
    read(crm, client)
    problems = crm.claim(CRM_ACCOUNT, [closed, refused, fine])
    assert list(problems) == [refused] and problems[refused].field == "bcbi_companyid"
    assert refused in problems[refused].message and "No Write privilege" in problems[refused].message
    assert client.rows[fine][COMPANY_VALUE] == MINE and client.rows[closed][COMPANY_VALUE] is None
    assert f"the account {closed} keeps its company" in caplog.text


def test_a_row_is_claimed_on_the_version_read_and_one_another_company_took_is_not_taken_from_it():
    taken, edited, fine = row_id(1), row_id(2), row_id(3)
    client = Client({i: {COMPANY_VALUE: None, "version": 'W/"1"'} for i in (taken, edited, fine)})
    crm = endpoint(client)
    read(crm, client)
    # meanwhile another company claimed one row, and a user changed another (still no company's)
    client.rows[taken].update({COMPANY_VALUE: THEIRS, "version": 'W/"2"'})
    client.rows[edited]["version"] = 'W/"2"'
    problems = crm.claim(CRM_ACCOUNT, [taken, edited, fine])
    assert list(problems) == [taken] and problems[taken].code == CLAIM_TAKEN
    assert "another company took it" in problems[taken].message and problems[taken].field == "bcbi_companyid"
    assert {i: r[COMPANY_VALUE] for i, r in client.rows.items()} == {taken: THEIRS, edited: MINE, fine: MINE}
    assert [r.headers["If-Match"] for r in client.batches[0]] == ['W/"1"'] * 3


def test_the_rows_kept_for_their_claim_are_bounded():
    client = Client({row_id(n): {COMPANY_VALUE: None, "version": 'W/"1"'} for n in range(UNCLAIMED_KEPT + 10)})
    crm = endpoint(client)
    read(crm, client)
    assert len(crm._unclaimed) == UNCLAIMED_KEPT and row_id(0) not in crm._unclaimed


def test_a_missing_company_row_is_looked_for_once_per_job_and_made_by_the_first_write():
    client = Client({})
    client.pages = lambda entity_set, **_: (client.reads.append(entity_set), iter([[]]))[1]
    made = []
    client.create = lambda entity_set, body: made.append(body)
    crm = endpoint(client)
    for _ in range(3):
        assert crm._company_filter(CRM_ACCOUNT) == f"{COMPANY_VALUE} eq null"
    assert client.reads == ["bcbi_companies"]
    crm.job_started()
    crm._company_filter(CRM_ACCOUNT)
    assert client.reads == ["bcbi_companies"] * 2
    crm.company_row_id()  # a write: looked for again, then made
    assert len(made) == 1 and client.reads == ["bcbi_companies"] * 4
