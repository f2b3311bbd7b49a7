"""Fill ``.venv`` with the exact pins of requirements.txt: with uv when it reaches what pip reaches, else with pip.

``make lab`` and ``make test`` run this file as a script (``python lab_helpers/install.py .venv``) with the
interpreter the venv is made from, before anything is installed, so it uses the standard library only.

Why uv: it installs the ~220 pinned packages in seconds where pip takes a minute or more, and it does not
byte-compile them (Python compiles each module the first time it is imported, and only those). Why it must be told
where the packages are: uv does not read pip's configuration, and a workshop machine or a company laptop often has
one (a mirror, local wheels, a constraints file, a CA bundle). So pip's effective settings (``pip config list``:
its files and ``PIP_*`` variables) are translated to uv's options. A pip setting that uv has no equivalent for, a
uv that cannot be installed, or a uv install that fails: then pip installs everything, as it always did.

requirements.txt is the complete list of what gets installed (``--no-deps``: it leaves out two packages on purpose,
see its header), and either way the result is checked: every installed package's requirements must be met
(``uv pip check`` / ``pip check``).
``LAB_INSTALLER=pip make lab`` skips uv altogether.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements.txt"

#: pip settings that change nothing about which files get installed: uv needs no translation of them.
HARMLESS = {
    "disable-pip-version-check", "no-cache-dir", "cache-dir", "progress-bar", "quiet", "verbose", "no-color",
    "root-user-action", "break-system-packages", "no-input", "exists-action", "log", "no-warn-script-location",
    "no-compile", "compile", "require-virtualenv", "upgrade-strategy", "src", "prefer-binary", "retries",
    "no-warn-conflicts", "use-feature", "use-deprecated", "python", "isolated", "no-python-version-warning",
}


class Unsupported(Exception):
    """pip is configured in a way this translation cannot reproduce with uv."""


def pip_settings(python: str) -> dict[str, str]:
    """pip's effective settings for ``pip install`` (its files and ``PIP_*`` variables), from ``pip config list``."""
    out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True).stdout
    return parse_pip_config(out)


def parse_pip_config(out: str) -> dict[str, str]:
    """``pip config list`` output as ``{"find-links": "/opt/wheels", ...}``, the value pip install would use.

    Each ``section.key='value'`` line has the files' values already merged (site over user over global); between
    sections pip's precedence is [global] < [install] < ``PIP_*`` variables (shown as section ``:env:``).
    """
    rank = {"global": 0, "install": 1, ":env:": 2}
    best: dict[str, tuple[int, str]] = {}
    for line in out.splitlines():
        match = re.match(r"^(:env:|[\w-]+)\.([\w-]+)='(.*)'$", line.strip())
        if not match or match[1] not in rank:
            continue  # another command's section ([download], [freeze], ...)
        section, key, value = match[1], match[2].replace("_", "-"), match[3]
        if key not in best or rank[section] >= best[key][0]:
            best[key] = (rank[section], value)
    return {key: value for key, (_, value) in best.items()}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def uv_options(settings: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """uv's command-line options and environment variables that make it see the packages pip would see."""
    args = ["--no-config", "--index-strategy", "unsafe-best-match"]  # pip merges all indexes and picks the best
    env: dict[str, str] = {}
    for key, value in settings.items():
        values = value.split()
        if key in ("index-url", "i"):
            args += ["--index-url", value]
        elif key == "extra-index-url":
            args += [arg for url in values for arg in ("--extra-index-url", url)]
        elif key in ("find-links", "f"):
            args += [arg for link in values for arg in ("--find-links", link)]
        elif key in ("constraint", "c"):
            args += [arg for path in values for arg in ("--constraint", path)]
        elif key == "no-index":
            args += ["--no-index"] if _truthy(value) else []
        elif key == "trusted-host":
            args += [arg for host in values for arg in ("--allow-insecure-host", host)]
        elif key in ("only-binary", "no-binary"):
            args += [arg for item in value.replace(",", " ").split() for arg in (f"--{key}", item)]
        elif key == "pre":
            args += ["--prerelease", "allow"] if _truthy(value) else []
        elif key == "cert":
            env["SSL_CERT_FILE"] = value
        elif key in ("timeout", "default-timeout"):
            env["UV_HTTP_TIMEOUT"] = str(int(float(value)))
        elif key == "proxy":
            env["HTTPS_PROXY"] = env["HTTP_PROXY"] = value
        elif key not in HARMLESS:
            raise Unsupported(f"pip setting {key}={value!r} has no uv equivalent here")
    return args, env


def pinned(name: str) -> str:
    """The ``name==version`` line of requirements.txt (uv's own pin lives there with the rest)."""
    for line in REQUIREMENTS.read_text().splitlines():
        if re.match(rf"^{re.escape(name)}==", line, re.IGNORECASE):
            return line.split(";")[0].strip()
    raise LookupError(f"{name} is not pinned in {REQUIREMENTS}")


def run(command: list[str], env: dict[str, str] | None = None) -> bool:
    """Run ``command`` from the repository root; True when it succeeded (its output goes to the terminal)."""
    return subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, **(env or {})}).returncode == 0


