"""serve-chaos: chaos experiments that judge Ray Serve's fault-tolerance promises.

Installed, this is the project's one top-level import name: ``serve_chaos.harness`` (the engine,
checks, CLI and pytest plugin), ``serve_chaos.runtime`` (the clusters under test) and
``serve_chaos.scenarios`` (the catalogue).  In the repository those live in ``harness/``,
``runtime/`` and ``scenarios/`` beside this directory (setuptools maps them into the wheel); run
from a checkout -- or on a pod's ``PYTHONPATH`` that names it -- the package finds them there.
Imported inside Ray workers (the bundled apps): keep it free of imports.
"""

from os import path as _path

# Resolved: the pods import this package through a link to it (runtime/local/rayenv.py import_root).
_HERE = _path.dirname(_path.realpath(__file__))
_CHECKOUT = _path.dirname(_HERE)
if not _path.isdir(_path.join(_HERE, "runtime")) and _path.isfile(_path.join(_CHECKOUT, "runtime", "__init__.py")):
    __path__.append(_CHECKOUT)  # noqa: F821 - a package's own __path__
