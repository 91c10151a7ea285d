"""Safety checks that run on every user message before any generation.

``SafetyGate.assess`` is the one place chat, diary and server ask "is this person at risk?".
This first gate recognises direct statements of suicidal intent, self-harm and common
method-seeking phrasings in English and Korean, and answers them with a deterministic
message that gives helplines instead of letting a small model improvise.
"""

from mindwell.safety.crisis import (
    HELPLINES,
    RiskAssessment,
    SafetyGate,
    crisis_reply,
)

__all__ = ["HELPLINES", "RiskAssessment", "SafetyGate", "crisis_reply"]
