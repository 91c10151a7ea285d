"""Safety checks that run on every user message before any generation.

``SafetyGate.assess`` is the one place chat, diary and server ask "is this person at risk?".
The gate combines first-person crisis language in English and Korean (``rules.py``), a
learned classifier on multilingual sentence embeddings (``learned.py``) and risk that
accumulates over a conversation (``risk.py``); an escalation is answered with a deterministic message that gives
helplines instead of letting a small model improvise.
"""

from mindwell.safety.crisis import HELPLINES, SafetyGate, crisis_reply
from mindwell.safety.risk import RiskAssessment, RiskAssessor, detect_language

__all__ = [
    "HELPLINES", "RiskAssessment", "RiskAssessor", "SafetyGate", "crisis_reply",
    "detect_language",
]
