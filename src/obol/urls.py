from django.contrib import admin
from django.http import JsonResponse
from django.urls import path, re_path
from django.views.generic import RedirectView

from obol.api.api import api

admin.site.site_header = "Obol back office"
admin.site.site_title = "Obol"


def api_route_not_found(request, rest=""):
    return JsonResponse(
        {"error": {"code": "not_found", "message": f"no API route {request.path}", "field": None}}, status=404
    )


urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", api_route_not_found),
]
