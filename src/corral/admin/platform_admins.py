"""The one guard on platform-admins: a change may never leave the installation without one."""

from __future__ import annotations

from collections.abc import Sequence

from corral.admin.operations import AdminContext
from corral.errors import Conflict
from corral.principals import Role
from corral.store.records import User


async def keep_a_platform_admin(ctx: AdminContext, leaving: Sequence[User]) -> None:
    """Conflict when ``leaving`` (removed or demoted) are all the platform-admins there are."""
    if not any(u.role is Role.PLATFORM_ADMIN for u in leaving):
        return
    gone = {u.id for u in leaving}
    admins = [u for u in await ctx.store.list_users() if u.role is Role.PLATFORM_ADMIN]
    if all(u.id in gone for u in admins):
        raise Conflict(
            "that would leave no platform-admin; make another user platform-admin first",
            param="role",
        )
