"""Exit codes of every command (README, "Failure behaviour")."""

OK = 0  # something was produced (or was already there from an earlier run)
NOTHING = 1  # every input was bad: nothing produced; the summary printed says why
INPUT = 2  # bad input or usage: a one-line error naming the file and the cause
DEPENDENCY = 3  # a missing optional dependency (e.g. the mlip extra)
IO = 4  # an I/O failure: disk full, permissions
INTERRUPTED = 130  # Ctrl-C / SIGTERM, after saying what was saved
