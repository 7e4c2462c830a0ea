"""The ``maskc`` command. Each sub-command group lives in its own module with
``register(subparsers)``; GROUPS lists them (a group whose module is missing is skipped)."""

from __future__ import annotations

import argparse
import importlib
import sys

GROUPS = ["maskc.cli.core", "maskc.cli.show", "maskc.cli.check", "maskc.cli.export", "maskc.cli.plan"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maskc", description="maskc: a mask compiler for structured sparse attention")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as e:  # maskc's input errors are ValueErrors with a message for people
        print(f"maskc {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
