"""Read the Dockerfile and docker-compose.yml; replay the image's build steps without Docker.

``.ci/image-smoke`` uses this so that CI performs the Dockerfile's own steps, not a copy of
them that could drift:

    python .ci/dockerfile_plan.py build ROOT --uv UV --python PYTHON   # -> ROOT/image.sh
    python .ci/dockerfile_plan.py apps                                   # settings.ATLAS_APPS

``build`` treats ROOT as the image's filesystem: WORKDIR /app is ROOT/app, an ENV value that
is an absolute path moves under ROOT, every COPY copies from the repository (what
.dockerignore leaves out is left out), and each RUN command is translated by an allowlist:
``pip install`` becomes ``uv pip install`` into ROOT/venv, ``python ...`` runs there with
the image's environment, ``useradd``/``chown`` (the container's user, not this machine's)
are skipped and ``mkdir`` makes the directory under ROOT. Any other instruction or command
is an error naming it, so a new step in the Dockerfile must be taught here first.

ROOT/image.sh, sourced by the smoke script, exports the image's environment and sets
IMAGE_CMD, IMAGE_HEALTHCHECK, IMAGE_USER and the commands and health checks of the
compose services (COMPOSE_<SERVICE>_COMMAND, COMPOSE_<SERVICE>_HEALTHCHECK).

atlas/tests/test_image.py checks the same reading against settings and pyproject.toml.
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
# What the image may contain besides the apps (the repository's files the Dockerfile copies).
SUPPORT_FILES = {
    "requirements/prod.lock",
    "pyproject.toml",
    "README.md",
    "manage.py",
    "gunicorn.conf.py",
    "deploy/healthcheck.py",
    "templates",
    "static",
}
SKIPPED_COMMANDS = {"useradd", "chown"}  # the container's user and ownership: not this machine's


class PlanError(Exception):
    """The Dockerfile holds something this replay does not know (or a required part is missing)."""


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Image:
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)
    runs: list[tuple[str, str]] = field(default_factory=list)  # (command, workdir)
    steps: list[tuple[str, object]] = field(default_factory=list)  # in order: ("copy"|"run"|"env", ...)
    user: str = "root"
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)

    def copied_sources(self) -> list[str]:
        return [src for sources, _ in self.copies for src in sources]


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1].rstrip() + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = ""
    if buffer:
        raise PlanError(f"Dockerfile line {start}: the last instruction ends with a continuation.")
    return found


def _exec_form(args: str, where: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{where}: use the exec form (a JSON list), not {args!r}.") from exc
    if not (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        raise PlanError(f"{where}: a non-empty JSON list of strings, not {args!r}.")
    return value


def parse(text: str) -> Image:
    image = Image()
    for ins in instructions(text):
        where = f"Dockerfile line {ins.line} ({ins.keyword})"
        if ins.keyword == "FROM":
            continue
        if ins.keyword == "ENV":
            for pair in shlex.split(ins.args):
                key, sep, value = pair.partition("=")
                if not sep:
                    raise PlanError(f"{where}: write ENV as KEY=value pairs, not {pair!r}.")
                image.env[key] = value
                image.steps.append(("env", (key, value)))
        elif ins.keyword == "WORKDIR":
            image.workdir = str(PurePosixPath(image.workdir, ins.args))
        elif ins.keyword == "COPY":
            parts = shlex.split(ins.args)
            flags = [p for p in parts if p.startswith("--")]
            if flags:
                raise PlanError(f"{where}: COPY flags are not replayed: {flags}.")
            if len(parts) < 2:
                raise PlanError(f"{where}: COPY needs a source and a destination.")
            sources, dest = parts[:-1], parts[-1]
            image.copies.append((sources, dest))
            image.steps.append(("copy", (sources, str(PurePosixPath(image.workdir, dest)))))
        elif ins.keyword == "RUN":
            image.runs.append((ins.args, image.workdir))
            image.steps.append(("run", (ins.args, image.workdir)))
        elif ins.keyword == "USER":
            image.user = ins.args
        elif ins.keyword == "EXPOSE":
            continue
        elif ins.keyword == "HEALTHCHECK":
            options, _, command = ins.args.partition("CMD ")
            image.healthcheck = _exec_form(command.strip(), where)
            for option in shlex.split(options):
                key, _, value = option.removeprefix("--").partition("=")
                image.healthcheck_options[key] = value
        elif ins.keyword == "CMD":
            image.cmd = _exec_form(ins.args, where)
        else:
            raise PlanError(f"{where}: {ins.keyword} is not replayed by .ci/dockerfile_plan.py; teach it first.")
    if not image.cmd:
        raise PlanError("The Dockerfile has no CMD.")
    if not image.healthcheck:
        raise PlanError("The Dockerfile has no HEALTHCHECK (CMD exec form).")
    if image.user in ("", "root", "0"):
        raise PlanError("The Dockerfile runs as root: end with USER and a system user.")
    return image


def atlas_apps(settings_path: Path = REPO / "atlas" / "settings.py") -> list[str]:
    """settings.ATLAS_APPS, read without starting Django."""
    tree = ast.parse(settings_path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ATLAS_APPS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise PlanError(f"{settings_path} defines no ATLAS_APPS list.")


def dockerignore_patterns(repo: Path = REPO) -> list[str]:
    path = repo / ".dockerignore"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def ignored(relative: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("**/"):
            tail = pattern[3:]
            parts = relative.split("/")
            if any(fnmatch.fnmatch("/".join(parts[i:]), tail) for i in range(len(parts))):
                return True
        elif fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def copy_into(sources: list[str], dest: str, root: Path, repo: Path, patterns: list[str]) -> None:
    """Docker's COPY: a directory's contents into dest; files into dest (a directory when it ends in /)."""
    target = root / dest.lstrip("/")
    for source in sources:
        src = repo / source
        if not src.exists():
            raise PlanError(f"COPY {source}: not in the repository.")
        if src.is_dir():
            for path in sorted(src.rglob("*")):
                rel = path.relative_to(repo).as_posix()
                if path.is_dir() or ignored(rel, patterns):
                    continue
                out = target / path.relative_to(src)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
        else:
            out = target / src.name if dest.endswith("/") or len(sources) > 1 else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out)


def image_environment(image: Image, root: Path, venv: Path) -> dict[str, str]:
    """The image's ENV, absolute paths moved under ROOT, the venv first on PATH."""
    env = {k: (str(root / v.lstrip("/")) if v.startswith("/") else v) for k, v in image.env.items()}
    # pip compiles every module's bytecode as it installs, so the image's processes start from .pyc
    # files although they write none; uv compiles nothing, and compiling all of it up front costs
    # more than it saves here: the replay's processes write the .pyc of what they import instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def build_environment() -> dict[str, str]:
    """What a RUN sees of this machine: a clean environment (a docker build has none of the CI's)
    but for the way to the package index (proxies, certificates, uv's and pip's settings)."""
    keep = {"HOME", "LANG", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}
    return {
        k: v
        for k, v in os.environ.items()
        if k in keep or k.startswith(("UV_", "PIP_")) or k.lower().endswith("_proxy")
    }


