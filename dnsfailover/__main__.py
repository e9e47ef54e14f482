"""`python -m dnsfailover` runs the command line."""

from dnsfailover.cli.main import main

raise SystemExit(main())
