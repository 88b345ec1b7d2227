"""The docs name only what exists (issue 19, finding 7): logger names, log lines, ``AUTH_*``
variables, methods and the extras' dependencies, checked against the code.

What counts as a quote, so that a page can be written to be checked:

* **A logger name**: ``logger=NAME`` in a log line; the first code span of a table's ``logger``
  column; a code span after "logger", "line(s) from" or "logged ... by" in prose.
* **A log line**: a line of a fenced block that starts with ``level=`` or ``time=``
  (its ``level``, ``logger``, ``msg`` and ``error`` fields); the first code span of a table whose
  first column is headed "log line" (the logger column may hold the ``msg`` as a second code
  span, then the first column shows the ``error`` and is not checked); in prose, a code span
  after "line from `LOGGER`:", after "by `LOGGER` as", or followed by a level in parentheses,
  "`text` (INFO)".
  A text matches the code when a string literal of the logger's module (of any module when no
  logger is named) starts with the text's head (the text up to the first ``...``, ``…`` or
  upper-case placeholder such as ``CHECK``), or is itself the head of the text (a message that
  the code formats further). ``level`` must be a level the example's log formatter writes.
* **A variable**: any ``AUTH_NAME`` (``AUTH_PREFIX_*`` for a family) must be a library setting
  (``compass_auth.settings.VARIABLES``) or one the example service reads itself.
* **A method**: a code span ``Class.member`` or ``Class.member(...)`` whose class is one of this
  repository's, ``obj.member(...)`` for the objects below, ``module.name(...)`` for an importable
  module: the member must exist. The testing README's API tables: each ``call(...)`` and bare
  name is a member of ``DevCluster`` (``OidcIssuer`` in its table), and the constructor's
  parameters are the class's.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import logging
import pkgutil
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

import compass_auth
import service
from compass_auth.settings import VARIABLES
from compass_auth.testing import DevCluster, OidcIssuer

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md"),
                ROOT / "compass_auth" / "testing" / "README.md",
                ROOT / "examples" / "downstream" / "README.md"])
CODE_ROOTS = {"compass_auth": ROOT / "compass_auth", "service": ROOT / "service"}

_FENCE = re.compile(r"^ {0,3}(```|~~~).*?^ {0,3}\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_LOG_LINE = re.compile(r"^\s*#?\s*(?:time=\S+\s+)?level=\S+.*$", re.MULTILINE)
_FIELD = r'{}=("(?:[^"\\]|\\.)*"|\S+)'
_LEVEL_AFTER = re.compile(r"^\s*\((?:DEBUG|INFO|WARN|WARNING|ERROR)\b")
#: Upper-case words that stand for a value in a quoted line (``CHECK for SUBJECT``).
_PLACEHOLDER = re.compile(r"\.\.\.|…|\b(?:CHECK|SUBJECT|PATH|NS|NAME|ACCOUNT|X|Y|N)\b")
#: Objects the docs name by a variable, and their classes.
OBJECTS = {"authenticator": "Authenticator", "devcluster": "DevCluster", "cluster": "DevCluster",
           "settings": "AuthSettings", "identity": "Identity", "self.identity": "Identity"}


def page_name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def prose(page: Path) -> str:
    """The page without fenced blocks."""
    return _FENCE.sub("", page.read_text())


def spans(text: str) -> Iterator[re.Match[str]]:
    """Code spans; group 2 is the content."""
    return _CODE_SPAN.finditer(text)


def span_text(match: re.Match[str]) -> str:
    return " ".join(match.group(2).split())


def fenced_log_lines(page: Path) -> list[str]:
    lines: list[str] = []
    for block in _FENCE.finditer(page.read_text()):
        lines += [line.strip().lstrip("#").strip() for line in _LOG_LINE.findall(block.group(0))]
    return lines


def field(line: str, name: str) -> str | None:
    match = re.search(r"(?:^|\s)" + _FIELD.format(re.escape(name)), line)
    if match is None:
        return None
    value = match.group(1)
    return value[1:-1].replace('\\"', '"') if value.startswith('"') else value


def split_cells(row: str) -> list[str]:
    """A table row's cells; a ``|`` inside a code span or escaped does not split."""
    cells, current, index = [], "", 0
    row = row.strip().strip("|")
    while index < len(row):
        char = row[index]
        if char == "`":
            run = re.match(r"`+", row[index:])
            assert run is not None
            close = row.find(run.group(0), index + len(run.group(0)))
            if close != -1:
                current += row[index:close + len(run.group(0))]
                index = close + len(run.group(0))
                continue
        if char == "\\" and row[index + 1:index + 2] == "|":
            current += "|"
            index += 2
            continue
        if char == "|":
            cells.append(current.strip())
            current = ""
        else:
            current += char
        index += 1
    cells.append(current.strip())
    return cells


