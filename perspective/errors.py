"""Exceptions that mean "the user asked for something that cannot be done".

Library code raises these with a message written for a person; the command-line front ends turn
them into one line on stderr and exit code 2 (see ``perspective.cli``). Anything else that escapes
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A usage or data error: bad flag value, missing file, wrong layout. Exit code 2."""

    exit_code = 2


class NothingDone(Exception):
    """The command ran but had nothing it could do (for instance no image could be read). Exit 1."""

    exit_code = 1
