"""`obol tariffs load FILE [--tenant CODE] [--effective-from YYYY-MM-DD]`: load rate tables."""
from obol.catalog.tariff_services import load_tariffs
from obol.core.management.base import LoadFileCommand


class Command(LoadFileCommand):
    help = "Manage rate tables (tariffs) and holiday calendars."
    what = "tariffs"
    loader = staticmethod(load_tariffs)
    load_help = "Load a tariff YAML file and its CSV prefix lists (all or nothing; loading it again changes nothing)"
    file_help = "the tariff file (format: docs/tariffs-format.md)"
    effective_from_help = "first day of new rate table versions (default: the file's effective_from, else today)"