def tables(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Each table as its header cells and its rows' cells."""
    lines = text.splitlines()
    index = 0
    while index < len(lines) - 1:
        if lines[index].lstrip().startswith("|") and re.match(r"^\s*\|[\s:|-]+\|\s*$",
                                                              lines[index + 1]):
            header = [cell.lower() for cell in split_cells(lines[index])]
            rows = []
            index += 2
            while index < len(lines) and lines[index].lstrip().startswith("|"):
                rows.append(split_cells(lines[index]))
                index += 1
            yield header, rows
        else:
            index += 1


# --- what the code has -----------------------------------------------------------------------


def code_modules() -> Iterator[tuple[str, Path]]:
    for package, folder in CODE_ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


@cache
def module_strings() -> dict[str, tuple[str, ...]]:
    """Each module's string literals, f-strings as their literal parts (in order)."""
    found: dict[str, tuple[str, ...]] = {}
    for name, path in code_modules():
        strings: list[str] = []
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                strings += [part.value for part in node.values
                            if isinstance(part, ast.Constant) and isinstance(part.value, str)]
        found[name] = tuple(strings)
    return found


@cache
def loggers() -> frozenset[str]:
    """Logger names the code creates: ``getLogger(__name__)`` and ``getLogger("name")``."""
    names = set()
    for name, path in code_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger"
                    and node.args):
                argument = node.args[0]
                if isinstance(argument, ast.Name) and argument.id == "__name__":
                    names.add(name)
                elif isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    names.add(argument.value)
    return frozenset(names)


@cache
def written_levels() -> frozenset[str]:
    """The ``level`` values the example's logfmt/JSON formatter writes."""
    from service.logs import record_fields

    levels = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)
    return frozenset(record_fields(logging.LogRecord("x", level, "", 0, "", (), None))["level"]
                     for level in levels)


@cache
def variables() -> frozenset[str]:
    """Library settings, and the ``AUTH_*`` names the example service reads itself."""
    names = {variable.name for variable in VARIABLES}
    for name, strings in module_strings().items():
        if name.startswith("service"):
            names.update(s for s in strings if re.fullmatch(r"AUTH_[A-Z0-9_]+", s))
    return frozenset(names)


@cache
def classes() -> dict[str, list[type]]:
    """Every class defined in this repository's packages, by name."""
    found: dict[str, list[type]] = {}
    for package in (compass_auth, service):
        modules: list[ModuleType] = [package]
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            modules.append(importlib.import_module(info.name))
        for module in modules:
            for name, value in vars(module).items():
                if (inspect.isclass(value) and value.__module__ == module.__name__
                        and value not in found.get(name, [])):
                    found.setdefault(name, []).append(value)
    return found


def has_member(owner: object, member: str) -> bool:
    if hasattr(owner, member):
        return True
    return dataclasses.is_dataclass(owner) and member in {
        field.name for field in dataclasses.fields(owner)}


# --- what a page says --------------------------------------------------------------------------


def head(text: str) -> str:
    """The text up to its first placeholder (``...``, ``CHECK``...)."""
    return _PLACEHOLDER.split(text, maxsplit=1)[0].strip()


