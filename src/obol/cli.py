"""The `obol` console command: Django's management commands with Obol's settings.

`obol catalog load FILE`, `obol apikey create ...`, `obol demo load`, `obol run`, `obol migrate` ...
"""
import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "obol.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["obol", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
