"""The base of every error a user can act on (a bad setting, a missing or corrupt file, a data set
or backend this machine lacks): the `pyode` command reports one as a single line, exit status 2."""


class UserError(Exception):
    """An error in what the user gave or has, not in pyode; the message says what to change."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder pyode needs is not there; the message names it."""
