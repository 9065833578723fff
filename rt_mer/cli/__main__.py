"""`python -m rt_mer.cli`, as the `rt-mer` entry point."""
import sys

from . import main

sys.exit(main())
