"""The one mindwell command line: `mindwell <verb>`."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mindwell import __version__
from mindwell.errors import MindwellError
from mindwell.paths import CACHE_ENV

app = typer.Typer(
    name="mindwell",
    help=(
        "Supportive mental-health companions on small, local language models.\n\n"
        "Example: mindwell chat --once \"I have been feeling lonely since I moved.\""
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(
    help="List the embedded models and check their files.\n\nExample: mindwell models verify",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")
eval_app = typer.Typer(
    help="Evaluate models and the safety layer.\n\n"
    "Example: mindwell eval safety --data tests/safety/redteam.jsonl --json",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")
err_console = Console(stderr=True, soft_wrap=True)  # never break paths in messages


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mindwell {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help=f"Where derived model files are kept (also ${CACHE_ENV}; default "
            "~/.cache/mindwell).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    if cache_dir is not None:
        os.environ[CACHE_ENV] = str(cache_dir.expanduser().resolve())


def _size(num_bytes: int | None) -> str:
    return "-" if not num_bytes else f"{num_bytes / 1e6:.0f} MB"


@models_app.callback()
def models(ctx: typer.Context) -> None:
    """List the embedded models: kind, size, licence and whether they are present."""
    if ctx.invoked_subcommand is not None:
        return
    from mindwell.models.registry import EMBEDDED, installed_size

    table = Table(title="Embedded models (offline, shipped in PyPI packages)")
    for column in ("name", "kind", "size", "licence", "present"):
        table.add_column(column, overflow="fold")
    missing = []
    for spec in EMBEDDED:
        size = installed_size(spec)
        if size is not None:
            present = "yes"
        elif spec.materialize is not None and _importable(spec.package):
            present = "yes (assembled on first use)"
        else:
            present = "no"
            missing.append(spec)
        table.add_row(spec.name, spec.kind, _size(size or spec.size_bytes), spec.licence, present)
    console = Console()
    console.print(table)
    from mindwell.models.registry import exported_models

    exported = exported_models()
    if exported:
        mine = Table(title="Exported by `mindwell export` (use the name with --model)")
        mine.add_column("name")
        mine.add_column("size")
        mine.add_column("file", overflow="fold")
        for name, path in sorted(exported.items()):
            mine.add_row(name, _size(path.stat().st_size), str(path))
        console.print(mine)
    for spec in missing:
        console.print(f"To install {spec.name}: {spec.install}", highlight=False)
    for spec in EMBEDDED:
        if spec.card and spec.path() is not None:
            console.print(f"{spec.name} applies to {spec.base}; its model card (data, licence, "
                          f"evaluation): mindwell models card {spec.name}", highlight=False)
    console.print(
        "You can also pass --model PATH (a .gguf file, a checkpoint or adapter directory) "
        "or a hub id where a hub is reachable."
    )


@models_app.command("card")
def models_card(name: Annotated[str, typer.Argument(help="An embedded model with a card.")]
                = "mindwell-counselor") -> None:
    """Print a shipped model's card: what it was trained on, its licence and evaluation.

    Example: mindwell models card mindwell-counselor
    """
    from rich.markdown import Markdown

    from mindwell.models.registry import get_spec

    spec = get_spec(name)
    path = spec.path()
    if not spec.card or path is None:
        raise MindwellError(f"'{name}' has no model card shipped with it.",
                            "Cards ship with mindwell's own trained models: "
                            "mindwell models card mindwell-counselor")
    Console().print(Markdown((path.parent / spec.card).read_text(encoding="utf-8")))


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@models_app.command("verify")
def models_verify() -> None:
    """Check every embedded model's file and SHA-256 checksum.

    Example: mindwell models verify
    """
    from mindwell.models.registry import EMBEDDED, verify

    console = Console()
    failed = 0
    for spec in EMBEDDED:
        result = verify(spec)
        mark = "[green]ok[/green]" if result.ok else "[red]FAILED[/red]"
        console.print(f"{mark}  {spec.name}: {result.detail}")
        failed += not result.ok
    if failed:
        raise typer.Exit(1)


def _speaker_to(path: Path | None):
    """A callback that speaks a reply into ``path`` (for --voice-out), or None."""
    if path is None:
        return None

    def speak(reply: str) -> None:
        from mindwell.voice.speech import Speaker

        speech = Speaker().speak(reply, path)
        err_console.print(f"[dim]spoken to {speech.path}[/dim]", highlight=False)

    return speak


@app.command()
def chat(
    model: Annotated[
        str | None,
        typer.Option(help="Registry name, .gguf path, checkpoint/adapter directory or hub id."),
    ] = None,
    once: Annotated[
        str | None, typer.Option(help="Answer this one message, print the reply and exit.")
    ] = None,
    backend: Annotated[
        str, typer.Option(help="auto, llamacpp, transformers or openai.")
    ] = "auto",
    url: Annotated[
        str | None,
        typer.Option(help="Base URL of an OpenAI-compatible server (llama.cpp, vLLM, Ollama)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="MINDWELL_API_KEY", help="API key for --url.")
    ] = None,
    template: Annotated[
        str | None, typer.Option(help="Chat template for models without one: gemma, chatml.")
    ] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest reply, in tokens.")] = 256,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 is greedy.")] = 0.3,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, for repeatable replies.")] = None,
    ctx_size: Annotated[int, typer.Option(min=256, help="Context window in tokens.")] = 4096,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for llama.cpp.")] = None,
    locale: Annotated[
        str | None,
        typer.Option(
            envvar="MINDWELL_LOCALE",
            help="Region for crisis helplines, e.g. US, KR, GB, IE (default: several).",
        ),
    ] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="Replace the counselor system prompt.")
    ] = None,
    voice_in: Annotated[
        Path | None, typer.Option(help="Say the message as audio: transcribe this file and "
                                       "answer it once (needs the voice extra).")
    ] = None,
    voice_out: Annotated[
        Path | None, typer.Option(help="Also speak the reply into this WAV file.")
    ] = None,
    voice: Annotated[
        bool, typer.Option(help="Talk by voice: record from the microphone, speak replies "
                                "aloud (needs audio devices; otherwise use --voice-in).")
    ] = False,
    listen_seconds: Annotated[
        float, typer.Option(min=1.0, help="How long each --voice recording lasts.")] = 8.0,
    webcam: Annotated[
        str | None, typer.Option(help="Opt in to face snapshots every few seconds from this "
                                      "camera index (0) or video file; only emotion labels "
                                      "are kept, never images.")
    ] = None,
) -> None:
    """Talk with the counselor in the terminal; replies stream as they are written.

    Example: mindwell chat --once "I have been feeling lonely since I moved."
    """
    _single_thread_blas()
    from mindwell.chat import COUNSELOR_SYSTEM_PROMPT, ChatSession
    from mindwell.chat.terminal import run_interactive, run_once
    from mindwell.inference import SamplingParams, load_backend
    from mindwell.models.registry import DEFAULT_CHAT_MODEL

    sampling = SamplingParams(max_tokens=max_tokens, temperature=temperature, seed=seed)
    if voice_in is not None:
        from mindwell.voice.speech import Transcriber

        once = Transcriber().transcribe(voice_in).text
        err_console.print(f"[dim]heard: {once or '(nothing)'}[/dim]", highlight=False)
    with load_backend(
        model, backend, url=url, template=template, n_ctx=ctx_size, threads=threads,
        api_key=api_key,
    ) as loaded:
        session = ChatSession(
            loaded, system_prompt or COUNSELOR_SYSTEM_PROMPT, sampling=sampling, locale=locale
        )
        timeline = None
        if webcam is not None:
            from mindwell.vision.webcam import FaceTimeline

            source = int(webcam) if webcam.isdigit() else webcam
            timeline = FaceTimeline(source).start()
            if once is not None:
                time.sleep(0.5)  # one snapshot before a single answer
            session.context = timeline.summary
        if voice:
            from mindwell.chat.terminal import run_voice

            code = run_voice(session, listen_seconds)
        elif once is not None:
            code = run_once(session, once, on_reply=_speaker_to(voice_out))
        else:
            code = run_interactive(session, f"{model or DEFAULT_CHAT_MODEL} on {loaded.name}")
        if timeline is not None:
            timeline.stop()
    raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    recipe: Annotated[
        Path | None, typer.Argument(help="Recipe YAML (see configs/).", show_default=False)
    ] = None,
    dry_run: Annotated[
        bool, typer.Option(help="Validate the recipe and data, print the plan, train nothing.")
    ] = False,
    list_keys: Annotated[bool, typer.Option(help="Print every recipe key and exit.")] = False,
) -> None:
    """Fine-tune a model from a YAML recipe; key=value arguments override the recipe.

    Example: mindwell train configs/tiny-sft.yaml output_dir=runs/tiny max_steps=20
    """
    from mindwell.train.recipe import describe_fields, load_recipe

    if list_keys:
        typer.echo(describe_fields())
        return
    if recipe is None:
        raise MindwellError("No recipe given.", "Example: mindwell train configs/tiny-sft.yaml")
    loaded = load_recipe(recipe, list(ctx.args))
    from mindwell.train.runner import plan
    from mindwell.train.runner import train as run_training

    console = Console()
    if dry_run:
        checked = plan(loaded)
        for line in checked.lines:
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if checked.error() is not None:
            raise checked.error()
        console.print("Dry run passed: nothing was trained.", highlight=False)
        return
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    result = run_training(loaded)
    console.print(f"[green]Done.[/green] Outputs in {result.output_dir}", highlight=False)
    for key, value in sorted(result.metrics.items()):
        if isinstance(value, float):
            console.print(f"  {key}: {value:.4f}", highlight=False)


MAX_FILE_BYTES = 10_000_000  # a diary is kilobytes; anything larger is probably not text


def _read_text_file(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise MindwellError(
                f"{path} is {_size(path.stat().st_size)}: too large for a text file to analyse.",
                "Split it, or use --jsonl with one text a line.")
        data = path.read_bytes()
    except OSError as err:
        raise MindwellError(f"Cannot read {path}: {err.strerror or err}.") from err
    if b"\x00" in data[:8192]:
        raise MindwellError(f"{path} looks like a binary file, not text.",
                            "Give a UTF-8 text file (a diary, notes) or a JSONL file.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise MindwellError(f"{path} is not UTF-8 text (byte {err.start}).",
                            "Save it as UTF-8 and try again.") from err


def _print_analysis(text: str, result: dict) -> None:
    console = Console()
    table = Table(show_header=False, title=text[:60] + ("..." if len(text) > 60 else ""))
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("language", result["language"])
    depression = result["depression"]
    table.add_row("depression signal", f"{'yes' if depression['label'] else 'no'} "
                                       f"(score {depression['score']:.2f})")
    top = sorted(result["emotion"]["scores"].items(), key=lambda kv: -kv[1])[:3]
    table.add_row("emotion", ", ".join(f"{label} {p:.2f}" for label, p in top))
    risk = result["risk"]
    table.add_row("risk", f"{risk['level']} ({risk['action'].replace('_', '-')})"
                          + (f": {'; '.join(risk['reasons'])}" if risk["reasons"] else ""))
    for notice in result.get("notices", []):
        table.add_row("notice", notice)
    console.print(table)
    if risk["escalate"]:
        from mindwell.safety import crisis_reply

        console.print(crisis_reply(os.environ.get("MINDWELL_LOCALE"),
                                   korean=result["language"] == "ko",
                                   categories=risk.get("categories", ())), highlight=False)


@app.command()
def analyze(
    text: Annotated[str | None, typer.Argument(help="The text to analyse.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Analyse a UTF-8 text file "
                                                             "as one text.")] = None,
    jsonl: Annotated[Path | None, typer.Option(
        "--jsonl", help='One {"text": ...} a line in, one JSON result a line out.')] = None,
    out: Annotated[Path | None, typer.Option(help="With --jsonl: write results here instead "
                                                  "of standard output.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Depression signal, emotion (English or Korean) and crisis risk of a text, offline.

    Example: mindwell analyze "I can't sleep and nothing feels worth doing" --json
    """
    _single_thread_blas()
    import json

    from mindwell.analysis.analyzer import default_analyzer, text_problem

    if sum(x is not None for x in (text, file, jsonl)) != 1:
        raise MindwellError("Give exactly one of: a TEXT argument, --file PATH or --jsonl PATH.",
                            'Example: mindwell analyze "I feel tired all the time" --json')
    if jsonl is not None:
        _analyze_jsonl(jsonl, out)
        return
    if file is not None:
        text = _read_text_file(file)
    problem = text_problem(text)
    if problem:
        raise MindwellError(f"Nothing to analyse: {problem}.", "Give some text to analyse.")
    result = default_analyzer().analyze([text])[0]
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        _print_analysis(text, result)