#: A literal this long that starts a quoted error text is the code's own words; the rest of the
#: quote is what the code formatted in (a claim value, the API server's answer).
MIN_FORMATTED_PREFIX = 12


def quotes_literal(quoted: str, literal: str) -> bool:
    """Whether a quoted error text is, or begins with, one of the code's string literals."""
    return quoted in literal or (len(literal) >= MIN_FORMATTED_PREFIX
                                 and quoted.startswith(literal))


def logged_by(text: str, logger: str | None) -> bool:
    """Whether a string literal of the logger's module (any module for None) starts with the
    quoted text's head, or is the head of it (the code formats the rest)."""
    start = head(text)
    if not start:
        return True  # nothing literal to check ("..." alone)
    modules = [logger] if logger is not None else list(module_strings())
    for module in modules:
        for literal in module_strings().get(module, ()):
            literal = literal.strip()
            if literal.startswith(start):
                return True
            if (len(literal) >= 8 and start.startswith(literal)
                    and not start[len(literal):len(literal) + 1].isalnum()):
                return True
    return False


def quoted_log_lines(page: Path) -> Iterator[tuple[str | None, str]]:
    """(logger or None, text) for every log line a page quotes outside log examples."""
    text = prose(page)
    flat = " ".join(text.split())
    default = re.search(r"[Ll]ines come from the logger `([\w.]+)`", flat)
    for header, rows in tables(text):
        if not header or not header[0].startswith("log line"):
            continue
        column = header.index("logger") if "logger" in header else None
        for cells in rows:
            quoted = [span_text(m) for m in spans(cells[0])]
            logger = default.group(1) if default else None
            if column is not None and column < len(cells):
                named = [span_text(m) for m in spans(cells[column])]
                logger = named[0] if named else logger
                if len(named) > 1:  # the msg; the first column shows the error
                    yield logger, named[1]
                    continue
            if quoted:
                yield logger, quoted[0]
    for match in re.finditer(r"line from `([\w.]+)`:\s*`([^`]+)`", flat):
        yield match.group(1), match.group(2)
    for match in re.finditer(r"by `([\w.]+)` as `([^`]+)`", flat):
        yield match.group(1), match.group(2)
    # Table cells were read above: "`compass_auth.verification.stale` (WARN)" there names a logger.
    outside_tables = "\n".join(line for line in text.splitlines()
                                if not line.lstrip().startswith("|"))
    for match in spans(outside_tables):
        if _LEVEL_AFTER.match(outside_tables[match.end():]):
            yield None, span_text(match)


def quoted_loggers(page: Path) -> Iterator[str]:
    text = prose(page)
    flat = " ".join(text.split())
    for line in fenced_log_lines(page):
        if (name := field(line, "logger")) is not None:
            yield name
    for header, rows in tables(text):
        if "logger" in header:
            column = header.index("logger")
            for cells in rows:
                named = [span_text(m) for m in spans(cells[column])] if column < len(cells) else []
                if named:
                    yield named[0]
    yield from re.findall(r"(?:logger|lines? from|logged [^.`]*? by) `([\w.]+)`", flat)


def problems(check: str) -> list[str]:
    """Every problem of one kind, on every page."""
    return [problem for page in PAGES for problem in CHECKS[check](page)]


def loggers_problems(page: Path) -> Iterator[str]:
    for name in quoted_loggers(page):
        if name not in loggers():
            yield f"{page_name(page)}: logger {name} is created nowhere in the code"


def log_line_problems(page: Path) -> Iterator[str]:
    for line in fenced_log_lines(page):
        level, logger, msg = field(line, "level"), field(line, "logger"), field(line, "msg")
        if level is not None and level not in written_levels():
            yield f"{page_name(page)}: level {level} is not one the log formatter writes"
        if msg is not None and logger is not None and logger in loggers() \
                and not logged_by(msg, logger):
            yield f"{page_name(page)}: log line {head(msg)!r} is not logged by {logger}"
        error = field(line, "error")
        if error is not None and head(error) and not any(
                quotes_literal(head(error), literal) for strings in module_strings().values()
                for literal in strings):
            yield f"{page_name(page)}: error text {head(error)!r} is in no string of the code"
    for logger, text in quoted_log_lines(page):
        if logger is not None and logger not in loggers():
            continue  # reported as a logger that does not exist
        if not logged_by(text, logger):
            by = f" by {logger}" if logger else ""
            yield f"{page_name(page)}: log line {head(text)!r} is not logged{by}"