def translate(command: str, *, root: Path, venv: Path, uv: str) -> list[str] | None:
    """One shell command of a RUN (no && inside) as argv to run here; None when skipped."""
    argv = shlex.split(command)
    assignments = []
    while argv and "=" in argv[0] and not argv[0].startswith("-"):
        assignments.append(argv.pop(0))
    if not argv:
        raise PlanError(f"RUN {command!r}: nothing to run.")
    program, args = argv[0], argv[1:]
    if program in SKIPPED_COMMANDS:
        return None
    if program == "mkdir":
        return ["mkdir", *[a if a.startswith("-") else str(root / a.lstrip("/")) for a in args]]
    if program == "pip" and args[:1] == ["install"]:
        kept = [a for a in args[1:] if a != "--no-cache-dir"]
        python = str(venv / "bin" / "python")
        return ["env", *assignments, uv, "pip", "install", "--quiet", "--python", python, *kept]
    if program == "python":
        return ["env", *assignments, str(venv / "bin" / "python"), *args]
    raise PlanError(f"RUN {command!r}: {program!r} is not replayed by .ci/dockerfile_plan.py; teach it first.")


def build(root: Path, *, uv: str, python: str, repo: Path = REPO, dockerfile: Path | None = None) -> Image:
    image = parse((dockerfile or repo / "Dockerfile").read_text())
    patterns = dockerignore_patterns(repo)
    venv = root / "venv"
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    for kind, payload in image.steps:
        if kind == "copy":
            sources, dest = payload
            copy_into(sources, dest, root, repo, patterns)
        elif kind == "run":
            command, workdir = payload
            cwd = root / workdir.lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
            env = {**build_environment(), **image_environment(image, root, venv)}
            for part in command.split("&&"):
                argv = translate(part.strip(), root=root, venv=venv, uv=uv)
                if argv is not None:
                    print(f"+ {' '.join(argv)}", flush=True)
                    subprocess.run(argv, cwd=cwd, env=env, check=True)
    return image


