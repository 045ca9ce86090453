"""Writes docs/metrics.md from the metric classes (``--check``: fail if it is out of date)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from corral.observability.catalogue import build_catalogue
from corral.observability.markdown import render_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs" / "metrics.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check; write nothing")
    args = parser.parse_args()
    catalogue = build_catalogue()
    violations = catalogue.violations()
    if violations:
        # Written anyway: the docs describe what the code exports; the tests judge the labels.
        print("Labels that break the rule:\n  " + "\n  ".join(violations), file=sys.stderr)
    text = render_markdown(catalogue)
    if args.check:
        if not DOCS.exists() or DOCS.read_text() != text:
            print(
                f"{DOCS} is out of date: run python scripts/metrics_catalogue.py", file=sys.stderr
            )
            return 1
        return 0
    DOCS.write_text(text)
    print(f"wrote {DOCS} ({len(catalogue.entries)} metrics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
