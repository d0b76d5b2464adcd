"""`obol catalog load FILE [--tenant CODE] [--effective-from YYYY-MM-DD]`: load a catalog file."""
from obol.catalog.services import load_catalog
from obol.core.management.base import LoadFileCommand


class Command(LoadFileCommand):
    help = "Manage the price catalog."
    what = "catalog"
    loader = staticmethod(load_catalog)
    load_help = "Load a catalog YAML file (all or nothing; loading it again changes nothing)"
    file_help = "the catalog file (format: docs/catalog-format.md)"
    effective_from_help = "first day of new plan versions (default: the file's effective_from, else today)"
