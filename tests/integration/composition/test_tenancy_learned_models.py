"""Key allow-lists may name models the gateway learned after start, not only configured ones."""

from __future__ import annotations

from pathlib import Path

import httpx
from rich.console import Console

from corral.admin import PREFIX
from corral.clock import FakeClock
from corral.composition.tenancy import open_tenancy
from corral.settings import CorralSettings


async def test_an_allow_list_may_name_a_learned_model(tmp_path: Path) -> None:
    settings = CorralSettings(
        data_dir=tmp_path,
        models=[{"name": "configured", "engine": {"kind": "fake"}}],  # type: ignore[list-item]
    )
    async with open_tenancy(settings, FakeClock(), Console(quiet=True)) as tenancy:
        assert tenancy.bootstrap_key is not None
        transport = httpx.ASGITransport(app=tenancy.mounts[PREFIX])
        headers = {"Authorization": f"Bearer {tenancy.bootstrap_key}"}
        body = {"name": "k", "allowed_models": ["learned-x"]}
        async with httpx.AsyncClient(transport=transport, base_url="http://corral") as http:
            before = await http.post("/keys", json=body, headers=headers)
            assert before.status_code == 400
            assert "learned-x" in before.json()["error"]["message"]
            tenancy.learned_models = lambda: ["learned-x"]  # what the running gateway reports
            after = await http.post("/keys", json=body, headers=headers)
            assert after.status_code == 201, after.text
            assert after.json()["allowed_models"] == ["learned-x"]