def with_uv(python: str, venv: Path) -> str | None:
    """Install with uv; None when done, else why uv was not used (nothing is left half-done that pip cannot finish)."""
    try:
        args, env = uv_options(pip_settings(python))
    except (Unsupported, subprocess.CalledProcessError, ValueError) as reason:
        return str(reason)
    uv = venv / "bin" / "uv"
    # -qq: pip warns about every local index that lacks uv; an error still shows, and pip then does the install.
    if not uv.exists() and not run([python, "-m", "pip", "install", "-qq", "--no-compile", "--only-binary", "uv",
                                    pinned("uv")]):
        return f"{pinned('uv')} could not be installed with pip"
    base = [str(uv), "pip", "install", "--quiet", "--python", python, *args]
    sources = shlex.join(args[3:]) or "its defaults"  # args[:3]: --no-config and pip's way of merging indexes
    print(f"installing requirements.txt with {pinned('uv')}, from pip's package sources: {sources}", flush=True)
    if not run([*base, "--no-deps", "-r", str(REQUIREMENTS)], env):
        return "uv could not install requirements.txt (see above)"
    if not run([*base, "--no-deps", "--no-build-isolation", "-e", str(REPO_ROOT)], env):
        return "uv could not install the repository (editable)"
    if not run([str(uv), "pip", "check", "--quiet", "--python", python]):
        raise SystemExit("uv pip check: the installed packages' requirements conflict (see above)")
    return None


def with_pip(python: str) -> None:
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile"]
    ok = (run([*pip, "--no-deps", "-r", str(REQUIREMENTS)])
          and run([*pip, "--no-deps", "--no-build-isolation", "-e", str(REPO_ROOT)]))
    if not ok:
        raise SystemExit("pip could not install requirements.txt (see above)")
    if not run([python, "-m", "pip", "check"]):
        raise SystemExit("pip check: the installed packages' requirements conflict (see above)")


def main(argv: list[str]) -> int:
    venv = Path(argv[0] if argv else ".venv").absolute()
    python = str(venv / "bin" / "python")
    started = time.monotonic()
    if not Path(python).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    why_not_uv = None if os.environ.get("LAB_INSTALLER") != "pip" else "LAB_INSTALLER=pip"
    if why_not_uv is None:
        why_not_uv = with_uv(python, venv)
    if why_not_uv is not None:
        print(f"installing with pip ({why_not_uv})", flush=True)
        with_pip(python)
    print(f"{venv.name} ready in {time.monotonic() - started:.0f} s "
          f"({'pip' if why_not_uv else 'uv'}; modules are byte-compiled when first imported)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
