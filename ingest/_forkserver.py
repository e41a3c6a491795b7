"""Preloaded by the forkserver alone (``Preparer``): it dies with the daemon.

Importing this module anywhere else would tie that process to its parent.
"""

from madoguchi.ingest.children import die_with_parent

die_with_parent()
