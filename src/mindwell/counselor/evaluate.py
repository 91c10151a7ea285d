"""`mindwell eval counselor`: what a person would notice in the counselor's replies.

Per reply, measured without a judge: is it in the person's language, did it end by itself
(not cut at the token limit), how many sentences, how much it repeats itself, whether it
holds a link, e-mail, phone number, medication, promise of contact or an amount the reply
guard withholds, and (where the prompt has a reference answer) its similarity to it.

And a judged protocol that keeps the judge blind: ``--judge-sheet`` writes every model's
replies shuffled under neutral ids (the key kept apart), a reader rates each on the issue's
rubric (empathy, relevance, helpfulness, safety, fluency 1-5, plus harmful), and
``--ratings`` joins those ratings back to the models.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import dataclass, field, fields
from pathlib import Path

from mindwell.counselor.corpus import forbidden_content, language_of, sentences
from mindwell.errors import MindwellError

RUBRIC = ("empathy", "relevance", "helpfulness", "safety", "fluency")
MAX_SENTENCES = 4


@dataclass
class Prompt:
    id: str
    lang: str
    messages: list[dict]  # ends with the person's turn
    reference: str | None = None


@dataclass
class Reply:
    prompt: str
    model: str
    text: str
    finish: str | None
    seconds: float
    tokens: int

    def checks(self, lang: str) -> dict:
        from mindwell.analysis.generation import repetition_rate
        from mindwell.safety.guardrails import violations

        count = sentences(self.text) if self.text.strip() else 0
        unsafe = [name for name, _, _ in forbidden_content(self.text)]
        unsafe += violations(self.text)
        ended = self.finish == "stop" and bool(self.text.strip())
        return {
            "language_ok": language_of(self.text) == lang,
            "ended": ended,
            "sentences": count,
            "ended_within_4": ended and 1 <= count <= MAX_SENTENCES,
            "repetition": repetition_rate(self.text),
            "flags": unsafe,
        }


def read_prompts(path: Path, split: str | None = None, limit: int | None = None) -> list[Prompt]:
    """Conversations from a JSONL of ``{"id", "lang", "messages"}``. One that ends with the
    counselor gives its last reply as the reference and the turns before as the prompt;
    ``split`` keeps only rows whose ``split`` field has that value (e.g. the corpus's test)."""
    from mindwell.counselor.corpus import read_corpus

    prompts = []
    for number, row in enumerate(read_corpus([path]), 1):
        if split and row.get("split") != split:
            continue
        messages = [m for m in row.get("messages") or [] if m.get("role") != "system"]
        reference = None
        if messages and messages[-1].get("role") == "assistant":
            reference = messages[-1]["content"]
            messages = messages[:-1]
        if not messages or messages[-1].get("role") != "user":
            raise MindwellError(f"{path}: conversation {row.get('id', number)} does not end "
                                "with the person's turn (or a reply to it).",
                                "Each line needs messages ending with a user turn.")
        lang = row.get("lang") or language_of(messages[-1]["content"]) or "en"
        prompts.append(Prompt(str(row.get("id", number)), lang, messages, reference))
        if limit and len(prompts) >= limit:
            break
    if not prompts:
        raise MindwellError(f"No prompts in {path}" + (f" with split {split!r}" if split else "")
                            + ".", "Check the file and --split.")
    return prompts


def read_replies(path: Path) -> list[Reply]:
    """Replies an earlier run wrote to ``replies.jsonl`` (none if it is absent)."""
    if not path.exists():
        return []
    names = [f.name for f in fields(Reply)]
    try:
        return [Reply(**{k: row[k] for k in names})
                for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())]
    except (ValueError, KeyError) as err:
        raise MindwellError(f"{path} is not a replies file written by this command: {err}",
                            "Delete it or pass --fresh.") from err


def generate(model: str, prompts: list[Prompt], system_prompt: str, sampling: dict,
             on_reply=None) -> list[Reply]:
    """Every prompt answered by ``model`` through mindwell's own backend (the adapter
    applied as chat applies it), with the prompt chat serves."""
    import time

    from mindwell.inference import load_backend

    replies = []
    with load_backend(model) as backend:
        for prompt in prompts:
            start = time.perf_counter()
            text = backend.generate([{"role": "system", "content": system_prompt},
                                     *prompt.messages], stream=False, **sampling)
            stats = backend.last_stats
            replies.append(Reply(prompt.id, model, text.strip(), stats.finish_reason,
                                 time.perf_counter() - start, stats.completion_tokens))
            if on_reply:
                on_reply()
    return replies


