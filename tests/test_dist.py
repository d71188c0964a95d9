"""The built wheel as a user installs it: with one framework's extra and nothing else.

A user follows a getting-started page: ``pip install "kratos-aal[flask]"``, the page's code,
then ``kratos-aal fake`` or ``kratos-aal demo``. Each works, or says in one line which
extra it needs; never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("uv is missing: `make test` installs it into .tools/")
        pytest.skip("uv is missing: `make test` installs it into .tools/")
    return found


def _run(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("PYTHONPATH", None)  # the venv's own kratos_aal, not this checkout's
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd="/",
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run(_uv(), "build", "--wheel", "--quiet", "--out-dir", out, ROOT)
    assert built.returncode == 0, built.stderr
    return next(out.glob("kratos_aal-*.whl"))


def _snippet(page: str) -> str:
    """The first Python block of a getting-started page, as written."""
    text = (ROOT / "docs" / "getting-started" / page).read_text()
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)  # type: ignore[union-attr]


#: For each extra: what `kratos-aal demo --framework X` still asks for with it alone.
DEMO_NEEDS = {"flask": "testing", "fastapi": "jinja2,testing", "django": "drf,testing"}


@pytest.mark.parametrize("extra", ["flask", "fastapi", "django"])
def test_the_wheel_with_one_framework_extra(extra: str, wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run(_uv(), "venv", "--quiet", "--python", sys.executable, venv).returncode == 0
    python, cli = venv / "bin" / "python", venv / "bin" / "kratos-aal"
    installed = _run(_uv(), "pip", "install", "--quiet", "--python", python, f"{wheel}[{extra}]")
    assert installed.returncode == 0, installed.stderr

    fake = _run(cli, "fake", "--port", "0", "--admin-port", "0", timeout=60)
    assert (fake.returncode, fake.stdout) == (2, ""), fake
    assert (
        fake.stderr
        == 'kratos-aal: fake needs the extra testing: pip install "kratos-aal[testing]"\n'
    )

    framework = extra
    demo = _run(cli, "demo", "--framework", framework, "--port", "0", "--no-qr", timeout=60)
    needs = DEMO_NEEDS[extra]
    assert (demo.returncode, demo.stdout) == (2, ""), demo
    assert demo.stderr == (
        f"kratos-aal: demo --framework {framework} needs the extra{'s' if ',' in needs else ''} "
        f'{needs}: pip install "kratos-aal[{needs}]"\n'
    )
    assert _run(cli, "doctor", "--help").returncode == 0

    # The getting-started page's code runs as written with only that extra.
    if extra == "django":
        code = (
            "import django\nfrom django.conf import settings\n"
            "settings.configure(INSTALLED_APPS=['django.contrib.auth', 'django.contrib.contenttypes', "
            "'kratos_aal.integrations.django'], "
            "KRATOS_AAL={'PUBLIC_URL': 'http://kratos:4433'})\ndjango.setup()\n"
            "from kratos_aal.integrations.django import KratosSessionMiddleware, require_aal2\n"
            "from kratos_aal.integrations.django.users import KratosBackend\n"
        )
    else:
        code = _snippet(f"{extra}.md")
    ran = _run(python, "-c", code, timeout=60)
    assert ran.returncode == 0, ran.stderr
