import subprocess
import sys

from click.testing import CliRunner

from agegate.edge.cli import COMMANDS, cli


def test_help_lists_every_group_without_importing_tensorflow():
    code = ("import sys; from click.testing import CliRunner; from agegate.edge.cli import cli; "
            "r = CliRunner().invoke(cli, ['--help']); print(r.output); "
            "assert 'tensorflow' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name in ("data", "train", "convert", "eval", "qa", "bench", "edge", "bundle", "device", "demo"):
        assert name in r.stdout


def test_every_command_has_help():
    for name in COMMANDS:
        r = CliRunner().invoke(cli, [name, "--help"])
        assert r.exit_code == 0 and "Usage" in r.output, name


def test_the_way_through_names_only_commands_that_exist():
    """The overview in `agegate --help` is what a newcomer copies: each line it names must be a real command
    (a renamed one would leave the overview pointing nowhere)."""
    import re

    overview = cli.help.split("The way through:")[1]
    lines = [re.split(r"\s{2,}", ln.strip())[0].split() for ln in overview.splitlines() if ln.strip()]
    assert len(lines) >= 10 and all(words[0] == "agegate" for words in lines)
    for words in lines:
        path = [w for w in words[1:] if w.isalpha() and w.islower()]  # `data check DIR` -> data, check
        r = CliRunner().invoke(cli, [*path, "--help"])
        assert r.exit_code == 0 and "Usage: " in r.output and " ".join(path) in r.output, words


def test_every_option_of_every_command_says_what_it_does():
    """`--help` is the manual at the till: an option listed bare (`--runs INTEGER`) leaves the reader to guess
    what it counts. Walks every command the root group lists."""
    import click

    ctx = click.Context(cli)
    bare = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
            return
        bare.extend(f"{' '.join(path)} {p.opts[0]}" for p in cmd.params
                    if isinstance(p, click.Option) and not p.help and p.opts[0] not in ("--json", "-h", "--help"))

    walk(cli, [])
    assert not bare, bare


def test_missing_extra_names_the_extra(small_utk, tmp_path):
    """With TensorFlow made unimportable, `train` says which extra to install (no traceback)."""
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "from agegate.edge.cli import main\n"
        f"sys.argv = ['agegate', 'train', '--data', {str(small_utk)!r}, '--out', {str(tmp_path / 'x')!r},"
        " '--weights', 'none', '--backbone', 'mobilenet_v2']\n"
        "main()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1
    assert "pip install 'agegate[train]'" in r.stderr and "Traceback" not in r.stderr


def leaf_commands():
    """(`agegate ...` words, command) for every command that runs (not a group)."""
    import click

    def walk(cmd, path, ctx):
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                yield from walk(sub, [*path, name], click.Context(sub, parent=ctx))
        else:
            yield " ".join(path), cmd

    return list(walk(cli, [], click.Context(cli)))


def test_every_command_can_answer_in_json():
    """`--json` beside the human output, on every command a script may run: a command added without it is caught
    here. `bench report` writes a Markdown table (the JSON it merges are the inputs it is given)."""
    missing = []
    for name, cmd in leaf_commands():
        option = next((p for p in cmd.params if "--json" in p.opts), None)
        if name != "bench report" and (option is None or not option.help):  # --help says what the JSON holds
            missing.append(name)
    assert missing == []


def test_every_command_and_option_says_what_it_does():
    """`--help` that explains: a command or option without a help text is caught here (thirteen --json flags were)."""
    import click

    silent = [f"{name} {p.opts[0]}" for name, cmd in leaf_commands() for p in cmd.params
              if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert silent == [] and all(cmd.help for _, cmd in leaf_commands())


def test_bench_takes_its_options_before_the_models_too(shipped_model):
    """`agegate bench --threads 2 m.tflite` was refused ("No such option") where `bench m.tflite --threads 2`
    ran: the options are the models command's wherever they stand, unless a subcommand is named."""
    import json

    from click.testing import CliRunner

    from agegate.edge.cli import cli

    r = CliRunner().invoke(cli, ["bench", "--threads", "1", "--runs", "2", "--warmup", "0", "--json",
                                 str(shipped_model)])
    assert r.exit_code == 0, r.output
    assert [row["threads"] for row in json.loads(r.stdout)["results"]] == [1]
    r = CliRunner().invoke(cli, ["bench", "--help"])
    assert r.exit_code == 0 and "Commands:" in r.output
    r = CliRunner().invoke(cli, ["bench", "--runs", "2", "pipeline"])  # a subcommand named: its options after it
    assert r.exit_code == 2 and "No such option" in r.output
