"""``glm devcheck``: one bounded check of glm on a CUDA box (``--dry-run``: the same on the CPU)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from glm.cli.common import CliError


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("devcheck", help="GPU check: backend parity, 3090 recipes on Vicuna-7B's shape, "
                                               "encoder speed (--dry-run on CPU)")
    p.add_argument("--out", default="devcheck", help="folder for devcheck.json and devcheck.md (default: devcheck)")
    p.add_argument("--dry-run", action="store_true", help="run on the CPU even if CUDA is present; GPU parts skipped")
    p.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check (default 540)")
    p.add_argument("--steps", default=None, help="comma-separated subset of environment,parity,recipes,tuning,"
                                                 "encoder_speed (default: all)")
    p.add_argument("--skip-checkout-tests", action="store_true",
                   help="do not run the checkout's DeepSpeed parity tests in the parity step (CI runs them itself)")
    p.set_defaults(func=cmd_devcheck)


def cmd_devcheck(args: argparse.Namespace) -> int:
    from glm.devcheck import STEPS, format_report, run_devcheck

    steps = STEPS if args.steps is None else tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise CliError(f"--steps: unknown {unknown}; known: {', '.join(STEPS)}")
    if args.budget <= 0:
        raise CliError(f"--budget must be > 0 seconds, found {args.budget:g}")
    report = run_devcheck(Path(args.out), dry_run=args.dry_run, budget_s=args.budget, steps=steps,
                          checkout_tests=not args.skip_checkout_tests, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_report(report))
    print(f"written: {Path(args.out) / 'devcheck.json'}, {Path(args.out) / 'devcheck.md'}")
    return 1 if any(s["status"] == "failed" for s in report["steps"]) else 0
