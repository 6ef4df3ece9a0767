"""Every `agegate` command (and `python -m agegate.benchmarks...` probe) the documents and the CLI's own --help
texts show parses against the CLI as it is: a renamed option or command would leave the model card's "Reproduce"
or a README recipe failing for the engineer who copies it, and no test said so (one README command gave `--curve`
without its file).

Only the parsing is checked (commands, options, their number of values): paths like `$D/utkface` and files a
recipe makes on the way do not exist here, so values are not converted or checked."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import pytest

from agegate.edge.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ("README.md", "DEVELOPERS.md", "MODEL_HISTORY.md", "edge/assets/MODEL_CARD.md",
             "benchmarks/results/README.md", "benchmarks/PHOTOS.md")


def shown_commands(text: str) -> list[str]:
    """The `agegate ...` commands of a Markdown text. In fenced code blocks: continued lines joined, comments cut,
    one per command of a `&&`, `;` or `|` chain (a `for ...; do agegate ...` loop's body included). In the prose's
    `code` spans: those written out whole (not `agegate eval ... --curve`, `<copy of the file>`, a bare
    `agegate bench` or `agegate train --teacher`, which name a command or option rather than show one)."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            for part in re.split(r"&&|;|\|", line.split(" #")[0]):
                part = re.sub(r"^\s*(?:\$\s+)?(?:do|then)?\s*", "", part).strip()
                if part.startswith(("agegate ", "python -m agegate.")):
                    found.append(part)
    prose = re.sub(r"```.*?```", "", text, flags=re.S).replace("\n", " ")
    for span in re.findall(r"`([^`]+)`", prose):
        span = span.strip()
        words = span.split()
        if span.startswith(("agegate ", "python -m agegate.")) and "..." not in span and "<" not in span \
                and not (len(words) <= 3 and words[-1].startswith("-")) and len(words) > 2:
            found.append(span)
    return found


def parse_problem(command: str) -> str:
    """Why `command` does not parse with agegate's CLI ('' when it does)."""
    words = shlex.split(command)
    if words[0] == "python":  # python -m agegate.benchmarks.NAME: the module's click command, `main`
        return _parse_problem(importlib.import_module(words[2]).main, words[3:])
    return _parse_problem(cli, words[1:])


def _parse_problem(cmd: click.Command, args: list[str]) -> str:
    # click's own parser splits the words into options and arguments and refuses an unknown option or a missing
    # value, and stops there: no value is converted, no required option asked for (a Context's resilient parsing
    # would swallow the unknown option too).
    while True:
        ctx = click.Context(cmd, info_name=cmd.name)
        _, rest, _ = cmd.make_parser(ctx).parse_args(list(args))
        if not isinstance(cmd, click.Group):
            return f"left over: {rest}" if rest else ""
        if not rest:
            return "a group without a command"
        try:
            _, sub, args = cmd.resolve_command(ctx, rest)
        except click.UsageError:
            return f"no command {rest[0]!r}"
        cmd = sub


def documented() -> list[tuple[str, str]]:
    return [(doc, c) for doc in DOCUMENTS for c in shown_commands((ROOT / doc).read_text())]


def help_commands() -> list[tuple[str, str]]:
    """The example commands in the CLI's own --help texts (a command's and its options'), each up to the two spaces
    before its description: (the command they are the help of, the example)."""
    found = []

    def walk(cmd: click.Command, ctx: click.Context, path: str) -> None:
        for text in [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]:
            for line in re.sub(r"\\\n\s*", " ", text).splitlines():
                example = re.split(r"\s{2,}|\s#", line.strip())[0]
                if example.startswith("agegate ") and "..." not in example and "<" not in example:
                    found.append((path, example))
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                walk(sub, click.Context(sub, parent=ctx, info_name=name), f"{path} {name}")

    walk(cli, click.Context(cli, info_name="agegate"), "agegate")
    return found


def test_the_documents_show_commands_to_check():
    shown = documented()
    docs = {doc for doc, _ in shown}
    assert len(shown) >= 100 and docs == set(DOCUMENTS), (len(shown), docs)
    assert len(help_commands()) >= 20
    # the checker refuses what the CLI refuses
    assert parse_problem("agegate eval --model m.tflite --data D --split val") == ""
    assert parse_problem("agegate bench a.tflite b.tflite --threads 1,2") == ""  # bench's default command
    with pytest.raises(click.UsageError, match="--no-such-option"):
        parse_problem("agegate eval --model m.tflite --no-such-option")
    assert parse_problem("agegate evaluate --model m.tflite") == "no command 'evaluate'"
    assert parse_problem("agegate device") == "a group without a command"
    assert parse_problem("python -m agegate.benchmarks.bias_probe m.tflite --data D --split val") == ""
    with pytest.raises(click.UsageError, match="--per-set"):
        parse_problem("python -m agegate.benchmarks.bias_probe m.tflite --per-set 4")


@pytest.mark.parametrize("doc,command", documented() + help_commands(), ids=lambda v: v[:60])
def test_every_documented_command_parses(doc, command):
    try:
        problem = parse_problem(command)
    except click.UsageError as e:
        problem = e.format_message()
    assert not problem, f"{doc}: `{command}`: {problem}"
