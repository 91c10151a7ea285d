"""Fixed text for the round-trip checks: what a tokenizer, template or quantization could break.

The tokenizer sample crosses a few dozen base strings (English, Korean, emoji, code, odd
whitespace, special-token text) with the edits that usually expose a converter bug: a
leading space, a trailing newline, doubled spaces, a tab. 251 strings, always the same.
"""

from __future__ import annotations

BASE_STRINGS = [
    "I have been feeling really low lately.",
    "Thank you for listening. It helps more than you know.",
    "What can I do when I can't sleep?",
    "My therapist said I should write down three good things each day.",
    "I'm fine... I think? Maybe not.",
    "It's been 3 weeks since the breakup, and I still cry every night.",
    "Don't worry—I'm safe. I just needed to say it out loud.",
    "e-mail: someone@example.com, phone: +1 (555) 010-0199",
    "Hello   world",
    "UPPERCASE, lowercase, MiXeD cAsE",
    "naïve café résumé coöperate façade",
    "¿Cómo estás? Ça va? Schön, danke!",
    "요즘 너무 우울하고 아무것도 하기 싫어요.",
    "오늘은 조금 괜찮았어요. 산책을 했거든요.",
    "친구가 상처 주는 말을 해서 잠이 안 와요 ㅠㅠ",
    "배고파 죽겠다 ㅋㅋㅋ",
    "시험 때문에 스트레스 받아요!!!",
    "感谢你的倾听。",
    "ありがとうございます。",
    "Привет, как дела?",
    "مرحبا كيف حالك",
    "🙂🙃😢😭❤️👍🏽🌧️☀️",
    "I'm okay 🙂 just tired 😴",
    "family 👨‍👩‍👧‍👦 and flags 🇰🇷🇺🇸",
    "def mood(score: float) -> str:\n    return 'low' if score < 0.5 else 'ok'",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    '{"text": "hello", "label": 1}',
    "SELECT * FROM diary WHERE user_id = 42;",
    "https://988lifeline.org/ and www.example.com/path?q=1&r=2",
    "tabs\tbetween\twords",
    "line one\nline two\n\nline four",
    "trailing spaces   ",
    "   leading spaces",
    "\n\n\n",
    " ",
    "a",
    "1234567890 3.14159 1,000,000 -42",
    "<start_of_turn>user\nhi<end_of_turn>\n",
    "plain text that mentions <b>html</b> & entities &amp;",
    "Mixed 한국어 and English in one 문장.",
    "....!!!???---___***",
    "𝓕𝓪𝓷𝓬𝔂 𝓽𝓮𝔁𝓽 and ｆｕｌｌｗｉｄｔｈ",
    "zero\u200bwidth and non\u00a0breaking space",
    "The end of the sentence.\r\nWindows newline.",
]

EDITS = [
    lambda s: s,
    lambda s: " " + s,
    lambda s: s + "\n",
    lambda s: s.replace(" ", "  "),
    lambda s: "\t" + s,
    lambda s: s.upper() if s.isascii() else s + " " + s,
]


def tokenizer_sample() -> list[str]:
    seen: dict[str, None] = {}
    for text in BASE_STRINGS:
        for edit in EDITS:
            seen.setdefault(edit(text), None)
    return list(seen)


CONVERSATIONS = [
    [{"role": "user", "content": "I feel lonely since I moved to a new city."}],
    [
        {"role": "system", "content": "You are a warm, careful counselor."},
        {"role": "user", "content": "I can't sleep and I worry about work."},
    ],
    [
        {"role": "user", "content": "요즘 너무 우울해요."},
        {"role": "assistant", "content": "많이 힘드셨겠어요. 언제부터 그렇게 느끼셨나요?"},
        {"role": "user", "content": "한 달쯤 됐어요."},
    ],
    [
        {"role": "system", "content": "Keep replies short."},
        {"role": "user", "content": "My friend hurt me."},
        {"role": "assistant", "content": "That sounds painful. What happened?"},
        {"role": "user", "content": "She forgot my birthday 🙁"},
        {"role": "assistant", "content": "It makes sense to feel hurt."},
        {"role": "user", "content": "Should I tell her?"},
    ],
]

GENERATION_PROMPTS = [
    "I feel lonely since I moved to a new city. What can I do?",
    "I can't stop worrying about my exams.",
    "My partner and I keep arguing about small things.",
    "요즘 잠을 잘 못 자요. 어떻게 하면 좋을까요?",
    "I think I'm a burden to my friends.",
]

# Held-out prose for perplexity: written for this check, never trained on.
HELDOUT_TEXT = [
    "It sounds like the last few weeks have asked a lot of you. When everything feels urgent, "
    "it can help to pick one small thing you can do today and let the rest wait until tomorrow.",
    "Many people notice that their mood follows their sleep. Keeping the same bedtime, even on "
    "weekends, and putting the phone away half an hour before can make nights a little easier.",
    "You mentioned that you feel like a burden. Friends often want to help more than we expect, "
    "and telling one person how you really are can be a relief for both of you.",
    "Arguments about small things are often about something bigger underneath, like feeling "
    "unheard. Choosing a calm moment to talk about what you both need can change the pattern.",
    "Grief does not follow a schedule. Some days will feel lighter and others heavier, and both "
    "are part of missing someone you loved.",
    "요즘 많이 지치셨던 것 같아요. 하루에 한 가지라도 나를 위한 작은 일을 해 보는 건 어떨까요?",
    "걱정이 많을 때는 걱정을 종이에 적어 두고 "
    "정해진 시간에만 생각해 보는 방법이 도움이 되기도 해요.",
    "When anxiety rises, slow breathing can help: breathe in for four counts, hold for a moment, "
    "and breathe out for six. Repeating this a few times tells the body it is safe to settle.",
]
