from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from obol.demo.management.commands.demo import credentials


class Command(BaseCommand):
    help = "Migrate the database, load the demo tenant and serve Obol (what `make run` does)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo tenant")

    def handle(self, *args, host, port, no_demo, **options):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("database migrated")
        if not no_demo:
            call_command("demo", "load", stdout=self.stdout)
            if not settings.DEBUG:
                self.stderr.write("warning: the demo tenant's passwords and API key are public; "
                                  "use --no-demo on a server others can reach")
        base = f"http://{host}:{port}"
        self.stdout.write(
            "\n"
            f"  Back office (admin): {base}/admin/\n"
            f"  API docs (OpenAPI):  {base}/api/v1/docs\n"
            f"  API example:         curl -H 'Authorization: Bearer <key>' {base}/api/v1/customers\n"
            f"  Demo credentials:    {credentials()}\n"
        )
        call_command("runserver", f"{host}:{port}", use_reloader=False, use_threading=True)
