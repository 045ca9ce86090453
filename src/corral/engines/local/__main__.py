"""``python -m corral.engines.local``: run one local engine process (started by the launcher)."""

from corral.engines.local.process import main

raise SystemExit(main())
