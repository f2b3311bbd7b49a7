"""Run the local AgentCore emulator (Memory and Runtime, one port).

    python -m lab_helpers.emulator serve [--host 127.0.0.1] [--port 8787] [--db PATH] [--filtered-listing-delay S]
                                         [--extraction-delay S] [--extractor auto|rules|model|verbatim] [--iam FILE]
    python -m lab_helpers.agentcore_local serve ...   (the older spelling, still accepted)

The word ``serve`` is optional and the options may come before or after it, so the file also runs as a script
path, which is how ``lab_helpers.processes.ServerProcess`` starts servers::

    ServerProcess(Path("lab_helpers/emulator/__main__.py"), "--db", str(db), name="agentcore-local")

Then point ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE`` and ``AWS_ENDPOINT_URL_BEDROCK_AGENTCORE_CONTROL`` at
``http://127.0.0.1:PORT``. ``GET /health`` answers 200 once the database is open.

``--ping-rule`` (default: ``LAB_EMULATOR_PING_RULE``, else ``measured``) chooses what a runtime session's ``/ping``
answer must say to count as activity: ``measured``, the rule AWS users measured (``HealthyBusy`` keeps a session
only with a ``time_of_last_update``), or ``documented``, AWS's guide (``HealthyBusy`` alone keeps it). Both are
explained, with their sources, in :mod:`lab_helpers.emulator.runtime_sessions`.

Long-term memory is extracted as AWS does it, asynchronously: ``--extraction-delay`` lesson seconds (default:
``LAB_EMULATOR_EXTRACTION_DELAY``, else 30, times ``LAB_TIME_SCALE``) after each event, by ``--extractor`` (default:
``LAB_EMULATOR_EXTRACTOR``, else ``auto``: ``model`` when ``LAB_MODEL`` names a real model, else the offline
``rules`` stand-in; resolved at start and said in the start-up line). ``verbatim`` (a literal copy of each message)
and a delay of 0 (records written inside CreateEvent) remain options.

``--iam FILE`` (default: ``LAB_EMULATOR_IAM``, else off) turns local IAM on: requests must be signed by a principal
of FILE and are allowed only by its identity policies (:mod:`lab_helpers.emulator.local_iam`). A bad file stops
the emulator at start, saying what is wrong with it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make `lab_helpers` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from lab_helpers import config
    from lab_helpers.emulator.runtime_sessions import PING_RULE_VARIABLE, PING_RULES

    settings = config.load()
    parser = argparse.ArgumentParser(prog="python -m lab_helpers.emulator",
                                     description="Local emulator of Amazon Bedrock AgentCore Memory and Runtime")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"], help="what to do (default: serve)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=settings.emulator_port,
                        help=f"port (default: LAB_EMULATOR_PORT, {settings.emulator_port})")
    parser.add_argument("--db", type=Path, default=settings.emulator_db,
                        help=f"SQLite database file (default: LAB_EMULATOR_DB, {settings.emulator_db})")
    ping_rule = os.environ.get(PING_RULE_VARIABLE, "").strip() or PING_RULES[0]
    parser.add_argument("--ping-rule", default=ping_rule, choices=PING_RULES,
                        help="what a /ping answer must say to keep a runtime session: 'measured' (HealthyBusy with "
                             "time_of_last_update, as AWS users measured) or 'documented' (HealthyBusy alone, as "
                             f"AWS's guide says) (default: {PING_RULE_VARIABLE}, else measured; now {ping_rule})")
    parser.add_argument("--filtered-listing-delay", type=float, default=settings.emulator_filter_delay,
                        metavar="SECONDS",
                        help="keep each new event out of metadata-filtered ListEvents for SECONDS (real seconds), "
                             "as AWS's eventually consistent filtered listing does; unfiltered listings see it at "
                             f"once (default: LAB_EMULATOR_FILTER_DELAY, {settings.emulator_filter_delay:g})")
    parser.add_argument("--extraction-delay", type=float, default=settings.emulator_extraction_delay,
                        metavar="SECONDS",
                        help="extract long-term records SECONDS after their event (lesson seconds, times the time "
                             "scale LAB_TIME_SCALE), as AWS extracts asynchronously (reportedly within 20-40 s); "
                             "0: inside CreateEvent "
                             f"(default: LAB_EMULATOR_EXTRACTION_DELAY, {settings.emulator_extraction_delay:g})")
    parser.add_argument("--extractor", default=settings.emulator_extractor, choices=config.EXTRACTOR_CHOICES,
                        help="what writes long-term records: 'rules' (facts, summaries, preferences) or 'verbatim' "
                             "(each message), offline stand-ins, or 'model' (LAB_MODEL, LAB_MODEL_ID); 'auto': "
                             "'model' when LAB_MODEL names a real model, else 'rules' "
                             f"(default: LAB_EMULATOR_EXTRACTOR, {settings.emulator_extractor})")
    parser.add_argument("--iam", type=Path, default=settings.emulator_iam, metavar="FILE",
                        help="local IAM: a JSON file of principals (access keys, secrets, tags, identity policies); "
                             "requests are SigV4-checked and evaluated against the policies (default: "
                             f"LAB_EMULATOR_IAM, else off; now {settings.emulator_iam or 'off'})")
    args = parser.parse_args(argv)
    args.time_scale = settings.time_scale
    args.model = settings.model
    args.model_id = os.environ.get("LAB_MODEL_ID", "").strip() or None
    args.region = settings.region
    args.extractor = config.resolve_extractor(args.extractor, args.model)
    if args.extractor == "model" and args.model == "offline":
        parser.error("--extractor model needs LAB_MODEL: 'bedrock' or an OpenAI-compatible server URL "
                     "(the offline model is no extractor; 'rules' is the offline stand-in)")
    if not 0 <= args.extraction_delay <= 3600:
        parser.error(f"--extraction-delay must be between 0 and 3600 seconds, got {args.extraction_delay}")
    if not 0 <= args.filtered_listing_delay <= 3600:  # also rejects nan
        parser.error(f"--filtered-listing-delay must be between 0 and 3600 seconds, got {args.filtered_listing_delay}")
    if args.ping_rule not in PING_RULES:  # argparse checks the choices of a given option, not of its default
        parser.error(f"{PING_RULE_VARIABLE} must be one of {', '.join(PING_RULES)}, got {args.ping_rule!r}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    args.principals = None
    if args.iam is not None:
        from lab_helpers.emulator.local_iam import PolicyError, load_principals

        try:
            args.principals = load_principals(args.iam)
        except PolicyError as exc:
            parser.error(f"--iam: {exc}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    from lab_helpers.emulator.api import create_app
    from lab_helpers.http_serving import run_app

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.db, endpoint=f"http://{args.host}:{args.port}", iam=args.principals)
    app.state.store.filtered_listing_delay = args.filtered_listing_delay
    app.state.store.extraction_delay = args.extraction_delay * args.time_scale
    app.state.store.extractor = args.extractor
    if args.extractor == "model":
        from lab_helpers.emulator.extractors import ModelTarget

        app.state.store.model = ModelTarget(args.model, args.model_id, args.region)
    app.state.store.resume_extractions()
    app.state.runtime.ping_rule = args.ping_rule
    logging.getLogger("lab_helpers.emulator").warning(
        "agentcore-local serving on http://%s:%d (db %s, filtered listings lag %g s, long-term records by the %s "
        "extractor %g s after their event, local IAM %s)", args.host, args.port, args.db,
        args.filtered_listing_delay, args.extractor, args.extraction_delay * args.time_scale,
        f"on: {len(args.principals)} principals from {args.iam}" if args.principals else "off",
    )
    run_app(app, args.host, args.port)


if __name__ == "__main__":
    main()
