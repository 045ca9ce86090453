"""Resetting GPUs (``nvidia-smi --gpu-reset``) or rebooting the node the agent runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from corral.errors import PermanentError, TemporaryError

GPU_RESET = ("nvidia-smi", "--gpu-reset", "-i", "{gpu}")
# The agent runs in a container with hostPID; nsenter reaches the host's systemd.
REBOOT = (
    "nsenter",
    "--target",
    "1",
    "--mount",
    "--uts",
    "--ipc",
    "--net",
    "--pid",
    "--",
    "systemctl",
    "reboot",
)


class CommandResetter:
    """A NodeResetter for the local node: resets each named GPU, or reboots when none is named or
    a reset fails (a reboot also clears a pending row remap or page retirement)."""

    def __init__(
        self,
        local_node: str,
        *,
        gpu_reset: Sequence[str] = GPU_RESET,
        reboot: Sequence[str] = REBOOT,
        timeout_s: float = 120.0,
    ) -> None:
        self._local = local_node
        self._gpu_reset = tuple(gpu_reset)
        self._reboot = tuple(reboot)
        self._timeout = timeout_s

    async def reset(self, node: str, devices: tuple[int, ...]) -> None:
        if node != self._local:
            raise PermanentError(
                f"this agent runs on {self._local!r} and cannot reset {node!r}; "
                "the agent on that node must do it"
            )
        try:
            for gpu in devices:
                await self._run([part.replace("{gpu}", str(gpu)) for part in self._gpu_reset])
            if devices:
                return
        except TemporaryError:
            pass  # a GPU that will not reset may still come back after a reboot
        await self._run(list(self._reboot))

    async def _run(self, argv: list[str]) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            output, _ = await asyncio.wait_for(process.communicate(), self._timeout)
        except (OSError, TimeoutError) as exc:
            raise TemporaryError(f"{' '.join(argv)} could not run: {exc}") from exc
        if process.returncode != 0:
            text = output.decode("utf-8", "replace").strip()[-300:]
            raise TemporaryError(f"{' '.join(argv)} failed ({process.returncode}): {text}")
