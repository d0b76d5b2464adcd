"""Staff roles and what each may do. The Django admin asks `RoleBackend` through the usual
permission API; services ask the `Actor`. Both read the one table below."""
from __future__ import annotations

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import models

# Apps whose rows belong to a tenant's business (the clerk works in these).
BUSINESS_APPS = ("catalog", "customers", "subscriptions", "balances", "notifications", "usage", "charging", "billing")
# Apps a tenant admin also manages (API keys, tenant settings, audit trail view).
ADMIN_APPS = (*BUSINESS_APPS, "core", "api")


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    CLERK = "clerk", "Billing clerk"
    READONLY = "readonly", "Read-only"


def role_allows(role: str, app_label: str, action: str) -> bool:
    """May `role` do `action` (view/add/change/delete) on the models of `app_label`?"""
    if action == "view":
        return app_label in ADMIN_APPS
    if role == Role.ADMIN:
        return app_label in ADMIN_APPS
    if role == Role.CLERK:
        return app_label in BUSINESS_APPS and action in ("add", "change")
    return False


def role_may_write(role: str) -> bool:
    return role in (Role.ADMIN, Role.CLERK)


class RoleBackend(ModelBackend):
    """Permissions come from the staff member's role, not from per-user grants."""

    def _role_permissions(self, user_obj) -> set[str]:
        cached = getattr(user_obj, "_obol_role_perms", None)
        if cached is not None:
            return cached
        profile = getattr(user_obj, "staff_profile", None)
        perms: set[str] = set()
        if profile is not None:
            for app_label, codename in Permission.objects.values_list("content_type__app_label", "codename"):
                action = codename.split("_", 1)[0]
                if role_allows(profile.role, app_label, action):
                    perms.add(f"{app_label}.{codename}")
        user_obj._obol_role_perms = perms
        return perms

    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return set()

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.is_superuser:
            return {f"{a}.{c}" for a, c in Permission.objects.values_list("content_type__app_label", "codename")}
        return self._role_permissions(user_obj)
