"""Who is acting: a staff user, an API key or a process. Services take an Actor, check what it
may do, and name it in the audit trail."""
from __future__ import annotations

from dataclasses import dataclass

from obol.core.errors import Forbidden
from obol.core.roles import Role, role_may_write


@dataclass(frozen=True)
class Actor:
    kind: str  # user | api_key | process (AuditEvent.ActorKind)
    id: str
    label: str
    role: str = Role.READONLY

    @classmethod
    def for_user(cls, user) -> Actor:
        profile = getattr(user, "staff_profile", None)
        role = Role.ADMIN if user.is_superuser else (profile.role if profile else Role.READONLY)
        return cls("user", str(user.pk), user.get_username(), role)

    @classmethod
    def for_api_key(cls, key) -> Actor:
        return cls("api_key", str(key.pk), f"API key {key.prefix} ({key.name})", key.role)

    @classmethod
    def process(cls, name: str) -> Actor:
        return cls("process", name, name, Role.ADMIN)

    def require_write(self) -> None:
        if not role_may_write(self.role):
            raise Forbidden(f"{self.label} has the {self.role} role and may not change anything")
