"""The command line's contract without services: help on everything, --json everywhere, exit codes and errors
(usage and settings) as one line or one JSON object, and a closed pipe that ends quietly."""

import argparse
import json
import subprocess
import sys
from importlib.metadata import version

import pytest

from bcsync.cli import EXIT_CODES, PIPE_CLOSED, USAGE, main, parser


def commands(p: argparse.ArgumentParser, path=("bcsync",)):
    """Every parser in the tree with its command path."""
    yield path, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def test_every_command_option_and_argument_has_help():
    missing = []
    for path, p in commands(parser()):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{' '.join(path)} {c.dest}" for c in action._choices_actions if not c.help]
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []


def test_every_command_that_runs_takes_json():
    runnable = [(path, p) for path, p in commands(parser()) if p.get_default("func")]
    assert len(runnable) > 15
    assert [path for path, p in runnable if not any("--json" in a.option_strings for a in p._actions)] == []


def test_help_shows_examples_and_exit_codes_and_version_comes_from_the_package(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0 and "examples:" in out and EXIT_CODES in out
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"bcsync {version('bcsync')}\n"


@pytest.mark.parametrize("argv, field", [
    (["runs", "--limit", "ten"], "--limit"),
    (["nope"], "COMMAND"),
    (["mappings", "set", "CUSTOMER", "--direction", "sideways"], "--direction"),
    (["couple", "CUSTOMER", "--bc", "1"], ""),
])
def test_bad_usage_exits_2_with_argparse_words_or_one_json_object(capsys, argv, field):
    assert main(argv) == USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: bcsync") and "error: " in err.splitlines()[-1]
    for at in (0, len(argv)):  # --json before or after the command
        assert main([*argv[:at], "--json", *argv[at:]]) == USAGE
        out, err = capsys.readouterr()
        [line] = err.splitlines()
        shown = json.loads(line)
        assert out == "" and shown["error"] and shown.get("field", "") == field, shown


MALFORMED_STORAGE = ["AccountName=x;AccountKey=bm90IGEga2V5;EndpointSuffix=", "garbage",
                     "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:9",
                     "AccountName=x;AccountKey=bad key!"]


@pytest.mark.parametrize("connection", MALFORMED_STORAGE)
def test_a_malformed_storage_connection_string_is_one_line_and_exit_2(capsys, tmp_path, connection):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"Values": {"AzureWebJobsStorage": connection}}))
    assert main(["--settings", str(settings), "mappings"]) == USAGE
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("bcsync: SettingsError: AzureWebJobsStorage: the value (a secret, not shown)")
    assert len(err.splitlines()) == 1 and connection not in err
    assert main(["--settings", str(settings), "mappings", "--json"]) == USAGE
    shown = json.loads(capsys.readouterr().err)
    assert shown["code"] == "SettingsError" and shown["field"] == "AzureWebJobsStorage"


def test_settings_as_a_table_or_json(capsys):
    assert main(["settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["setting", "default", "required", "meaning"]
    assert all(line == line.rstrip() for line in lines)   # piped: no padding after the last column
    assert main(["settings", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {"setting": "BCSYNC_PAGE_SIZE", "default": 20000, "required": False} .items() <= rows[
        [r["setting"] for r in rows].index("BCSYNC_PAGE_SIZE")].items()
    assert len(lines) - 2 == len(rows)                    # one line per setting, never wrapped when piped


@pytest.mark.parametrize("argv", [["settings"], ["settings", "--json"]])
def test_a_reader_that_went_away_ends_quietly(argv):
    """`bcsync settings | head -0`: the reader is gone before bcsync writes."""
    proc = subprocess.Popen([sys.executable, "-m", "bcsync", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == PIPE_CLOSED and err == ""
