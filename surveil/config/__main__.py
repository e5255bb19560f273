"""``python -m surveil.config --markdown``: print the configuration reference (docs/config.md)."""

import sys

from surveil.config.reference import markdown_reference

if sys.argv[1:] == ["--markdown"]:
    print(markdown_reference())
