"""Just enough Dockerfile parsing for the checks: instructions with their arguments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple


class Instruction(NamedTuple):
    keyword: str
    arguments: str
    line: int


def parse(path: Path) -> list[Instruction]:
    """Instructions in order; comments dropped, backslash continuations joined."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, arguments = " ".join(pending).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = []
    return instructions


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT/CMD; fails for the shell form."""
    try:
        value = json.loads(instruction.arguments)
    except ValueError:
        raise AssertionError(
            f"line {instruction.line}: {instruction.keyword} is not in exec (JSON) form"
        ) from None
    assert isinstance(value, list), f"line {instruction.line}: not a JSON array"
    assert all(isinstance(item, str) for item in value)
    return value


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage (the image that is shipped)."""
    starts = [index for index, item in enumerate(instructions) if item.keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1]:]


def entrypoint(path: Path) -> list[str]:
    found = [item for item in final_stage(parse(path)) if item.keyword == "ENTRYPOINT"]
    assert len(found) == 1, "the final stage needs exactly one ENTRYPOINT"
    return exec_form(found[0])