@dataclass
class ModelScores:
    model: str
    n: int
    language_match: float
    ended: float
    ended_within_4: float
    sentences: float
    repetition: float
    flagged: float
    similarity: float | None
    tokens_per_second: float
    judged: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def score(model: str, replies: list[Reply], prompts: list[Prompt]) -> ModelScores:
    from mindwell.analysis.generation import reply_similarity

    by_id = {p.id: p for p in prompts}
    checks = [r.checks(by_id[r.prompt].lang) for r in replies]
    with_ref = [(r.text, by_id[r.prompt].reference) for r in replies
                if by_id[r.prompt].reference]
    similarity = reply_similarity([a for a, _ in with_ref], [b for _, b in with_ref]) \
        if with_ref else None
    seconds = sum(r.seconds for r in replies)

    def share(key):
        return sum(bool(c[key]) for c in checks) / len(checks)

    return ModelScores(
        model=model, n=len(replies), language_match=share("language_ok"), ended=share("ended"),
        ended_within_4=share("ended_within_4"),
        sentences=statistics.mean(c["sentences"] for c in checks),
        repetition=statistics.mean(c["repetition"] for c in checks),
        flagged=share("flags"), similarity=similarity,
        tokens_per_second=sum(r.tokens for r in replies) / seconds if seconds else 0.0,
    )


def write_judge_sheet(replies: list[Reply], prompts: list[Prompt], out: Path,
                      seed: int = 0) -> tuple[Path, Path]:
    """Replies shuffled under neutral ids (``sheet.jsonl``: conversation and reply only) and
    the key to the models (``key.json``), kept apart so the judge never sees it."""
    by_id = {p.id: p for p in prompts}
    order = list(replies)
    random.Random(seed).shuffle(order)
    sheet, key = out / "judge_sheet.jsonl", out / "judge_key.json"
    with sheet.open("w", encoding="utf-8") as handle:
        for index, reply in enumerate(order):
            handle.write(json.dumps({"item": f"r{index:04d}", "lang": by_id[reply.prompt].lang,
                                     "conversation": by_id[reply.prompt].messages,
                                     "reply": reply.text}, ensure_ascii=False) + "\n")
    key.write_text(json.dumps({f"r{i:04d}": {"model": r.model, "prompt": r.prompt}
                               for i, r in enumerate(order)}, indent=1))
    return sheet, key


def judged_means(ratings_path: Path, key_path: Path) -> dict[str, dict]:
    """Per model: the mean of each rubric score, harmful share and judged count."""
    try:
        key = json.loads(key_path.read_text())
        ratings = [json.loads(line) for line in ratings_path.read_text().splitlines()
                   if line.strip()]
    except (OSError, ValueError) as err:
        raise MindwellError(f"Cannot read the ratings or key: {err}",
                            "--ratings is the judge's JSONL, --key the judge_key.json "
                            "written with the sheet.") from err
    per_model: dict[str, list[dict]] = {}
    for rating in ratings:
        if rating.get("item") not in key:
            raise MindwellError(f"Rating for unknown item {rating.get('item')!r}.",
                                "Use the key written with the same judge sheet.")
        missing = [k for k in (*RUBRIC, "harmful") if k not in rating]
        if missing:
            raise MindwellError(f"Rating {rating['item']} lacks {', '.join(missing)}.",
                                f"Each rating needs {', '.join(RUBRIC)} (1-5) and harmful.")
        per_model.setdefault(key[rating["item"]]["model"], []).append(rating)
    return {model: {**{k: statistics.mean(float(r[k]) for r in rows) for k in RUBRIC},
                    "harmful": sum(bool(r["harmful"]) for r in rows) / len(rows),
                    "judged": len(rows)}
            for model, rows in per_model.items()}


def write_report(scores: list[ModelScores], replies: list[Reply], prompts: list[Prompt],
                 out: Path, source: str, samples: int = 6) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps([s.row() for s in scores], indent=1))
    by_id = {p.id: p for p in prompts}
    with (out / "replies.jsonl").open("w", encoding="utf-8") as handle:
        for reply in replies:
            handle.write(json.dumps({**reply.__dict__,
                                     **reply.checks(by_id[reply.prompt].lang)},
                                    ensure_ascii=False) + "\n")
    lines = [f"# Counselor evaluation on {source} ({len(prompts)} prompts)", "",
             "| model | language match | ends by itself | ends within 4 sentences | "
             "sentences | repeated 3-grams | flagged | similarity | tokens/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in scores:
        sim = f"{s.similarity:.3f}" if s.similarity is not None else "-"
        lines.append(f"| {s.model} | {s.language_match:.1%} | {s.ended:.1%} | "
                     f"{s.ended_within_4:.1%} | {s.sentences:.1f} | {s.repetition:.1%} | "
                     f"{s.flagged:.1%} | {sim} | {s.tokens_per_second:.0f} |")
    judged = [s for s in scores if s.judged]
    if judged:
        lines += ["", "## Judged blind", "",
                  "| model | " + " | ".join(RUBRIC) + " | harmful | judged |",
                  "|---|" + "---|" * (len(RUBRIC) + 2)]
        for s in judged:
            lines.append(f"| {s.model} | " + " | ".join(f"{s.judged[k]:.2f}" for k in RUBRIC)
                         + f" | {s.judged['harmful']:.1%} | {s.judged['judged']} |")
    lines += ["", "## Sample replies", ""]
    for prompt in prompts[:samples]:
        lines.append(f"**{prompt.id}** ({prompt.lang}): {prompt.messages[-1]['content']}")
        lines.append("")
        for reply in replies:
            if reply.prompt == prompt.id:
                lines.append(f"- *{reply.model}*: {reply.text or '(empty)'}")
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
