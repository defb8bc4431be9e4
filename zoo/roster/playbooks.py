"""Playbooks: agents/<name>.md, an agent's instructions (its system prompt).

`read` is the one loader: `zoo check` judges every playbook with it and the runner
reads each one with it before a turn, so a playbook that check accepts is one the run
can use, and one it rejects stops the run the same way. A playbook is opened like every
file of Zoo's own (`state.files.open_in_home`): no symbolic link is followed, on the way or
at the end, and it must be a regular file of the home. It must be UTF-8 text.
"""

from __future__ import annotations

import os

from zoo.errors import UserError
from zoo.state.files import ConfinementError, open_in_home
from zoo.state.home import Home


class PlaybookError(UserError):
    """An agent's playbook cannot be used: it is missing, a link, or not UTF-8 text."""

    def __init__(self, agent: str, rel: str, why: str) -> None:
        self.agent = agent
        self.why = why
        """What is wrong, after the path: `does not exist (write ... there)`."""
        super().__init__(f"playbook {rel} {why}")


def read(home: Home, agent: str) -> str:
    """The text of `agent`'s playbook; `PlaybookError` says why it cannot be used."""
    rel = home.relative(home.playbook(agent))
    try:
        # O_NONBLOCK: a FIFO put there opens at once and is refused, instead of hanging
        fd = open_in_home(home.root, rel, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        why = "does not exist (write the agent's instructions there)"
        raise PlaybookError(agent, rel, why) from None
    except ConfinementError as e:
        # "agents/x.md: is a symbolic link or lies behind one; Zoo uses only files ..."
        raise PlaybookError(agent, rel, str(e).removeprefix(f"{rel}: ")) from None
    with os.fdopen(fd, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        why = f"is not UTF-8 text (byte {e.start}; save it as UTF-8)"
        raise PlaybookError(agent, rel, why) from None