def _analyze_jsonl(path: Path, out: Path | None) -> None:
    """Every line gets a result line, in order; bad lines get an error and do not stop."""
    import json

    from mindwell.analysis.analyzer import BATCH_SIZE, default_analyzer

    lines = _read_text_file(path).splitlines()
    analyzer = default_analyzer()
    sink = out.open("w", encoding="utf-8") if out else sys.stdout
    bad = 0
    try:
        for start in range(0, len(lines), BATCH_SIZE * 4):
            block = lines[start:start + BATCH_SIZE * 4]
            texts, errors = [], {}
            for offset, line in enumerate(block):
                number = start + offset + 1
                try:
                    row = json.loads(line)
                    if not isinstance(row, dict) or "text" not in row:
                        raise ValueError('needs a "text" field')
                    texts.append(row["text"])
                except (json.JSONDecodeError, ValueError) as err:
                    message = (f"not valid JSON ({err.msg})" if isinstance(
                        err, json.JSONDecodeError) else str(err))
                    errors[offset] = f"line {number}: {message}"
                    texts.append(None)
            analysable = [t if isinstance(t, str) else "" for t in texts]
            results = analyzer.analyze(analysable)
            for offset, result in enumerate(results):
                number = start + offset + 1
                if offset in errors:
                    result = {"line": number, "error": errors[offset]}
                elif "error" in result:
                    problem = result["error"]
                    if texts[offset] is not None and not isinstance(texts[offset], str):
                        problem = f"'text' must be a string, not {type(texts[offset]).__name__}"
                    result = {"line": number, "error": f"line {number}: {problem}"}
                if "error" in result:
                    bad += 1
                    err_console.print(f"[yellow]Skipped[/yellow] {result['error']}",
                                      highlight=False)
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
    finally:
        if out:
            sink.close()
    if bad:
        err_console.print(f"{bad} of {len(lines)} lines could not be analysed (see above).",
                          highlight=False)


