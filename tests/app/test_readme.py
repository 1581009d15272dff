"""The README's configuration table must list exactly the settings that exist."""

from __future__ import annotations

from scripts.config_table import README, readme_with_table


def test_readme_configuration_table_matches_settings():
    readme = README.read_text()
    assert readme == readme_with_table(readme), (
        "README.md's configuration table is out of date: "
        "run `.venv/bin/python -m scripts.config_table --write`."
    )
