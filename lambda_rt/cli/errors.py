"""Turn errors into one line on stderr and an exit code, never a traceback.

Exit 2 for bad usage (click's convention), 1 for a lambda-rt error, 130 for
Ctrl-C. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any

from lambda_rt.errors import LambdaRTError

try:  # recent typer vendors click; older releases use the click package
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc  # type: ignore[no-redef]

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "run_cli", "usage_error"]

EXIT_USAGE = 2
EXIT_ERROR = 1


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_cli(command: Any, args: list[str] | None = None, prog_name: str = "lambda-rt") -> int:
    """Run the click ``command``; map each failure to one stderr line and an exit code."""
    try:
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.ctx.get_help() if exc.ctx else "")
        return 0
    except click_exc.UsageError as exc:
        print(f"{prog_name}: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return EXIT_USAGE
    except click_exc.ClickException as exc:
        print(f"{prog_name}: error: {_one_line(exc.format_message())}", file=sys.stderr)
        return int(exc.exit_code)
    except LambdaRTError as exc:
        print(f"{prog_name}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog_name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        name = type(exc).__name__
        if name == "Exit":  # typer.Exit
            return int(getattr(exc, "exit_code", 0))
        if name == "Abort":  # typer.Abort, click's Ctrl-C at a prompt
            print(f"{prog_name}: interrupted", file=sys.stderr)
            return 130
        raise
    return int(result) if isinstance(result, int) else 0


def usage_error(message: str) -> Exception:
    """A bad argument: the command raises it, :func:`run_cli` prints it, exit 2."""
    return click_exc.UsageError(message)
