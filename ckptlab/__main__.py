"""``python -m ckptlab`` is the ``ckptlab`` command."""
import sys

from ckptlab.cli import main

sys.exit(main())