def variable_problems(page: Path) -> Iterator[str]:
    for name in sorted(set(re.findall(r"\bAUTH_[A-Z0-9_]*(?:[A-Z0-9]|_\*)|\bAUTH_\*",
                                      page.read_text()))):
        if name == "AUTH_*":
            continue
        if name.endswith("*"):
            if not any(variable.startswith(name[:-1]) for variable in variables()):
                yield f"{page_name(page)}: no variable is named {name}"
        elif name not in variables():
            yield f"{page_name(page)}: variable {name} is not a setting"


def method_problems(page: Path) -> Iterator[str]:
    for match in spans(prose(page)):
        found = re.fullmatch(r"([A-Za-z_][\w.]*)\.([A-Za-z_]\w*)(\(.*\))?", span_text(match))
        if found is None:
            continue
        owner, member, call = found.groups()
        shown = f"{owner}.{member}{'()' if call else ''}"
        if owner[0].isupper() and "." not in owner:
            candidates = classes().get(owner)
            if candidates is None:
                continue  # another project's class (Tornado's, kubernetes-asyncio's)
            if not any(has_member(cls, member) for cls in candidates):
                yield f"{page_name(page)}: method {shown} does not exist"
        elif call is None:
            continue  # a dotted name without a call: a module or an attribute path
        elif owner in OBJECTS:
            if not any(has_member(cls, member) for cls in classes()[OBJECTS[owner]]):
                yield f"{page_name(page)}: method {shown} does not exist"
        else:
            try:
                module = importlib.import_module(owner)
            except ImportError:
                continue  # an object the page names by a variable of its own
            if not hasattr(module, member):
                yield f"{page_name(page)}: {shown} does not exist"


CHECKS = {"loggers": loggers_problems, "log lines": log_line_problems,
          "variables": variable_problems, "methods": method_problems}


def all_problems() -> set[str]:
    return {problem for check in CHECKS for problem in problems(check)}


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_the_docs_name_only_what_exists(check: str) -> None:
    found = set(problems(check))
    assert not found, "\n".join(sorted(found))


@pytest.mark.parametrize(("heading", "emulator", "least"),
                         [("area", DevCluster, 40), ("oidcissuer", OidcIssuer, 25)],
                         ids=["DevCluster", "OidcIssuer"])
def test_the_testing_readme_api_tables_name_members(heading: str, emulator: type,
                                                    least: int) -> None:
    """Each emulator's table (first column headed "area", or the class's name): every
    ``call(...)`` and every bare name is a member, the constructor's parameters are the class's
    (issue 22 item 7 added ``OidcIssuer``'s table and the bare names)."""
    text = prose(ROOT / "compass_auth" / "testing" / "README.md")
    [rows] = [rows for header, rows in tables(text) if header[:2] == [heading, "calls"]]
    parameters = set(inspect.signature(emulator).parameters)
    missing, checked = [], 0
    for area, calls in rows:
        for match in spans(calls):
            shown = span_text(match)
            call = re.fullmatch(r"(\w+)\((.*)\)", shown) or re.fullmatch(r"(\w+)()", shown)
            if call is None or call.group(1) == "Fault":
                continue
            checked += 1
            name, arguments = call.groups()
            if name == emulator.__name__:
                missing += [f"{name}({argument})" for argument in
                            re.findall(r"\w+", arguments) if argument not in parameters]
            elif not has_member(emulator, name):
                missing.append(f"{area}: {name}")
    assert checked >= least
    assert not missing, missing


