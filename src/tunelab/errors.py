"""User-facing errors: the CLI prints them as one line on stderr and exits with code 2."""

# an error line quotes what the user gave; a 2 MB value must not come back in full
MAX_WORD = 200
MAX_LINE = 400
_TAIL = 120  # a cut line keeps its end: that is where a message says what to do


def _clip_word(word: str) -> str:
    return word if len(word) <= MAX_WORD else f"{word[:MAX_WORD]}[... {len(word) - MAX_WORD} characters cut]"


def one_line(message: object) -> str:
    """`message` on one line: words over MAX_WORD characters and lines over MAX_LINE cut in the middle."""
    text = " ".join(_clip_word(word) for word in str(message).split())
    if len(text) <= MAX_LINE:
        return text
    head = MAX_LINE - _TAIL
    return f"{text[:head]} [... {len(text) - head - _TAIL} characters cut ...] {text[-_TAIL:]}"


class UserError(Exception):
    """A mistake in the user's input (bad file, unknown name, invalid option).

    The message must be one line and say what to do about it; the CLI shows no traceback.
    """

    def __init__(self, message: str):
        super().__init__(one_line(message))