@eval_app.command("safety")
def eval_safety(
    data: Annotated[Path, typer.Option(help="Red-team JSONL: text, escalate, expected "
                                            "(protocol/check_in/normal), lang, tier, "
                                            "history.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print only the JSON summary.")] = False,
    model: Annotated[str | None, typer.Option(help="Model for the replies to non-escalated "
                                                   "lines (default: the chat default).")] = None,
    generate: Annotated[bool, typer.Option(help="Generate and check replies for lines that "
                                                "do not escalate.")] = True,
    max_tokens: Annotated[int, typer.Option(min=1, help="Reply length for those lines.")] = 48,
    report: Annotated[Path | None, typer.Option(help="Also write the full report (JSON) "
                                                     "here.")] = None,
) -> None:
    """Run a red-team suite through assessment, generation and guardrails.

    Example: mindwell eval safety --data tests/safety/redteam.jsonl --json
    """
    import json

    from mindwell.safety.evaluate import evaluate, read_suite

    rows = read_suite(data)
    backend = None
    if generate:
        from mindwell.inference import load_backend

        backend = load_backend(model)
    result = evaluate(rows, backend, max_tokens=max_tokens)
    if backend is not None:
        backend.close()
    full = {**result.summary(), "replies_generated": result.replies_generated,
            "guardrail_replacements": result.guardrail_replacements,
            "ms_per_assessment": round(result.ms_per_assessment, 3), "groups": result.groups,
            "misses": result.misses, "false_alarms": result.false_alarms}
    if report is not None:
        report.write_text(json.dumps(full, indent=2, ensure_ascii=False))
    if as_json:
        typer.echo(json.dumps(result.summary()))
        return
    table = Table(title=f"Safety suite: {data} ({result.n} lines)")
    for column in ("group", "lines", "correct"):
        table.add_column(column)
    for name, group in result.groups.items():
        table.add_row(name, str(group["n"]), f"{group['accuracy']:.2f}")
    console = Console()
    console.print(table)
    def rate(value):
        return "n/a" if value is None else f"{value:.3f}"

    console.print(
        f"recall {rate(result.recall)} (target >= 0.99) · false alarms "
        f"{result.false_alarm_rate:.3f} (<= 0.05) · protocol recall "
        f"{rate(result.protocol_recall)} (>= 0.97) · protocol false alarms "
        f"{result.protocol_false_alarm_rate:.3f} (<= 0.02) · check-ins "
        f"{result.check_in_rate:.3f} · dose declines {result.decline_rate:.3f} · "
        "method information in replies "
        f"{result.method_info_replies} (0) · {result.ms_per_assessment:.2f} ms per message "
        f"(<= 5) · guardrail replacements {result.guardrail_replacements} of "
        f"{result.replies_generated} replies", highlight=False,
    )


