"""Where the plugin's YAML defaults are (no torch or RecBole imports: importers use it too)."""

import os

from .errors import PluginError


def _find_properties_dir():
    """``properties/`` ships inside the installed package; in a source checkout it sits beside it."""
    package_dir = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(package_dir, "properties"), os.path.join(package_dir, os.pardir, "properties")):
        if os.path.isdir(candidate):
            return os.path.normpath(candidate)
    raise PluginError(f"the plugin's properties/ folder is missing next to {package_dir}: reinstall the package")


PROPERTIES_DIR = _find_properties_dir()
