#!/usr/bin/env python3
"""Classic AGI script of the support line, as Asterisk runs it: ``AGI(support_route.py,${EXTEN})``.

The code is :mod:`pbx_sla.agi.classic` (also installed as the console script ``pbx-sla-support-route``,
which can be linked into agi-bin instead of this file). Point this file's shebang at the Python that has
pbx-sla installed; from a source checkout it finds the package beside ``agi_scripts/``.
"""

import sys
from pathlib import Path

try:
    import pbx_sla  # noqa: F401
except ModuleNotFoundError:  # run from a source checkout: the package is beside agi_scripts/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pbx_sla.agi.classic import main

if __name__ == "__main__":
    sys.exit(main())
