"""The ``maed`` command. Thin: each subcommand parses its options and calls the library.

Subcommands live next to the code they drive; each module below exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace). Modules import their heavy
dependencies inside ``func`` so that ``maed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from maed.errors import MaedError

#: subcommand modules, in the order ``maed --help`` lists them
SUBCOMMAND_MODULES = [
    "maed.bench.cli",
    "maed.data.cli",
    "maed.train.cli",
    "maed.eval.cli",
    "maed.demo.cli",
    "maed.render.cli",
    "maed.synth.cli",
    "maed.export.cli",
    "maed.viewer.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maed", description="MAED video human mesh recovery: benchmark, data, training, evaluation, export."
    )
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # not written yet
                continue
            raise
        module.register(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args``, with the ``KEY=VALUE`` config overrides of a command that takes them (an
    ``overrides`` positional) accepted anywhere on its command line, in the order given: argparse alone
    gives a ``nargs="*"`` positional one run of words, so ``A=1 --max-steps 1 B=2`` left ``B=2`` over."""
    args, extra = parser.parse_known_args(argv)
    takes_overrides = isinstance(getattr(args, "overrides", None), list)
    late = [word for word in extra if takes_overrides and _is_override(word)]
    unknown = [word for word in extra if word not in late]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if late:
        args.overrides = [*args.overrides, *late]
    return args


def _is_override(word: str) -> bool:
    key = word.split("=", 1)[0]
    return "=" in word and not word.startswith("-") and key.replace(".", "").replace("_", "").isalnum()


#: exit status when the reader of our output went away (``maed data info DB | head``): 128 + SIGPIPE, what a
#: shell reports for a tool that SIGPIPE ended
BROKEN_PIPE_EXIT = 141


def main(argv: list[str] | None = None) -> int:
    """Run one ``maed`` command; returns its exit status (docs/DESIGN.md lists them)."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, where a closed pipe can still be handled, not at interpreter exit
    except BrokenPipeError:
        # nobody reads the rest: no traceback, and nothing more written (Python would try again at exit)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE_EXIT


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except MaedError as e:
        if args.traceback:
            raise
        print(f"maed {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"maed {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