def test_the_readme_lists_the_testing_extras_dependencies() -> None:
    """Issue 19: the README said pyyaml and pytest while the extra also brought protobuf."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["testing"]
    declared = {re.split(r"[^A-Za-z0-9_.-]", requirement, maxsplit=1)[0].lower()
                for requirement in extras}
    readme = " ".join((ROOT / "README.md").read_text().split())
    listed = re.search(r"`testing` adds [^(]*\(([^)]*)\)", readme)
    assert listed is not None
    assert {name.strip().lower() for name in listed.group(1).split(",")} == declared


# --- the checker itself ------------------------------------------------------------------------


def test_the_scan_reaches_the_quotes() -> None:
    """Each way of quoting is found on today's pages (a scan that finds nothing passes)."""
    troubleshooting = ROOT / "docs" / "troubleshooting.md"
    lines = set(quoted_log_lines(troubleshooting))
    # the default
    assert ("compass_auth.apiserver.troubleshoot", "cannot connect to the API server") in lines
    assert ("compass_auth.apiserver.tokenfile",
            "service account token file unreadable; keeping the last token") in lines
    assert ("service.app", "cannot configure the API server connection") in lines  # msg cell
    assert (None, "service account token reloaded") in lines  # prose, "(INFO)"
    # "by ... as"
    assert ("compass_auth.verification.authenticator", "token verification failed") in lines
    assert len(lines) >= 20
    assert not any(text.startswith("compass_auth.") for _, text in lines)
    websocket = set(quoted_log_lines(ROOT / "docs" / "websocket.md"))
    assert ("compass_auth.tornado.websocket",
            "websocket closed: token expired (subject=..., token_fp=...)") in websocket
    assert "compass_auth.authorization.authorizer" in set(
        quoted_loggers(ROOT / "docs" / "authorization.md"))
    assert len(fenced_log_lines(ROOT / "docs" / "deploy.md")) >= 4
    assert {"compass_auth.apiserver.troubleshoot", "service.app"} <= set(
        quoted_loggers(troubleshooting))
    assert len(variables()) > 30
    assert {"WARN", "INFO", "ERROR"} <= written_levels()



def test_the_checks_catch_each_kind_of_drift(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "A WARN line from `compass_auth.nowhere`: `something odd`.\n\n"
        "One INFO line from `compass_auth.tornado.websocket`: `websocket opened (subject=...)`.\n\n"
        "| log line | logger | meaning |\n|---|---|---|\n"
        "| `token verification failed: expired (token_fp=...)` | "
        "`compass_auth.verification.authenticator` (WARN) | fine |\n"
        "| `access denied: CHECK for SUBJECT` | `compass_auth.verification.authenticator` (WARN) "
        "| wrong logger |\n\n"
        "```\nlevel=WARNING logger=compass_auth.verification.authenticator "
        "msg=\"token verification failed: x\" error=\"NoSuchText: ...\"\n```\n\n"
        "Set `AUTH_AUDIENCE`, `AUTH_NO_SUCH` and `AUTH_AUTHZ_*`, not `AUTH_NOPE_*`; call "
        "`Authenticator.start()`, `Authenticator.no_such()`, `Identity.subject`, "
        "`authenticator.wait_started()`, `authenticator.nothing()`, "
        "`compass_auth.parse_access(text)`, `compass_auth.nothing(x)`.\n")
    found = {problem.partition(": ")[2] for check in CHECKS.values() for problem in check(page)}
    assert found == {
        "logger compass_auth.nowhere is created nowhere in the code",
        "log line 'websocket opened (subject=' is not logged by compass_auth.tornado.websocket",
        "log line 'access denied:' is not logged by compass_auth.verification.authenticator",
        "level WARNING is not one the log formatter writes",
        "error text 'NoSuchText:' is in no string of the code",
        "variable AUTH_NO_SUCH is not a setting",
        "no variable is named AUTH_NOPE_*",
        "method Authenticator.no_such() does not exist",
        "method authenticator.nothing() does not exist",
        "compass_auth.nothing() does not exist",
    }
