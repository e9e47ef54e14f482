"""The command line: thin commands over the library; the only place that picks exit codes."""
