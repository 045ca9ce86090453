"""Every command README.md shows, run as a new user would paste it, against a started Corral.

Corral runs with FakeEngines under README's model names. The only edits to what README says
are the ones README asks of its reader: its URL becomes this Corral's (another port than 8000,
so commands that ignore CORRAL_URL fail), and ``ck-...`` becomes the admin key it printed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.processes import corral_up, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
README_URL = "http://127.0.0.1:8000"
NOT_RUN = {
    # The set-up itself: installing and `corral up` (which this test runs), and the suite.
    "make up": "installs the virtualenv and models, then runs `corral up` (done here)",
    "make test": "runs this test suite",
}
CONFIG = """data_dir: {data}
server: {{port: {port}, drain_grace: 0}}
logging: {{access_log: false}}
models:
  - name: smollm2-135m-instruct
    engine: {{kind: fake, tokens: 8}}
    pricing: {{input_per_1m: 0.5, output_per_1m: 1.5}}
  - name: all-minilm-l6-v2
    engine: {{kind: fake}}
"""


@dataclass(frozen=True)
class Block:
    language: str
    text: str


def blocks(markdown: str) -> list[Block]:
    """README's fenced code blocks, in order."""
    found = re.findall(r"^```(\w+)\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    return [Block(language, text) for language, text in found]


def commands(shell: str) -> list[str]:
    """One entry per command line (backslash continuations joined); comments kept (bash
    ignores them), blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", shell)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, env=env, cwd=REPO, check=False
    )


def no_gpu_here(result: subprocess.CompletedProcess[str]) -> bool:
    """`corral health check` on a machine without a readable GPU: a clear refusal, non-zero."""
    said = " ".join((result.stdout + result.stderr).split())
    return result.returncode != 0 and (
        "NVML is not available" in said or "device could be read" in said
    )


def test_readme_has_the_commands_this_test_knows() -> None:
    shell = [c for b in blocks(README.read_text()) if b.language == "sh" for c in commands(b.text)]
    assert len(shell) >= 14
    firsts = {c.split("#")[0].strip() for c in shell}
    assert set(NOT_RUN) <= firsts
    assert any(c.startswith("corral user add") for c in shell)


def test_every_readme_command_works(tmp_path: Path) -> None:
    readme = README.read_text()
    port = free_port()
    config = tmp_path / "corral.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "data", port=port))
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CORRAL_CLI_CONFIG": str(tmp_path / "no-cli-config.yaml"),
        "COLUMNS": "160",
    }
    env.pop("CORRAL_URL", None)
    env.pop("CORRAL_API_KEY", None)
    with corral_up(config) as corral:
        assert corral.key is not None

        def pasted(text: str) -> str:
            return text.replace(README_URL, corral.url).replace("ck-...", corral.key or "")

        failures, ran, exports = [], 0, []
        for block in blocks(readme):
            if block.language == "python":
                result = run([sys.executable, "-c", pasted(block.text)], env)
                ran += 1
                if result.returncode != 0:
                    failures.append(f"python block:\n{result.stderr[-1500:]}")
                continue
            if block.language != "sh":
                continue
            for command in commands(block.text):
                if command.split("#")[0].strip() in NOT_RUN:
                    continue
                line = pasted(command)
                if line.startswith("export "):
                    exports.append(line)
                    continue
                if line.startswith("curl "):
                    line = line.replace("curl ", "curl --silent --show-error --fail-with-body ", 1)
                # One command a line, after the exports: a comment ends with its line.
                result = run(["bash", "-c", "\n".join([*exports, line])], env)
                ran += 1
                if command.startswith("corral health check") and no_gpu_here(result):
                    continue
                if result.returncode != 0 or "Traceback" in result.stderr:
                    failures.append(
                        f"$ {command}\nexit {result.returncode}\n{result.stdout[-800:]}"
                        f"{result.stderr[-1500:]}"
                    )
        assert failures == [], "\n\n".join(failures)
        assert ran >= 13  # every command but NOT_RUN


@pytest.mark.parametrize(
    ("shell", "expected"),
    [
        ("a \\\n  b\n\nc  # note\n", ["a  b", "c  # note"]),
        ("export X=1   # comment\n", ["export X=1   # comment"]),
    ],
)
def test_command_lines_are_joined_as_bash_reads_them(shell: str, expected: list[str]) -> None:
    assert commands(shell) == expected
