"""A small in-memory world behind the admin API: two teams, a user of each role, their keys."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount

from corral.admin.app import build_admin_app
from corral.clock import FakeClock
from corral.principals import KeyDirectory, Role, display_key, new_api_key
from corral.store.bootstrap import bootstrap_admin_key
from corral.store.keysync import KeySync
from corral.store.memory import InMemoryStore
from corral.store.records import Actor, ApiKey, KeyMaterial, KeySpec, Team, User
from corral.store.usage_memory import InMemoryUsage

SECRET = b"unit-test-secret-unit-test-secret"


@dataclass
class World:
    store: InMemoryStore
    sync: KeySync
    clock: FakeClock
    http: httpx.AsyncClient
    teams: dict[str, Team] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    keys: dict[str, ApiKey] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}

    async def call(self, who: str, method: str, path: str, body: object = None) -> httpx.Response:
        kwargs = {} if body is None else {"json": body}
        return await self.http.request(method, "/admin/v1" + path, headers=self.auth(who), **kwargs)

    async def add_key(self, who: str, user: User | None, team: Team, **spec: object) -> ApiKey:
        secret = new_api_key()
        material = KeyMaterial(self.sync.hash(secret), display_key(secret))
        spec_ = KeySpec(team.id, None if user is None else user.id, who, **spec)  # type: ignore[arg-type]
        key = await self.store.create_key(material, spec_, actor=Actor("setup", self.clock.now()))
        self.keys[who], self.secrets[who] = key, secret
        await self.sync.refresh()
        return key


def build_app(
    store: InMemoryStore, sync: KeySync, clock: FakeClock, **options: object
) -> Starlette:
    options.setdefault("usage_ledger", InMemoryUsage())
    admin = build_admin_app(store=store, keys=sync, clock=clock, **options)  # type: ignore[arg-type]
    return Starlette(routes=[Mount("/admin/v1", app=admin)])


async def make_world(**options: object) -> World:
    store, clock = InMemoryStore(), FakeClock()
    sync = KeySync(store, KeyDirectory(SECRET), clock)
    boot = await bootstrap_admin_key(store, SECRET, clock.now())
    assert boot is not None
    transport = httpx.ASGITransport(app=build_app(store, sync, clock, **options))
    world = World(
        store, sync, clock, httpx.AsyncClient(transport=transport, base_url="http://admin")
    )
    world.keys["P"], world.secrets["P"] = boot.key, boot.secret
    setup = Actor("setup", clock.now())
    for name in ("alpha", "beta"):
        world.teams[name] = await store.create_team(name, "", actor=setup)
    alpha, beta = world.teams["alpha"], world.teams["beta"]
    people = {
        "T": (alpha, "Ada", Role.TEAM_ADMIN),
        "D": (alpha, "Dev", Role.DEVELOPER),
        "mate": (alpha, "Mo", Role.DEVELOPER),
        "pat": (alpha, "Pat", Role.PLATFORM_ADMIN),
        "bea": (beta, "Bea", Role.DEVELOPER),
    }
    for who, (team, name, role) in people.items():
        user = await store.create_user(
            team.id, name, f"{name.lower()}@example.com", role, actor=setup
        )
        world.users[who] = user
        await world.add_key(who, user, team)
    await world.add_key("svc", None, alpha)
    return world
