"""Counselor chat: a session that checks safety, trims history and streams replies."""

from mindwell.chat.prompts import AI_DISCLOSURE, COUNSELOR_SYSTEM_PROMPT
from mindwell.chat.session import ChatSession, Turn

__all__ = ["AI_DISCLOSURE", "COUNSELOR_SYSTEM_PROMPT", "ChatSession", "Turn"]
