"""Exit codes, the same for every command (docs/safety.md, "Exit codes")."""

OK = 0
FAILURE = 1  # operational failure: a probe, a provider or the state could not do its job
USAGE = 2  # bad usage or bad config
REFUSED = 3  # refused by a safety rule; `--force` overrides where it is offered
CONFLICT = 4  # the record changed under us (compare-and-swap conflict)

HELP = """exit codes:
  0  ok
  1  operational failure (a service has no healthy instance, a DNS write failed, ...)
  2  bad usage or configuration
  3  refused by a safety rule (use --force where offered)
  4  the record changed under us (compare-and-swap conflict)"""
