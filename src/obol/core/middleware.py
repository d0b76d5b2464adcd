from obol.core import tenancy


class StaffTenantMiddleware:
    """Scope each request: a staff user works in their tenant, a platform superuser across all.
    Requests without a staff user start unscoped (the API sets the scope from its key)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = tenancy.reset_scope()
        try:
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                profile = getattr(user, "staff_profile", None)
                if profile is not None:
                    tenancy.activate(profile.tenant)
                elif user.is_superuser:
                    tenancy.activate(tenancy.ALL_TENANTS)
            return self.get_response(request)
        finally:
            tenancy._scope.reset(token)
