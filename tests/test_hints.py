"""Every command line the project prints as an example or a hint parses as printed: with the real argument
parser, the real config builder (presets, YAML files, overrides), and the repository files it names.
Placeholders are plain words (RUN_DIR, RAW_DIR), never ``<...>``, which a shell reads as a redirection.
``tests/synth/test_generator.py`` runs the training command ``maed synth`` prints on data it made."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from maed.cli import build_parser, parse_args
from maed.config import PRESET_DIR, load_config, preset_names

REPO = Path(__file__).parents[1]
LAUNCHERS = ("maed", "torchrun", "sbatch", "bash")


def commands_in(text: str) -> list[list[str]]:
    """The command lines of a help text or message, as shell words: lines that start with a launcher, and
    `maed ...` in backticks."""
    text = text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in LAUNCHERS:
            found.append(_shell_words(line))
    for quoted in re.findall(r"`(maed [^`]*)`", text):
        if "..." in quoted:  # a pattern of commands in a sentence, not one to run
            continue
        words = _shell_words(quoted)
        if any(w.startswith("-") or "=" in w or "/" in w for w in words):  # not `maed eval` named in a sentence
            found.append(words)
    return found


def _shell_words(line: str) -> list[str]:
    """``shlex.split(line, comments=True)``, refusing what a shell would not pass on as words: ``<run>`` is a
    redirection, ``a | b`` a pipe."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    operators = [token for token in lexer if set(token) <= set("<>|&;()")]
    assert not operators, f"{line!r}: the shell reads {operators} as operators, not as arguments"
    return shlex.split(line, comments=True)


def maed_argv(words: list[str]) -> list[str] | None:
    """The ``maed`` arguments of a command line (under torchrun or the Slurm script too), else None."""
    if words[0] == "maed":
        return words[1:]
    if words[0] == "torchrun":
        i = words.index("-m")
        assert words[i + 1] == "maed", words
        return words[i + 2 :]
    if words[0] in ("sbatch", "bash") and words[1] == "scripts/slurm_train.sh":
        rest = words[4:]  # NODES GPUS_PER_NODE CONFIG [options] [KEY=VALUE ...]
        return ["train", *rest] if rest[0] == "--resume" else ["train", "--config", *rest]
    return None


def check_command(words: list[str]) -> argparse.Namespace | None:
    """Parse one printed command line as the shell and ``maed`` would; returns the parsed arguments."""
    for word in words:
        for part in word.split("="):
            if part.startswith(("configs/", "scripts/", "samples/")):
                assert (REPO / part).exists(), f"{shlex.join(words)}: {part} is not in the repository"
    argv = maed_argv(words)
    if argv is None:
        return None
    try:
        args = parse_args(build_parser(), argv)
    except SystemExit:
        pytest.fail(f"the printed command does not parse: {shlex.join(words)}")
    if getattr(args, "config", None):
        load_config(args.config, getattr(args, "overrides", None) or [])
    return args


def _help_texts() -> dict[str, str]:
    texts = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    texts[f"{prefix} {name}"] = f"{sub.description or ''}\n{sub.epilog or ''}"
                    walk(sub, f"{prefix} {name}")

    walk(build_parser(), "maed")
    return texts


def test_every_example_of_every_help_parses_as_printed(monkeypatch):
    monkeypatch.chdir(REPO)  # the examples name configs/... from the repository root, as the README does
    checked: dict[str, list[str]] = {}
    for command, text in _help_texts().items():
        for words in commands_in(text):
            args = check_command(words)
            if args is not None:
                checked.setdefault(command, []).append(args.command)
    # the examples are found (the check is not vacuous): train's torchrun and Slurm lines included
    assert len(checked["maed train"]) >= 7 and len(checked["maed demo"]) == 5
    assert {"maed eval", "maed render"} <= set(checked)


def test_the_demo_examples_show_the_shipped_model_and_name_real_files():
    """Examples without --checkpoint run the shipped model (it is in the checkout); the others name a file."""
    from maed.paths import default_checkpoint

    (text,) = [t for c, t in _help_texts().items() if c == "maed demo"]
    examples = [words for words in commands_in(text) if words[:2] == ["maed", "demo"]]
    assert len(examples) == 5 and default_checkpoint().is_file()
    assert ["maed", "demo"] in examples  # the main job as the README's first command runs it
    for words in examples:
        if "--checkpoint" in words:
            assert words[words.index("--checkpoint") + 1].endswith((".pt", ".pth.tar")), shlex.join(words)


def test_train_help_lists_every_shipped_preset():
    (train,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    config = next(a for a in train.choices["train"]._actions if a.dest == "config")
    assert set(preset_names()) == {p.stem for p in PRESET_DIR.glob("*.yaml")}
    assert all(name in config.help for name in preset_names()) and "synth_tiny" in config.help


def test_the_commands_in_the_presets_comments_parse(monkeypatch):
    monkeypatch.chdir(REPO)
    found = 0
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        comments = "\n".join(line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line)
        for words in commands_in(comments):
            check_command(words)
            found += 1
    assert found >= 2  # synth_tiny: how to make its data, how to train on data elsewhere


def test_the_usage_of_the_slurm_script_parses():
    usage = [
        line[2:].replace("e.g. ", "") for line in (REPO / "scripts" / "slurm_train.sh").read_text().splitlines()[7:13]
    ]
    commands = [words for words in commands_in("\n".join(usage)) if words[0] == "sbatch" and words[2].isdigit()]
    assert len(commands) == 2
    for words in commands:
        check_command(words)


def test_the_missing_database_hints_parse(tmp_path):
    from maed.data.loaders import check_database_file
    from maed.errors import DataError

    for dataset, split in (("synth", "val"), ("3dpw", "test")):
        with pytest.raises(DataError) as e:
            check_database_file(tmp_path / "my data", dataset, split)
        (words,) = commands_in(str(e.value))
        args = check_command(words)
        assert args.out == str(tmp_path / "my data")  # quoted for the shell
        assert args.command == ("synth" if dataset == "synth" else "prepare")


def test_the_resume_command_parses_for_any_run_directory():
    from maed.train.stopping import resume_command

    args = check_command(shlex.split(resume_command("results/it's a run")))
    assert args.resume == "results/it's a run"
