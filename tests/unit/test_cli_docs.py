"""Every `bacalao ...` command the docs show (README.md's sh blocks, the header of
examples/wasm/hello.wat) is one our CLI parses: options exist, values convert, arguments fit.

Commands are parsed by the real app with each command's body swapped for a recorder, so
nothing runs; the recorded ``--input``, ``--output`` and ``--publisher`` values then go
through the real parsers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from cli.inputs import parse_input
from cli.jobspec import parse_result_path
from cli.main import create_app
from cli.publishers import parse_publisher

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HELLO_WAT = ROOT / "examples" / "wasm" / "hello.wat"
SAMPLE_ID = "j-0f6c2a8e"
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_WAT_COMMAND = re.compile(r"^;;\s+(bacalao\s.*?)(?:\s{2,}.*)?$", re.MULTILINE)
_ALTERNATIVES = re.compile(r"[a-z]+(?:\|[a-z]+)+")


def _logical_lines(block: str) -> Iterator[str]:
    """The block's lines with backslash continuations joined."""
    pending = ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _expanded(words: list[str]) -> Iterator[list[str]]:
    """``job describe|stop <id>`` -> ``job describe ID`` and ``job stop ID``."""
    words = [SAMPLE_ID if re.fullmatch(r"<[\w-]+>", word) else word for word in words]
    for index, word in enumerate(words):
        if _ALTERNATIVES.fullmatch(word):
            for choice in word.split("|"):
                yield from _expanded([*words[:index], choice, *words[index + 1 :]])
            return
    yield words


def _commands(lines: Iterable[str]) -> Iterator[list[str]]:
    for line in lines:
        words = shlex.split(line, comments=True)
        while words:
            segment, words = _until_and(words)
            if segment and segment[0] == "bacalao":
                yield from _expanded(segment[1:])


def _until_and(words: list[str]) -> tuple[list[str], list[str]]:
    """The first command of ``a && b`` or ``a | b``, and the rest."""
    for index, word in enumerate(words):
        if word in ("&&", "|", ";"):
            return words[:index], words[index + 1 :]
    return words, []


def readme_commands() -> list[list[str]]:
    blocks = _SH_BLOCK.findall(README.read_text())
    return list(_commands(line for block in blocks for line in _logical_lines(block)))


def hello_wat_commands() -> list[list[str]]:
    return [shlex.split(command)[1:] for command in _WAT_COMMAND.findall(HELLO_WAT.read_text())]


Recorded = list[tuple[tuple[str, ...], dict[str, Any]]]


def _recorder(path: tuple[str, ...], calls: Recorded) -> Callable[..., None]:
    def record(*_: Any, **values: Any) -> None:
        calls.append((path, values))

    return record


def _leaves(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    children = getattr(command, "commands", None)
    if not children:
        yield path, command
        return
    for name, child in children.items():
        yield from _leaves(child, (*path, name))


def parse(args: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parse ``bacalao ARGS`` with the real app; returns the command reached and its values.
    A bad option or value raises click's UsageError, as the command line would report."""
    group: Any = typer.main.get_command(create_app())
    calls: Recorded = []
    for path, leaf in _leaves(group):
        leaf.callback = _recorder(path, calls)
    group.main(args=list(args), prog_name="bacalao", standalone_mode=False)
    assert len(calls) == 1, f"bacalao {shlex.join(args)} reached no command"
    return calls[0]


def test_the_docs_show_commands_worth_checking() -> None:
    commands = {tuple(command[:2]) for command in readme_commands()}
    assert {("wasm", "run"), ("docker", "run"), ("serve", "--node-type"), ("job", "run")} <= (
        commands
    )
    assert ("job", "stop") in commands  # the describe|...|stop alternatives were expanded
    assert ["job", "run"] in readme_commands()  # the one after a pipe
    assert len(hello_wat_commands()) >= 2


@pytest.mark.parametrize(
    "args", readme_commands() + hello_wat_commands(), ids=lambda args: shlex.join(args)[:60]
)
def test_documented_command_parses(args: list[str]) -> None:
    path, values = parse(args)
    # the command reached is the one written (after any root options such as --tls-ca)
    starts = [i for i in range(len(args)) if tuple(args[i : i + len(path)]) == path]
    assert starts, f"bacalao {shlex.join(args)} reached {path}"
    assert args[0] == path[0] or args[0].startswith("-")
    for value in values.get("inputs") or ():  # values a JobSpecError would refuse
        parse_input(value)
    for value in values.get("outputs") or ():
        parse_result_path(value)
    if "publisher" in values:
        parse_publisher(values["publisher"])


def test_an_option_that_does_not_exist_is_caught() -> None:
    with pytest.raises(Exception, match="No such option: --engine"):
        parse(["job", "run", "--engine", "wasm", "hello.wat"])
