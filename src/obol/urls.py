from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from obol.api.api import api

admin.site.site_header = "Obol back office"
admin.site.site_title = "Obol"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]
