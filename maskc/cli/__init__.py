"""The ``maskc`` command. Each group of sub-commands lives in its own module with
``register(subparsers)``; :data:`COMMANDS` says which module holds which command, so a
call imports only the module of the command it runs (``maskc --help`` imports them all).
A group whose module is missing is skipped."""

from __future__ import annotations

import argparse
import importlib
import sys

#: sub-command -> the module that registers it
COMMANDS = {
    "compile": "maskc.cli.core", "info": "maskc.cli.core", "patterns": "maskc.cli.core",
    "warmup": "maskc.cli.core", "demo": "maskc.cli.demo",
    "show": "maskc.cli.show",
    "check": "maskc.cli.check", "backends": "maskc.cli.check",
    "export": "maskc.cli.export",
    "plan": "maskc.cli.plan",
}


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser, with every sub-command, or only those of the module of ``argv``'s command."""
    parser = argparse.ArgumentParser(prog="maskc", description="maskc: a mask compiler for structured sparse attention")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    command = _command_of(sys.argv[1:] if argv is None else argv)
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
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
