"""One exception type for problems a user can fix; the CLI prints it without a traceback."""


class MindwellError(Exception):
    """A problem with the user's input or environment, with the fix in ``hint``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message
