"""Exit codes of the `streamer` commands, in one place that every command may import."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1  # probe: the session failed; origin: it could not start
EXIT_USAGE: Final = 2  # bad command line or configuration, named in the message
# 128 + the signal's number, as shells report a process ended by that signal.
EXIT_INTERRUPTED: Final = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED: Final = 143  # SIGTERM
