"""A minimal real Django project for the WSGI middleware's tests: settings, one URL
configuration and two views, in one module (it is its own ``ROOT_URLCONF``).

Django's settings are process-wide and can be configured once, so :func:`application`
configures them on first use only. The views log through :data:`CLIENT`, which the
tests set, as an application would log through its configured client.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from glasslog.client import Client, current_context
from glasslog.testing import InMemoryClient

CLIENT: Client | InMemoryClient | None = None
"""The client the views log through; set by the test."""

SEEN: dict[str, Any] = {}
"""What the last view saw of the glasslog context."""


def create_order(request: HttpRequest, order_id: str) -> HttpResponse:
    """Log an event of the view's own, and show the context it ran in."""
    assert CLIENT is not None, "set tests.client.django_project.CLIENT first"
    SEEN["context"] = current_context()
    SEEN["event"] = CLIENT.log("order.create", target=("order", order_id))
    return JsonResponse({"id": order_id})


def show_order(request: HttpRequest, order_id: str) -> HttpResponse:
    return JsonResponse({"id": order_id})


def fail(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


urlpatterns = [
    path("orders/<str:order_id>", create_order),
    path("orders/<str:order_id>/show", show_order),
    path("fail", fail),
]


def application() -> WSGIHandler:
    """Django's own WSGI handler for this project (what get_wsgi_application returns)."""
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only-not-secret",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            LOGGING_CONFIG=None,
        )
        django.setup()
    return WSGIHandler()