@eval_app.command("counselor")
def eval_counselor(
    model: Annotated[list[str] | None, typer.Option(
        help="Chat model (registry name, GGUF, or a run's LoRA GGUF); repeat to compare. "
             "Default: the default counselor.")] = None,
    prompts: Annotated[Path, typer.Option(
        help="JSONL of {id, lang, messages}; a conversation ending with the counselor gives "
             "its last reply as the reference.")] = Path("configs/data/counsel/counsel_en.jsonl"),
    split: Annotated[str | None, typer.Option(help="Keep only rows whose `split` is this "
                                                   "(the corpus holds out `test`).")] = None,
    out: Annotated[Path, typer.Option(help="Directory for report.md, report.json, "
                                           "replies.jsonl.")] = Path("runs/eval-counselor"),
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many prompts.")] = None,
    max_tokens: Annotated[int, typer.Option(min=8, help="Reply token limit; a reply cut here "
                                                        "did not end by itself.")] = 160,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default: "
                                                           "chat's).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed, for repeatable replies.")] = 0,
    judge_sheet: Annotated[bool, typer.Option(
        help="Also write judge_sheet.jsonl (replies shuffled, models hidden) and "
             "judge_key.json for a blind reader.")] = False,
    ratings: Annotated[Path | None, typer.Option(
        help="A blind reader's ratings of an earlier judge sheet (JSONL: item, empathy, "
             "relevance, helpfulness, safety, fluency, harmful) to join to the models.")] = None,
    key: Annotated[Path | None, typer.Option(help="The judge_key.json for --ratings "
                                               "(default: beside it in --out).")] = None,
    fresh: Annotated[bool, typer.Option(help="Regenerate replies already in --out.")] = False,
) -> None:
    """Language match, replies that end by themselves within 4 sentences, repetition,
    contacts/links/medication/doses and similarity to references; optionally a blind judge.

    Example: mindwell eval counselor --prompts configs/data/counsel/counsel_ko.jsonl
    --split test --model mindwell-counselor --model smollm2-135m-instruct --judge-sheet
    """
    from rich.progress import Progress

    from mindwell.chat.prompts import COUNSELOR_SYSTEM_PROMPT
    from mindwell.counselor.evaluate import (
        generate,
        judged_means,
        read_prompts,
        read_replies,
        score,
        write_judge_sheet,
        write_report,
    )
    from mindwell.models.registry import DEFAULT_CHAT_MODEL

    items = read_prompts(prompts, split, limit)
    sampling = {"max_tokens": max_tokens, "seed": seed}
    if temperature is not None:
        sampling["temperature"] = temperature
    out.mkdir(parents=True, exist_ok=True)
    earlier = [] if fresh else read_replies(out / "replies.jsonl")
    if ratings is not None and not model:
        models = list(dict.fromkeys(r.model for r in earlier))  # the models that were judged
    else:
        models = model or [DEFAULT_CHAT_MODEL]
    wanted = {p.id for p in items}
    replies, scores = [], []
    with Progress(console=err_console, transient=True) as progress:
        for name in models:
            # Replies already in --out for every prompt are reused (so a slow model is
            # generated once and new models join the same comparison); --fresh redoes them.
            have = [r for r in earlier if r.model == name and r.prompt in wanted]
            if len({r.prompt for r in have}) == len(wanted):
                replies += have
                continue
            task = progress.add_task(f"{name}: replying", total=len(items))
            replies += generate(name, items, COUNSELOR_SYSTEM_PROMPT, sampling,
                                on_reply=lambda t=task: progress.advance(t))
    for name in models:
        scores.append(score(name, [r for r in replies if r.model == name], items))
    if judge_sheet:
        sheet, key_file = write_judge_sheet(replies, items, out)
        err_console.print(f"Judge sheet {sheet} (give the reader only this); key {key_file}.",
                          highlight=False)
    if ratings is not None:
        means = judged_means(ratings, key or out / "judge_key.json")
        for entry in scores:
            entry.judged = means.get(entry.model, {})
    report = write_report(scores, replies, items, out, str(prompts))
    Console().print(report.read_text().split("\n## Sample")[0], highlight=False)
    err_console.print(f"Report with sample replies: {report}", highlight=False)


