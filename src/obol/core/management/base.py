"""Shared plumbing of Obol's management commands: tenant lookup and error reporting."""
from __future__ import annotations

from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from obol.core.actors import Actor
from obol.core.errors import ObolError
from obol.core.models import Tenant
from obol.core.tenancy import tenant_context


def tenant_from_option(code: str | None) -> Tenant:
    """The tenant named by --tenant, or the only tenant when there is exactly one."""
    if code:
        tenant = Tenant.objects.filter(code=code).first()
        if tenant is None:
            raise CommandError(f"no tenant with code {code!r}")
        return tenant
    tenants = list(Tenant.objects.order_by("code"))
    if len(tenants) == 1:
        return tenants[0]
    if not tenants:
        raise CommandError("there is no tenant yet: create one first (obol tenant create CODE NAME)")
    codes = ", ".join(t.code for t in tenants)
    raise CommandError(f"several tenants exist: name one with --tenant ({codes})")


class reported_errors:
    """Turn Obol's errors into a CommandError (message on stderr, exit status 1)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if isinstance(exc, ObolError):
            raise CommandError(exc.message) from exc
        return False


def read_document(file: str) -> str:
    """The text of a file given on the command line, or a CommandError naming it."""
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{file}: cannot read: {exc}") from None


def day_option(text: str | None, option: str = "--effective-from") -> date | None:
    """A YYYY-MM-DD option as a date (None when not given)."""
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not a date (YYYY-MM-DD)") from None


class LoadFileCommand(BaseCommand):
    """`obol <thing> load FILE [--tenant CODE] [--effective-from YYYY-MM-DD]`: load a document
    into one tenant with `loader(text, source=, actor=, effective_from=)` and print its report."""

    what = "file"  # e.g. "catalog"
    load_help = ""
    file_help = ""
    effective_from_help = "first day of new versions (default: the file's effective_from, else today)"

    loader = None  # staticmethod(load_x): (text, *, source, actor, effective_from) -> report

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        load = actions.add_parser("load", help=self.load_help)
        load.add_argument("file", help=self.file_help)
        load.add_argument("--tenant", help="tenant code (default: the only tenant)")
        load.add_argument("--effective-from", dest="effective_from", metavar="YYYY-MM-DD",
                          help=self.effective_from_help)
        self.add_load_arguments(load)

    def add_load_arguments(self, load) -> None:
        """More options of `load` (a subclass's); their values reach the loader via `loader_options`."""

    def loader_options(self, options: dict) -> dict:
        return {}

    def handle(self, *args, action: str, **options):
        day = day_option(options.get("effective_from"))
        text = read_document(options["file"])
        tenant = tenant_from_option(options.get("tenant"))
        with tenant_context(tenant), reported_errors():
            report = type(self).loader(text, source=options["file"], actor=Actor.process(f"{self.what} load"),
                                       effective_from=day, **self.loader_options(options))
        self.stdout.write(str(report))
