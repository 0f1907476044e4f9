"""`python -m structrepdiff` is the same as the `structrepdiff` command."""

import sys

from structrepdiff.cli.main import main

sys.exit(main())