corpus_app = typer.Typer(
    help="Check a counseling corpus before training on it.\n\n"
    "Example: mindwell corpus check configs/data/counsel/counsel_en.jsonl",
    no_args_is_help=True,
)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("check")
def corpus_check(
    files: Annotated[list[Path], typer.Argument(help="Conversation JSONL files.")],
    dedupe: Annotated[bool, typer.Option(help="Also look for near-duplicate conversations "
                                              "(embedded encoder).")] = True,
) -> None:
    """Every counselor reply in the person's language, 2-4 sentences, one question at most,
    no link/phone/medication/promise/amount; no near-duplicates; no scenario on both sides of
    the split. Exits 1 when anything is wrong.

    Example: mindwell corpus check configs/data/counsel/counsel_en.jsonl
    configs/data/counsel/counsel_ko.jsonl
    """
    from mindwell.counselor.corpus import check_corpus

    report = check_corpus(files, dedupe=dedupe)
    console = Console()
    console.print(f"{report.conversations} conversations, {report.replies} counselor replies; "
                  f"languages {report.by_language}; splits {report.by_split}", highlight=False)
    for problem in report.problems[:50]:
        console.print(f"[red]problem[/red] {problem}", highlight=False)
    if len(report.problems) > 50:
        console.print(f"... and {len(report.problems) - 50} more problems", highlight=False)
    for first, second, similarity in report.duplicates:
        console.print(f"[red]near-duplicate[/red] {first} ~ {second} ({similarity:.2f})",
                      highlight=False)
    for scenario in report.scenario_leaks:
        console.print(f"[red]scenario in train and held out[/red] {scenario}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    console.print("[green]ok[/green]")


@corpus_app.command("split")
def corpus_split(
    files: Annotated[list[Path], typer.Argument(help="Conversation JSONL files, rewritten "
                                                     "with a `split` field.")],
    test_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.1,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.06,
    seed: Annotated[int, typer.Option()] = 18,
) -> None:
    """Hold out whole scenarios (language x topic x persona) as test and val, per language.

    Example: mindwell corpus split configs/data/counsel/counsel_en.jsonl
    """
    import json

    from mindwell.counselor.corpus import assign_splits, read_corpus

    for path in files:
        rows = assign_splits(read_corpus([path]), test_fraction, val_fraction, seed)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows),
                        encoding="utf-8")
        counts = {name: sum(r["split"] == name for r in rows) for name in ("train", "val",
                                                                            "test")}
        Console().print(f"{path}: {counts}", highlight=False)


@eval_app.command("classifier")
def eval_classifier(
    model: Annotated[list[str], typer.Option(help="A shipped head (depression, emotion-en, "
                                                  "emotion-ko) or a classify run directory; "
                                                  "repeat to compare.")],
    data: Annotated[Path, typer.Option(help="Labelled CSV, TSV or JSONL.")],
    out: Annotated[Path, typer.Option(help="Directory for report.md, report.json and "
                                           "plots.")] = Path("runs/eval"),
    text_column: Annotated[str, typer.Option(help="Column with the text.")] = "text",
    label_column: Annotated[str, typer.Option(help="Column with the true label.")] = "label",
    limit: Annotated[int | None, typer.Option(min=1, help="Use the first N rows.")] = None,
) -> None:
    """Accuracy, F1, per-class table, AUROC, confusion matrix and calibration of classifiers.

    Example: mindwell eval classifier --model depression --data runs/data/depression_tweets_test.csv
    """
    from mindwell.analysis.evaluate import load_classifier, score, write_report
    from mindwell.train.data import load_table, require_columns, require_strings

    table = load_table(str(data))
    require_columns(table, [text_column, label_column], str(data))
    require_strings(table, text_column, str(data))
    if limit:
        table = table.select(range(min(limit, len(table))))
    texts = list(table[text_column])
    truth = [str(label) for label in table[label_column]]
    results = {}
    for spec in model:
        classifier = load_classifier(spec)
        results[classifier.name] = (classifier, score(classifier, texts, truth))
    report = write_report(results, str(data), out)
    console = Console()
    console.print(report.read_text().split("\n## ")[0], highlight=False)
    console.print(f"Report, per-class tables and plots: {report}", highlight=False)


