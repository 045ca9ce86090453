"""How hard the fuzz tests try: a bounded run in the normal suite, more with ``make fuzz``."""

from __future__ import annotations

import os

EXAMPLES = int(os.environ.get("CORRAL_FUZZ_EXAMPLES", "10"))
"""Generated cases per operation and role (admin API) or per endpoint (/v1)."""
DERANDOMIZE = "CORRAL_FUZZ_EXAMPLES" not in os.environ
"""The suite's bounded run draws the same cases every time; a longer run explores."""
