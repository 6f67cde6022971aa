"""The README and docs/ stay short where they should, and say nothing that has stopped being true of the tree.

Checked: the README's length; every relative link (and the heading it names) in the README and docs/; prose
line length; every file path, `make` target and `flask` command the docs name; every environment variable
the configuration reads is documented.
"""

from __future__ import annotations

import glob
import inspect
import re
from pathlib import Path

import pytest

from core import config
from core.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
DOCS = sorted((PROJECT_ROOT / "docs").rglob("*.md"))
DOCUMENTS = [README, *DOCS]
README_MAX_LINES = 150
PROSE_MAX_CHARACTERS = 120

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
# A path into the tree as the docs write it: a top-level folder of the project, then a file or folder name.
TREE_PATH = re.compile(r"^(?:core|portal|admin|templates|static|migrations|tests|scripts|deploy|stack_tests|docs)/\S*$")
MAKE_COMMAND = re.compile(r"^\s*(?:[A-Z_]+=\S+\s+)*make\s+([a-z][a-z-]*)", re.M)
# Made by `make assets` (which `make run` and `make test` run first), not committed.
GENERATED = {"static/nhsuk/", "static/vendor/"}
FLASK_COMMAND = re.compile(r"`flask ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")


def relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def text_lines(path: Path, *, tables: bool = True):
    """(number, line) for each line outside fenced code blocks (and outside tables, unless `tables`)."""
    in_code = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code and (tables or not line.startswith("|")):
            yield number, line


def code_blocks(path: Path) -> str:
    return "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```", path.read_text(), re.M | re.S))


def anchors(path: Path) -> set[str]:
    """The fragment each heading gets on a rendered page: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for _, line in text_lines(path):
        heading = re.match(r"^#{1,6} (.+)$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def test_the_readme_is_a_newcomers_page_not_a_manual():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_the_docs_exist_and_the_readme_links_to_each_of_them():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(README.read_text())}
    top_level = [path for path in DOCS if path.parent == PROJECT_ROOT / "docs"]
    assert len(top_level) >= 8, top_level
    missing = [relative(path) for path in top_level if path.resolve() not in linked]
    assert missing == [], f"README.md does not link to {missing}"
    assert (PROJECT_ROOT / "docs" / "decisions" / "README.md").resolve() in linked


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_relative_link_points_at_a_file_in_the_repository(path):
    broken = []
    for _, line in text_lines(path):
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:: not a file of ours
            file_part, _, fragment = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path.resolve()
            if not destination.is_relative_to(PROJECT_ROOT.resolve()):
                broken.append(f"{target} (outside the repository)")
            elif not destination.exists():
                broken.append(f"{target} (no such file)")
            elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
                broken.append(f"{target} (no such heading)")
    assert broken == [], f"{relative(path)}: {broken}"


def test_the_link_checker_sees_a_broken_link(tmp_path, monkeypatch):
    """Guard against a checker that cannot fail."""
    monkeypatch.setattr("tests.test_docs.PROJECT_ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n[there](there.md), [up](../outside.md), [fine](#title)\n\n| a |\n| --- |\n| [here](#elsewhere) |\n"
    )
    with pytest.raises(AssertionError) as failure:
        test_every_relative_link_points_at_a_file_in_the_repository(page)
    message = str(failure.value)
    assert "there.md (no such file)" in message
    assert "../outside.md (outside the repository)" in message
    assert "#elsewhere (no such heading)" in message
    assert "#title" not in message


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_prose_lines_are_short_enough_to_read_in_a_terminal(path):
    long_lines = [number for number, line in text_lines(path, tables=False) if len(line) > PROSE_MAX_CHARACTERS]
    assert long_lines == [], f"{relative(path)}: lines over {PROSE_MAX_CHARACTERS} characters: {long_lines}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_file_the_docs_name_exists(path):
    named = {span for span in CODE_SPAN.findall(path.read_text()) if TREE_PATH.match(span)} - GENERATED
    missing = sorted(name for name in named if not glob.glob(str(PROJECT_ROOT / name.rstrip("/"))))
    assert missing == [], f"{relative(path)} names files that are not in the tree: {missing}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_make_command_the_docs_show_is_a_makefile_target(path):
    targets = set(re.findall(r"^([a-z][a-z-]*):", (PROJECT_ROOT / "Makefile").read_text(), re.M))
    shown = set(MAKE_COMMAND.findall(code_blocks(path))) | {
        match.group(1) for span in CODE_SPAN.findall(path.read_text()) if (match := MAKE_COMMAND.match(span))
    }
    assert shown - targets == set(), f"{relative(path)} shows make targets the Makefile lacks"
    if path == README:
        assert {"run", "test"} <= shown


@pytest.mark.parametrize("path", DOCUMENTS, ids=relative)
def test_every_flask_command_the_docs_name_exists(app, path):
    cli = app.cli
    with app.app_context(), cli.make_context("flask", [], resilient_parsing=True) as context:
        missing = []
        for group_name, command_name in FLASK_COMMAND.findall(path.read_text()):
            command = cli.get_command(context, group_name)
            if command is not None and command_name and hasattr(command, "get_command"):
                command = command.get_command(context, command_name)
            if command is None:
                missing.append(f"flask {group_name} {command_name}".strip())
    assert missing == [], f"{relative(path)} names commands the CLI lacks: {missing}"


def test_every_environment_variable_the_configuration_reads_is_documented():
    source = inspect.getsource(config)
    read = set(re.findall(r'os\.environ(?:\.get\(|\[)"([A-Z][A-Z0-9_]+)"', source))
    for settings_class in config.CONFIGS.values():
        read |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', inspect.getsource(settings_class.from_env)))
    read |= set(re.findall(r'"([A-Z][A-Z0-9_]+)"', inspect.getsource(config._worker_settings)))
    read -= {"SQLALCHEMY_DATABASE_URI"}  # set from DATABASE_URL and TEST_DATABASE_URL, never read itself
    assert {"SECRET_KEY", "DATABASE_URL", "PORTAL_ENV", "RECORDING_KEYS"} <= read  # the scan sees them
    documented = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    undocumented = sorted(name for name in read if f"`{name}`" not in documented)
    assert undocumented == [], f"docs/configuration.md does not explain {undocumented}"