@eval_app.command("diary")
def eval_diary(
    data: Annotated[Path, typer.Option(help="Labelled diary entries (JSONL): text, lang (en/ko), "
                                            "depression (0/1), emotion.")],
    reader: Annotated[list[Path] | None, typer.Option(
        help="A scripts/train_text_reader.py output directory to compare with the shipped "
             "analyser; repeat for several.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Depression and emotion of `mindwell analyze` on diary entries, per language.

    Example: mindwell eval diary --data tests/analysis/diary_blind_v2.jsonl
    """
    import json

    from mindwell.analysis.analyzer import TextAnalyzer
    from mindwell.analysis.evaluate import evaluate_diary, load_text_reader_run

    needed = {"text", "lang", "depression", "emotion"}
    rows = []
    for number, line in enumerate(_read_text_file(data).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise MindwellError(f"{data} line {number} is not JSON: {err.msg}.",
                                "One JSON object a line.") from err
        if not isinstance(row, dict) or not needed <= set(row):
            raise MindwellError(f"{data} line {number} lacks one of "
                                f"{', '.join(sorted(needed))}.",
                                "Each line needs text, lang, depression and emotion.")
        rows.append(row)
    if not rows:
        raise MindwellError(f"{data} has no entries.", "One JSON object a line.")
    analyzers = {"shipped": TextAnalyzer()}
    for directory in reader or []:
        analyzers[str(directory)] = load_text_reader_run(directory)
    report = {name: evaluate_diary(analyzer, rows) for name, analyzer in analyzers.items()}
    if json_out:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    table = Table("analyser", "lang", "n", "depression acc", "precision", "recall",
                  "emotion acc", "emotion F1 macro", "not a normal reply")
    for name, per_lang in report.items():
        for lang, m in per_lang.items():
            table.add_row(name, lang, str(m["n"]), f"{m['depression_accuracy']:.3f}",
                          f"{m['depression_precision']:.3f}", f"{m['depression_recall']:.3f}",
                          f"{m['emotion_accuracy']:.3f}", f"{m['emotion_f1_macro']:.3f}",
                          f"{m['not_normal_reply']:.3f}")
    Console().print(table)


@eval_app.command("fer")
def eval_fer(
    data: Annotated[Path, typer.Option(help="FER-2013 style manifest CSV (path,label).")],
    out: Annotated[Path, typer.Option(help="Directory for the report.")] = Path("runs/eval-fer"),
    limit: Annotated[int | None, typer.Option(min=1, help="Use the first N rows.")] = None,
    model: Annotated[str | None, typer.Option(
        help="Emotion network: mindwell (shipped CNN, default), fer, or an .onnx file from "
             "scripts/train_fer_cnn.py.")] = None,
) -> None:
    """Accuracy, macro F1, per-class table and confusion matrix of the face emotion model.

    Example: mindwell eval fer --data ../shared/data/fer2013/private_test_manifest.csv
    """
    from mindwell.vision.evaluate import evaluate_fer

    report, _ = evaluate_fer(data, out, limit, model)
    console = Console()
    console.print(report.read_text().split("\n## ")[0], highlight=False)
    console.print(f"Report, per-class table and plots: {report}", highlight=False)


@eval_app.command("generation")
def eval_generation(
    model: Annotated[list[str], typer.Option(help="Chat model (registry name, GGUF, checkpoint "
                                                  "or adapter); repeat to compare.")],
    data: Annotated[str, typer.Option(help="Held-out data: single-turn columns or a "
                                           "messages JSONL.")],
    out: Annotated[Path, typer.Option(help="Directory for report.md and "
                                           "report.json.")] = Path("runs/eval-generation"),
    prompt_column: Annotated[list[str] | None, typer.Option(
        help="Single-turn data: prompt column(s), joined.")] = None,
    response_column: Annotated[str | None, typer.Option(
        help="Single-turn data: the reference answer.")] = None,
    split_column: Annotated[str | None, typer.Option(help="Keep only rows whose this "
                                                          "column equals --split.")] = None,
    split: Annotated[str, typer.Option(help="The split to keep.")] = "test",
    limit: Annotated[int, typer.Option(min=1, help="At most this many prompts.")] = 50,
    max_tokens: Annotated[int, typer.Option(min=1, help="Reply length.")] = 128,
    samples: Annotated[
        int, typer.Option(min=0, help="Prompts shown with every model's reply in the report.")
    ] = 5,
    ppl: Annotated[bool, typer.Option("--perplexity/--no-perplexity",
                                      help="Score reference answers (transformers).")] = True,
    generate: Annotated[bool, typer.Option(help="Generate replies and compare them.")] = True,
) -> None:
    """Perplexity, similarity to reference answers, length and repetition of chat models.

    Example: mindwell eval generation --model gemma3-270m --model runs/counsel/adapter
    --data ../shared/data/counsel_chat/20200325_counsel_chat.csv --prompt-column questionTitle
    --prompt-column questionText --response-column answerText --split-column split
    """
    from mindwell.analysis.generation import (
        evaluate_generation,
        load_pairs,
        write_generation_report,
    )

    pairs = load_pairs(data, prompt_column, response_column,
                       split_column, split if split_column else None, limit)
    results = [evaluate_generation(spec, pairs, max_tokens, ppl=ppl, generate=generate)
               for spec in model]
    report = write_generation_report(results, pairs, data, out, samples=samples)
    console = Console()
    console.print(report.read_text().split("\n## ")[0], highlight=False)
    console.print(f"Report with sample replies: {report}", highlight=False)


@app.command()
def transcribe(
    audio: Annotated[Path, typer.Argument(help="An audio file (WAV, MP3, FLAC, OGG, M4A).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    language: Annotated[str, typer.Option(
        envvar="MINDWELL_LANGUAGE",
        help="auto (detect English or Korean), en or ko.")] = "auto",
    threads: Annotated[int, typer.Option(min=1, help="CPU threads.")] = 2,
) -> None:
    """Speech to text, offline, English and Korean (Whisper base; tiny.en if only it is
    installed).

    Example: mindwell transcribe diary-entry.wav --language ko
    """
    import json

    from mindwell.voice.speech import Transcriber

    transcript = Transcriber(threads=threads, language=language).transcribe(audio)
    if as_json:
        print(json.dumps(transcript.to_dict(), ensure_ascii=False))
    elif transcript.text:
        print(transcript.text)
    else:
        err_console.print("No speech found in the audio.")


@app.command()
def speak(
    text: Annotated[str, typer.Argument(help="What to say.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="WAV file to write.")] = Path(
        "speech.wav"),
    language: Annotated[str | None, typer.Option(
        help="Default: from the text (Korean voice for Hangul, else English). en uses "
             "Piper, ko espeak-ng.")] = None,
    voice: Annotated[str | None, typer.Option(
        help="An espeak-ng voice instead of the default, e.g. ko+f5.")] = None,
    rate: Annotated[int | None, typer.Option(
        min=60, max=450, help="espeak-ng speed in words per minute.")] = None,
) -> None:
    """Text to speech into a WAV file, offline; Korean text gets the Korean voice.

    Example: mindwell speak "Take a slow breath with me." -o breath.wav
    """
    from mindwell.voice.speech import Speaker

    speech = Speaker().speak(text, out, language=language, voice=voice, rate=rate)
    print(f"{speech.path} ({speech.audio_seconds:.1f} s of audio, {speech.engine} "
          f"{speech.voice})")


@app.command("analyze-face")
def analyze_face(
    image: Annotated[Path, typer.Argument(help="A JPEG/PNG image (a photo or a webcam frame).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    cropped: Annotated[bool, typer.Option(help="The image is already one face.")] = False,
    model: Annotated[str | None, typer.Option(
        help="Emotion network: mindwell (shipped CNN, default), fer, or an .onnx file from "
             "scripts/train_fer_cnn.py.")] = None,
) -> None:
    """Every face in an image with its box and its top three emotions.

    Example: mindwell analyze-face selfie.jpg --json
    """
    import json

    from mindwell.vision.faces import FaceAnalyzer, load_image

    frame = load_image(image)
    faces = FaceAnalyzer(model=model).analyze(frame, cropped=cropped)
    if as_json:
        print(json.dumps({"faces": [face.to_dict() for face in faces]}))
        return
    console = Console()
    if not faces:
        console.print("No face found in the image (try a brighter, frontal photo, or "
                      "--cropped if it is already a face).")
        return
    for number, face in enumerate(faces, 1):
        top = ", ".join(f"{emotion} {p:.0%}" for emotion, p in face.top3)
        console.print(f"face {number} at x={face.box[0]} y={face.box[1]} "
                      f"{face.box[2]}x{face.box[3]}: {top}", highlight=False)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A `mindwell train` output_dir.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the exported files.")],
    quant: Annotated[str, typer.Option(
        help="Comma-separated GGUF types: f16, q8_0, q4_k_m, q6_k, ...")] = "f16,q8_0,q4_k_m",
    verify: Annotated[bool, typer.Option(help="Run the round-trip checks (verify.json).")] = True,
    lora: Annotated[bool, typer.Option(help="Also write the adapter as a LoRA GGUF.")] = True,
    name: Annotated[str | None, typer.Option(help="Model name (default: run folder).")] = None,
    max_tokens: Annotated[int, typer.Option(
        help="Longest greedy reply compared in the generation check.")] = 256,
) -> None:
    """Merge, convert to GGUF, quantize, write an Ollama Modelfile, and verify the round trip.

    Example: mindwell export runs/gemma3-270m-counsel-chat --out exports/counselor --quant q4_k_m
    """
    from mindwell.export.exporter import export_run
    from mindwell.export.report import print_result

    result = export_run(run_dir, out, quant.split(","), verify=verify, lora=lora, name=name,
                        max_tokens=max_tokens)
    ok = print_result(result)
    if not ok:
        raise typer.Exit(1)

keys_app = typer.Typer(help="API keys for `mindwell serve`: one per user and client, stored "
                            "hashed (a key is shown once, when it is created).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", envvar="MINDWELL_DATA",
    help="Where people's data lives (default ~/.local/share/mindwell).")]
DatabaseOption = Annotated[str | None, typer.Option(
    help="postgresql://... to use PostgreSQL with pgvector instead of SQLite in --data-dir.")]


def _open_store(data_dir: Path | None, database: str | None):
    from mindwell.memory import Store
    from mindwell.paths import data_dir as default_data_dir

    return Store.open(database or data_dir or default_data_dir())


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="User name (created if new).")],
    label: Annotated[str, typer.Option(help="What the key is for, e.g. a device.")] = "cli",
    data_dir: DataDirOption = None,
    database: DatabaseOption = None,
) -> None:
    """Create an API key and print it once.

    Example: mindwell keys create --user alice --label raspberry-pi
    """
    store = _open_store(data_dir, database)
    account = store.ensure_user(user)
    key = store.create_key(account.id, label)
    err_console.print(f"Key for {user} ({label}); it is stored hashed and shown only now:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(data_dir: DataDirOption = None, database: DatabaseOption = None) -> None:
    """List keys by user, label and first characters (never the whole key)."""
    store = _open_store(data_dir, database)
    for key in store.list_keys():
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(key["created_at"]))
        Console().print(f"{key['user']:<16} {key['prefix']}...  {key['label']:<16} {created}",
                      highlight=False)


@keys_app.command("revoke")
def keys_revoke(
    user: Annotated[str, typer.Option(help="Whose keys.")],
    prefix: Annotated[str | None, typer.Option(
        help="Only the key starting with this (see `keys list`); default all.")] = None,
    data_dir: DataDirOption = None,
    database: DatabaseOption = None,
) -> None:
    """Revoke a user's keys (all, or the one with --prefix)."""
    store = _open_store(data_dir, database)
    account = store.user_by_name(user)
    if account is None:
        raise MindwellError(f"No user '{user}'.", "See `mindwell keys list`.")
    count = store.revoke_keys(account.id, prefix=prefix)
    Console().print(f"Revoked {count} key(s) of {user}.")


def _single_thread_blas() -> None:
    """numpy's OpenBLAS spins a second thread for a while after each call (the safety gate,
    memory search); on 2 cores that thread took a core from llama.cpp's prompt processing
    and made the server's first token 16-57 % slower than the raw runtime's
    (benchmarks/serve.py). The small matrices here gain nothing from a second thread. Must run
    before numpy is imported; an explicit setting in the environment wins."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps it on "
                                           "this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="0 picks a free port.")] = 8000,
    data_dir: DataDirOption = None,
    database: DatabaseOption = None,
    model: Annotated[str | None, typer.Option(
        help="Chat model: registry name, .gguf, checkpoint or adapter.")] = None,
    backend: Annotated[str, typer.Option(help="auto, llamacpp, transformers or openai.")] = "auto",
    url: Annotated[str | None, typer.Option(
        help="Generate on a remote OpenAI-compatible server (vLLM, llama.cpp) instead.")] = None,
    api_key: Annotated[str | None, typer.Option(
        envvar="MINDWELL_REMOTE_API_KEY", help="API key for --url.")] = None,
    user: Annotated[str, typer.Option(help="The local user the web app signs in as.")] = "me",
    locale: Annotated[str | None, typer.Option(
        envvar="MINDWELL_LOCALE", help="Default region for crisis helplines (US, KR, GB, IE).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads for llama.cpp.")] = None,
    ctx_size: Annotated[int, typer.Option(min=256, help="Context window in tokens.")] = 4096,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest reply, in tokens.")] = 256,
) -> None:
    """Serve the diary and counselor web app and the API (OpenAI- and Ollama-compatible).

    Prints a link that signs the browser in as --user. Example: mindwell serve --port 8000
    """
    _single_thread_blas()
    import uvicorn

    from mindwell.app.server import create_app
    from mindwell.app.service import CompanionService, ServeConfig
    from mindwell.paths import data_dir as default_data_dir

    config = ServeConfig(data_dir=data_dir or default_data_dir(), database=database,
                         model=model, backend=backend, url=url, remote_api_key=api_key,
                         user=user, locale=locale, threads=threads, ctx_size=ctx_size,
                         max_tokens=max_tokens)
    err_console.print("Loading the models...")
    service = CompanionService.from_config(config)
    account = service.store.ensure_user(user)
    # A fresh key for the browser at every start; the last start's key stops working.
    service.store.revoke_keys(account.id, label="web")
    key = service.store.create_key(account.id, "web")
    if port == 0:
        import socket

        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    shown = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    where = (database and "PostgreSQL") or str(config.data_dir)
    err_console.print(f"mindwell is an AI companion, not a therapist. Data: {where}.")
    typer.echo(f"Open http://{shown}:{port}/#key={key}")
    try:
        uvicorn.run(create_app(service), host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=5)
    finally:
        service.close()


def main() -> None:
    try:
        app()
    except MindwellError as err:
        err_console.print(f"[bold red]Error:[/bold red] {err.message}", highlight=False)
        if err.hint:
            err_console.print(err.hint, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
