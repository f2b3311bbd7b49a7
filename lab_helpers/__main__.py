"""The workbench's command line: python -m lab_helpers doctor | run.

doctor checks this machine before anything runs (versions, mode, credentials); run executes every lesson notebook
headless, as CI does, and prints one line per notebook. The emulator has its own command:
python -m lab_helpers.emulator serve.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab_helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="print versions, mode, credentials and what will run locally")
    run = commands.add_parser("run", help="execute every notebook headless (papermill) into build/executed/")
    run.add_argument("--time-scale", type=float, default=0.02,
                     help="pacing of the lessons: 1.0 reads along, the default 0.02 is CI speed")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from lab_helpers.doctor import main as doctor

        return doctor()
    from lab_helpers.run_notebooks import run_all

    if not 0 < args.time_scale <= 100:
        parser.error(f"--time-scale must be above 0 and at most 100, got {args.time_scale}")
    runs = run_all(args.time_scale)
    if not runs:
        print("no notebooks found", file=sys.stderr)
        return 1
    failed = [run for run in runs if not run.ok]
    print(f"{len(runs) - len(failed)} passed, {len(failed)} failed; executed notebooks in build/executed/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