def compose_services(path: Path = REPO / "docker-compose.yml") -> dict:
    import yaml

    return yaml.safe_load(path.read_text())["services"]


_COMPOSE_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """What compose does to a value before the container sees it: ``${VAR}``, ``${VAR:-default}``
    (default when unset or empty), ``${VAR-default}`` (default when unset) and ``$$`` (a literal ``$``)."""
    env = os.environ if env is None else env

    def one(m: re.Match) -> str:
        if m[0] == "$$":
            return "$"
        name, op, default = m[1], m[2], m[3] or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _COMPOSE_VARIABLE.sub(one, value)


def _array(name: str, values: list[str]) -> str:
    return f"{name}=({' '.join(shlex.quote(v) for v in values)})"


def shell_script(image: Image, root: Path, venv: Path) -> str:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in image_environment(image, root, venv).items()]
    lines.append(f"IMAGE_WORKDIR={shlex.quote(str(root / image.workdir.lstrip('/')))}")
    lines.append(f"IMAGE_USER={shlex.quote(image.user)}")
    lines.append(_array("IMAGE_CMD", image.cmd))
    lines.append(_array("IMAGE_HEALTHCHECK", image.healthcheck))
    for name, service in compose_services().items():
        var = name.upper().replace("-", "_")
        if isinstance(service.get("command"), list):
            lines.append(_array(f"COMPOSE_{var}_COMMAND", [interpolate(a) for a in service["command"]]))
        test = (service.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[:1] == ["CMD"]:
            lines.append(_array(f"COMPOSE_{var}_HEALTHCHECK", [interpolate(a) for a in test[1:]]))
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"] and len(test) == 2:
            # compose interpolates first ($$ is a literal $ for the shell)
            lines.append(_array(f"COMPOSE_{var}_HEALTHCHECK", ["sh", "-c", interpolate(test[1])]))
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="replay the Dockerfile into ROOT and write ROOT/image.sh")
    b.add_argument("root", type=Path)
    b.add_argument("--uv", required=True)
    b.add_argument("--python", required=True)
    sub.add_parser("apps", help="print settings.ATLAS_APPS, one a line")
    args = parser.parse_args(argv)
    try:
        if args.action == "apps":
            print("\n".join(atlas_apps()))
            return 0
        root = args.root.resolve()
        image = build(root, uv=args.uv, python=args.python)
        (root / "image.sh").write_text(shell_script(image, root, root / "venv"))
    except PlanError as exc:
        print(f"dockerfile_plan: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
