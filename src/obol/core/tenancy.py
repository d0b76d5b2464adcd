"""The one tenancy mechanism.

Every tenant-owned model derives from `TenantOwned`. Its default manager only ever returns rows
of the tenant in scope and raises `TenantNotSet` when no tenant is in scope, so a forgotten
filter fails loudly instead of leaking another operator's data. The scope is set once per
entry point: the web middleware (staff user's tenant), the API key authentication, and
`tenant_context(...)` in commands and tests. Saving a row fills its tenant from the scope and
refuses a row of another tenant. Cross-tenant work (platform superusers, system maintenance)
says so explicitly with `all_tenants()`.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import models

from obol.core.errors import NotFound, TenantNotSet


class _AllTenants:
    def __repr__(self) -> str:
        return "<all tenants>"


ALL_TENANTS = _AllTenants()
_scope: ContextVar = ContextVar("obol_tenant_scope", default=None)


def current_scope():
    return _scope.get()


def current_tenant():
    """The tenant in scope; raises when there is none or when the scope is all tenants."""
    scope = _scope.get()
    if scope is None or scope is ALL_TENANTS:
        raise TenantNotSet("this needs one tenant in scope: wrap the work in tenant_context(tenant)")
    return scope


@contextmanager
def tenant_context(tenant):
    token = _scope.set(tenant)
    try:
        yield tenant
    finally:
        _scope.reset(token)


@contextmanager
def all_tenants():
    token = _scope.set(ALL_TENANTS)
    try:
        yield
    finally:
        _scope.reset(token)


def activate(tenant_or_all) -> None:
    """Set the scope for the rest of the current request (the middleware resets it afterwards)."""
    _scope.set(tenant_or_all)


def reset_scope():
    return _scope.set(None)


def _scope_filter(queryset):
    scope = _scope.get()
    if scope is None:
        raise TenantNotSet(
            f"{queryset.model.__name__} is tenant-owned: read it inside tenant_context(tenant) "
            "(or all_tenants() for platform work)"
        )
    if scope is not ALL_TENANTS:
        queryset.query.add_q(models.Q(tenant_id=scope.pk))
    return queryset


class TenantQuerySet(models.QuerySet):
    """Querysets of tenant-owned rows. One built while no tenant is in scope (a form field declared
    at import time, say) is 'pending': the scope is applied when it runs, and running it with no
    tenant in scope raises TenantNotSet."""

    _scope_pending = False

    def _clone(self):
        clone = super()._clone()
        clone._scope_pending = self._scope_pending
        return clone

    def _scoped(self):
        if not self._scope_pending:
            return self
        clone = self._clone()
        clone._scope_pending = False
        return _scope_filter(clone)

    def _combinator_query(self, combinator, *other_qs, all=False):
        others = [q._scoped() if isinstance(q, TenantQuerySet) else q for q in other_qs]
        return models.QuerySet._combinator_query(self._scoped(), combinator, *others, all=all)

    def bulk_create(self, objs, *args, **kwargs):
        scope = _scope.get()
        if scope is None:
            raise TenantNotSet(f"bulk_create of {self.model.__name__} needs a tenant in scope")
        for obj in objs:
            if obj.tenant_id is None and scope is not ALL_TENANTS:
                obj.tenant = scope
            elif scope is not ALL_TENANTS and obj.tenant_id != scope.pk:
                raise NotFound(f"{self.model._meta.verbose_name} not found")
        return models.QuerySet.bulk_create(self, objs, *args, **kwargs)

    def _fetch_all(self):
        if self._result_cache is None and self._scope_pending:
            scoped = self._scoped()
            scoped._fetch_all()
            self._result_cache, self._prefetch_done = scoped._result_cache, scoped._prefetch_done
        super()._fetch_all()

    def iterator(self, chunk_size=None):
        return models.QuerySet.iterator(self._scoped(), chunk_size)

    def count(self):
        return models.QuerySet.count(self._scoped())

    def exists(self):
        return models.QuerySet.exists(self._scoped())

    def aggregate(self, *args, **kwargs):
        return models.QuerySet.aggregate(self._scoped(), *args, **kwargs)

    def update(self, **kwargs):
        return models.QuerySet.update(self._scoped(), **kwargs)

    def delete(self):
        return models.QuerySet.delete(self._scoped())

    def resolve_expression(self, *args, **kwargs):
        return models.QuerySet.resolve_expression(self._scoped(), *args, **kwargs)

    def get_or_404(self, what: str = "", **lookup):
        try:
            return self.get(**lookup)
        except self.model.DoesNotExist:
            label = what or self.model._meta.verbose_name
            raise NotFound(f"{label} not found") from None


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    def get_queryset(self):
        queryset = super().get_queryset()
        if _scope.get() is None:
            queryset._scope_pending = True
            return queryset
        return _scope_filter(queryset)


class TenantOwned(models.Model):
    tenant = models.ForeignKey("core.Tenant", on_delete=models.PROTECT, related_name="+", db_index=True)

    objects = TenantManager()

    class Meta:
        abstract = True

    def full_clean(self, *args, **kwargs):
        scope = _scope.get()
        if self.tenant_id is None and scope is not None and scope is not ALL_TENANTS:
            self.tenant = scope
        super().full_clean(*args, **kwargs)

    def save(self, *args, **kwargs):
        scope = _scope.get()
        if self.tenant_id is None:
            self.tenant = current_tenant()
        elif scope is None:
            raise TenantNotSet(f"saving {type(self).__name__} needs a tenant in scope")
        elif scope is not ALL_TENANTS and scope.pk != self.tenant_id:
            raise NotFound(f"{self._meta.verbose_name} not found")
        self._check_references_in_tenant()
        super().save(*args, **kwargs)

    def _check_references_in_tenant(self) -> None:
        """Every foreign key to a tenant-owned row must point into this row's own tenant."""
        for field in self._meta.concrete_fields:
            if not field.is_relation or field.name == "tenant" or not issubclass(field.related_model, TenantOwned):
                continue
            target_id = getattr(self, field.attname)
            if target_id is None:
                continue
            if field.is_cached(self):
                target_tenant = getattr(self, field.name).tenant_id
            else:
                target_tenant = (field.related_model._base_manager.filter(pk=target_id)
                                 .values_list("tenant_id", flat=True).first())
            if target_tenant != self.tenant_id:
                raise NotFound(f"{field.name}: {field.related_model._meta.verbose_name} not found", field=field.name)
