"""The ``maed`` command. Thin: each subcommand parses its options and calls the library.

Subcommands live next to the code they drive; each module below exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace). Modules import their heavy
dependencies inside ``func`` so that ``maed --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from maed.errors import MaedError

#: subcommand modules, in the order ``maed --help`` lists them
SUBCOMMAND_MODULES = [
    "maed.bench",
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
