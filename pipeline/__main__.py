"""`python -m pipeline` is the `mediamon` command."""
import sys

from pipeline.cli import main

sys.exit(main())
