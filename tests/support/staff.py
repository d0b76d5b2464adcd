"""Staff logged in to the back office, for the admin tests of every app."""
from django.contrib.auth import get_user_model

from obol.core.models import StaffProfile


def log_in_staff(client, tenant, role: str, *, superuser: bool = False):
    """`client` logged in as staff user "anna" of `tenant` with `role`; returns the client."""
    user = get_user_model().objects.create_user("anna", password="x", is_staff=True, is_superuser=superuser)
    StaffProfile.objects.create(user=user, tenant=tenant, role=role)
    client.force_login(user)
    return client
