"""The terminal front end of a ChatSession: streamed replies, /reset and /quit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from rich.console import Console

from mindwell.chat.prompts import AI_DISCLOSURE
from mindwell.chat.session import ChatSession, Turn

HELP = "Commands: /reset starts over, /quit leaves (Ctrl-D too). Ctrl-C stops a reply."


def stream_turn(session: ChatSession, turn: Turn, out: TextIO, console: Console) -> str:
    for notice in turn.notices:
        console.print(f"[yellow]{notice}[/yellow]")
    reply = []
    for piece in turn.pieces:
        reply.append(piece)
        out.write(piece)
        out.flush()
    out.write("\n")
    if not turn.escalated and session.backend.last_stats.finish_reason == "length":
        console.print("[dim](reply cut at --max-tokens)[/dim]")
    return "".join(reply)


def run_once(session: ChatSession, message: str, out: TextIO = sys.stdout,
             on_reply: Callable[[str], None] | None = None) -> int:
    """Print one reply to ``message`` and return the exit code (for scripts)."""
    console = Console(stderr=True)
    turn = session.ask(message)
    if turn is None:
        console.print("[yellow]The message is empty; nothing to answer.[/yellow]")
        return 0
    reply = stream_turn(session, turn, out, console)
    if on_reply is not None and reply.strip():
        on_reply(reply)
    return 0


def run_voice(session: ChatSession, listen_seconds: float) -> int:
    """Spoken conversation: record, transcribe, answer, speak; Ctrl-C leaves.

    Recordings and spoken replies live in a temporary folder deleted on exit.
    """
    import tempfile
    from pathlib import Path

    from mindwell.voice.audio_io import play, record, require_device
    from mindwell.voice.speech import Speaker, Transcriber

    require_device("input")
    require_device("output")
    transcriber, speaker = Transcriber(), Speaker()
    console = Console()
    console.print(f"[dim]{AI_DISCLOSURE}[/dim]")
    console.print("[dim]Speak when it says listening; Ctrl-C leaves.[/dim]")
    with tempfile.TemporaryDirectory() as folder:
        while True:
            try:
                console.print(f"[dim]listening ({listen_seconds:.0f} s)...[/dim]")
                said = record(Path(folder) / "said.wav", listen_seconds)
                text = transcriber.transcribe(said).text
                if not text:
                    console.print("[dim](nothing heard)[/dim]")
                    continue
                console.print(f"[bold cyan]you>[/bold cyan] {text}", highlight=False)
                reply = stream_turn(session, session.ask(text), sys.stdout, console)
                if reply.strip():
                    play(speaker.speak(reply, Path(folder) / "reply.wav").path)
            except KeyboardInterrupt:
                console.print()
                return 0


def run_interactive(session: ChatSession, model_label: str) -> int:
    console = Console()
    console.print(f"[bold]mindwell[/bold] · {model_label}")
    console.print(f"[dim]{AI_DISCLOSURE}[/dim]")
    console.print(f"[dim]{HELP}[/dim]\n")
    while True:
        try:
            text = console.input("[bold cyan]you>[/bold cyan] ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return 0
        command = text.strip().lower()
        if command in {"/quit", "/exit", "/q"}:
            return 0
        if command == "/reset":
            session.reset()
            console.print("[dim]Conversation cleared.[/dim]")
            continue
        if command in {"/help", "/?"}:
            console.print(f"[dim]{HELP}[/dim]")
            continue
        turn = session.ask(text)
        if turn is None:
            continue  # empty input is ignored
        console.print("[bold magenta]mindwell>[/bold magenta] ", end="")
        try:
            stream_turn(session, turn, sys.stdout, console)
        except KeyboardInterrupt:
            turn.pieces.close()  # cancels generation; the partial reply is kept
            console.print("\n[dim](reply stopped)[/dim]")
