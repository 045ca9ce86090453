"""An AuditSink that writes each remediation step as one JSON line to a logger."""

from __future__ import annotations

import dataclasses
import json
import logging

from corral.health.port import AuditEntry


class LogAuditSink:
    """Records audit entries in the agent's log (collected with the cluster's logs).

    The store's audit log implements the same AuditSink port; the composition root picks one.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("corral.audit")

    async def record(self, entry: AuditEntry) -> None:
        self._log.info(json.dumps({"audit": dataclasses.asdict(entry)}, sort_keys=True))
