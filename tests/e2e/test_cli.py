"""The command line against the local stack: live progress during --wait on a terminal and none when piped,
exit codes of a run, JSON errors, and Ctrl-C or a closed pipe ending without a traceback."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

from rich.console import Console

import bcsync.console
from bcsync.cli import FAILED, INTERRUPTED, OK, PIPE_CLOSED, USAGE
from sync.config import MappingOverride
from sync.runs import JobStatus, RunStatus

CUSTOMERS = 60


def seed(env, n=CUSTOMERS):
    env.bc.seed("customers", [{"number": f"C{i:04}", "displayName": f"Customer {i}"} for i in range(n)])


def test_wait_shows_each_jobs_progress_on_a_terminal(env, cli, monkeypatch):
    seed(env)
    env.configure(BCSYNC_PAGE_SIZE=10)  # several pages, so that counts move while the job runs
    env.dv.faults.latency_ms = 150      # each page's write outlasts the display's refresh, even on a busy machine
    screen = io.StringIO()
    monkeypatch.setattr(bcsync.console, "terminal", lambda: Console(file=screen, force_terminal=True, width=100))
    code, _, err = cli("fullsync", "--mapping", "CUSTOMER", "--wait")
    assert code == OK, err
    shown = screen.getvalue()
    assert "\x1b[" in shown                                        # drawn for a terminal
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert "jobs finished, now CUSTOMER:to-crm" in text
    # live counts: the rows read while CUSTOMER:to-crm runs grow page by page, before the job is done
    rows = [line.split() for line in text.splitlines() if line.startswith("CUSTOMER:to-crm")]
    reads = sorted({int(row[2]) for row in rows if row[1] == "running"})
    assert len([r for r in reads if 0 < r < CUSTOMERS]) >= 2, reads
    # the final report follows the live view, which is cleared
    report = shown[shown.rindex("Run "):]
    assert ": done" in report.splitlines()[0] and "inserted" in report


def test_wait_piped_prints_the_final_report_only(env, cli):
    seed(env, 5)
    code, out, err = cli("fullsync", "--mapping", "CUSTOMER", "--wait")
    assert code == OK, err
    assert "\x1b[" not in out and "jobs finished" not in out and "jobs finished" not in err
    lines = out.splitlines()
    assert lines[0].startswith("Run ") and lines[0].endswith(": done")
    header = lines[1].split()
    assert header[:3] == ["job", "status", "inserted"]
    [row] = [line for line in lines if line.startswith("CUSTOMER:to-crm ")]
    assert row.split()[1:3] == ["done", "5"]
    code, out, _ = cli("fullsync", "--mapping", "CUSTOMER", "--wait", "--json")
    assert code == OK and json.loads(out)["status"] == "done"


def test_a_failed_run_exits_1_and_an_unknown_name_2(env, cli):
    seed(env, 1)
    env.services.mapping_config.save("CUSTOMER", MappingOverride(bc_filter="displayName eq"))  # never probed
    code, out, _ = cli("sync", "--mapping", "CUSTOMER", "--wait", "--json")
    assert code == FAILED and json.loads(out)["status"] == "failed"
    code, out, err = cli("mappings", "show", "NOPE", "--json")
    assert code == USAGE and out == ""
    assert json.loads(err) == {"error": "There is no table mapping named NOPE.", "field": "name"}
    code, out, err = cli("couple", "CUSTOMER", "--bc", "00000000-0000-0000-0000-000000000001", "--crm",
                         "00000000-0000-0000-0000-000000000002", "--json")
    shown = json.loads(err)
    assert code == USAGE and out == "" and "There is no Customer with id" in shown["error"] and shown["code"]
    code, out, err = cli("status", "20000101-000000-abcdef")
    assert code == USAGE and err == "bcsync: There is no run 20000101-000000-abcdef.\n"


def spawn(env, tmp_path, *args, **popen):
    settings = tmp_path / "cli.settings.json"
    settings.write_text(json.dumps({"Values": env.values}))
    return subprocess.Popen([sys.executable, "-m", "bcsync", "--settings", str(settings), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_mappings_into_a_closed_pipe_ends_quietly(env, tmp_path):
    proc = spawn(env, tmp_path, "mappings")
    proc.stdout.close()
    assert proc.wait(timeout=120) == PIPE_CLOSED and proc.stderr.read() == b""


def test_ctrl_c_during_wait_says_the_run_goes_on_and_how_to_follow_it(env, tmp_path):
    seed(env, 200)
    env.configure(BCSYNC_PAGE_SIZE=10, BCSYNC_JOB_LEASE_SECONDS=5)
    proc = spawn(env, tmp_path, "fullsync", "--mapping", "CUSTOMER", "--wait")
    deadline = time.monotonic() + 120
    while not any(j.status is JobStatus.RUNNING and j.counts.inserted
                  for r in env.services.runs.list_runs() for j in env.services.runs.jobs(r.run_id)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    [run] = env.services.runs.list_runs()
    assert proc.returncode == INTERRUPTED and out == b"", err
    [line] = err.decode().splitlines()
    assert line.startswith(f"bcsync: interrupted. Run {run.run_id} goes on in the background") and \
        f"`bcsync status {run.run_id}`" in line
    # and it does: a worker finishes it once the interrupted job's lease runs out
    assert run.status is RunStatus.RUNNING
    finished = lambda: env.services.runs.get(run.run_id).status is not RunStatus.RUNNING
    assert env.worker.run_until(finished, timeout=120, recover_every=1)
    assert env.services.runs.get(run.run_id).status is RunStatus.DONE
    assert len(env.dv.rows("account")) == 200


def test_ctrl_c_stops_the_worker_with_one_line(env, tmp_path):
    proc = spawn(env, tmp_path, "worker", "--json")
    time.sleep(8 if os.cpu_count() and os.cpu_count() < 4 else 4)  # past start-up: waiting on the queue
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == INTERRUPTED and out == b"" and json.loads(err) == {"error": "interrupted."}
