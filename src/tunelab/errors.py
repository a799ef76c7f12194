"""User-facing errors: the CLI prints them as one line on stderr and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input (bad file, unknown name, invalid option).

    The message must be one line and say what to do about it; the CLI shows no traceback.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
