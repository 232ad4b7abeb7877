"""The README's configuration table is the one the code declares."""

from pathlib import Path

from shared.settings import settings_table


def test_readme_lists_every_setting_as_declared():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert settings_table() in readme
