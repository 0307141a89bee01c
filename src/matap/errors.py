"""The one exception type that the command line turns into a one-line message."""


class MatapError(Exception):
    """A problem with what the user gave (a file, a config, an argument).

    The CLI prints ``matap: error: <message>`` and exits with status 2; the
    message should say what is wrong and how to fix it.
    """
