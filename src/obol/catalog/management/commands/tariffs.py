"""`obol tariffs load FILE [--tenant CODE] [--effective-from YYYY-MM-DD] [--correct REASON]`: load rate tables."""
from obol.catalog.tariff_services import load_tariffs
from obol.core.management.base import LoadFileCommand


class Command(LoadFileCommand):
    help = "Manage rate tables (tariffs) and holiday calendars."
    what = "tariffs"
    loader = staticmethod(load_tariffs)
    load_help = "Load a tariff YAML file and its CSV prefix lists (all or nothing; loading it again changes nothing)"
    file_help = "the tariff file (format: docs/tariffs-format.md)"
    effective_from_help = "first day of new rate table versions (default: the file's effective_from, else today)"

    def add_load_arguments(self, load) -> None:
        load.add_argument("--correct", dest="correction", metavar="REASON",
                          help="replace the content of the versions in force on --effective-from (default today) "
                               "instead of adding new versions, for a wrong price found late; audited with "
                               "REASON; then re-price the open periods with `obol usage rerate`")

    def loader_options(self, options: dict) -> dict:
        return {"correction": options.get("correction")}
