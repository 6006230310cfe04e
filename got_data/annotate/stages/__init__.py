"""The built-in stages, one module per stage. Importing this package imports every module in it, and
each stage class registers itself by name (`got_data.annotate.stage.STAGE_CLASSES`): no list to keep."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
