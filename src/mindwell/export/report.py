"""What `mindwell export` prints: the files, then one row per round-trip check."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mindwell.export.exporter import ExportResult


def print_result(result: ExportResult) -> bool:
    """Print the export; True when every check passed (or none ran)."""
    console = Console()
    files = Table(title=f"Exported to {result.out_dir} in {result.seconds:.0f} s")
    files.add_column("file", overflow="fold")
    files.add_column("size", justify="right")
    entries = [*result.files.values(), result.lora, result.modelfile]
    for path in (p for p in entries if p is not None and p.exists()):
        files.add_row(path.name, f"{path.stat().st_size / 1e6:.1f} MB")
    console.print(files)
    if result.report is None:
        return True
    checks = Table(title="Round-trip verification (verify.json)")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail", overflow="fold")
    for check in result.report.checks:
        status = ("[red]FAIL[/]" if not check.ok else "[yellow]warn[/]" if check.warn
                  else "[green]pass[/]")
        checks.add_row(check.name, status, check.summary)
    console.print(checks)
    for check in result.report.checks:
        if check.warn:
            console.print(f"[yellow]Warning ({check.name}):[/] {check.summary}", highlight=False)
    if not result.report.ok:
        failed = ", ".join(check.name for check in result.report.failed())
        console.print(f"[red]Verification failed: {failed}.[/] The exported files may not "
                      "answer like the trained model; see verify.json for what differs.")
        finetune = next((c for c in result.report.failed() if c.name == "finetune"), None)
        if finetune is not None:
            console.print(finetune.summary.split(" [share of")[0], highlight=False)
    return result.report.ok
