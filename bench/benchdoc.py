"""Shared by the bench scripts: the machine's description and one section of docs/bench.md,
replaced in place between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`."""
import re
import subprocess
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs/bench.md"
HEADER = "# Benchmarks\n\nEach section is written by its script under `bench/`.\n\n"


def cpu():
    """The processor's model name, as /proc/cpuinfo gives it."""
    return subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                          capture_output=True, text=True).stdout.strip()


def write_section(name, lines):
    """Writes `lines` as the section `name` of docs/bench.md (added at the end the first time)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    section = "\n".join([start, *lines, end]) + "\n"
    text = DOC.read_text() if DOC.exists() else HEADER
    if start in text:
        text = re.sub(re.escape(start) + r".*" + re.escape(end) + r"\n", lambda _: section, text, flags=re.S)
    else:
        text += ("\n" if not text.endswith("\n\n") else "") + section
    DOC.write_text(text)
    print(f"wrote {DOC}")
