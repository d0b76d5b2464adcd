"""`obol charging sweep`: commit and release the sessions whose grant expired (run every minute).
`obol charging serve`: the lean charging routes (charging/fast.py) on uvicorn, PostgreSQL only."""
from django.core.management.base import BaseCommand, CommandError

from obol.charging import service
from obol.core.actors import Actor
from obol.core.management.base import tenant_from_option
from obol.core.models import Tenant
from obol.core.tenancy import tenant_context


class Command(BaseCommand):
    help = "Real-time charging maintenance: sweep expired sessions."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sweep = sub.add_parser("sweep", help="commit what expired sessions reported used and release their holds")
        sweep.add_argument("--tenant", help="one tenant (default: all)")
        serve = sub.add_parser("serve", help="serve the charging routes on the lean path (PostgreSQL)")
        serve.add_argument("--host", default="127.0.0.1")
        serve.add_argument("--port", type=int, default=8100)
        serve.add_argument("--workers", type=int, default=2, help="processes (one per core)")

    def handle(self, *args, action, **options):
        if action == "serve":
            return self._serve(options["host"], options["port"], options["workers"])
        tenants = [tenant_from_option(options["tenant"])] if options.get("tenant") else list(Tenant.objects.all())
        for tenant in tenants:
            with tenant_context(tenant):
                swept = service.sweep(Actor.process("charging sweep"))
            self.stdout.write(f"{tenant.code}: {swept} expired session(s) swept")

    def _serve(self, host: str, port: int, workers: int):
        import uvicorn
        from django.db import connection
        if connection.vendor != "postgresql":
            raise CommandError("the lean charging path needs PostgreSQL (OBOL_DATABASE_URL=postgresql://...); "
                               "on SQLite the charging routes are served by `obol run` under /api/v1/charging")
        self.stdout.write(f"charging routes on http://{host}:{port}/api/v1/charging/ ({workers} worker(s))")
        uvicorn.run("obol.charging.fast:app", host=host, port=port, workers=workers, loop="uvloop",
                    http="httptools", access_log=False, log_level="warning", proxy_headers=False)
