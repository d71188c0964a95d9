"""The package's promises: light imports, a public API that is exactly __all__, the plugin."""

from __future__ import annotations

import subprocess
import sys

import pytest

import kratos_aal
from kratos_aal.testing import FakeKratos

pytest_plugins = ["pytester"]


def test_importing_kratos_aal_imports_no_framework() -> None:
    code = (
        "import sys, kratos_aal, kratos_aal.testing.plugin\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'starlette', 'fastapi', 'flask', 'jinja2', 'pyotp', 'segno', 'pytest_django'})\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_public_api_is_all() -> None:
    # "@py..." names are pytest's assertion rewriting (the plugin lives in this package).
    exported = {name for name in vars(kratos_aal) if not name.startswith(("_", "@"))}
    modules = {"annotations", "cli", "exceptions", "integrations", "testing"}
    assert exported - modules == set(kratos_aal.__all__)
    for name in kratos_aal.__all__:
        assert getattr(kratos_aal, name).__module__.startswith("kratos_aal")


def test_fake_kratos_fixture_is_a_fresh_fake(fake_kratos: FakeKratos) -> None:
    assert isinstance(fake_kratos, FakeKratos)
    assert fake_kratos.identities == {}


def test_plugin_is_registered_by_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from kratos_aal import Credentials, Outcome

        def test_uses_fixture(fake_kratos):
            session = fake_kratos.session(aal="aal2", methods=["password", "totp"])
            with fake_kratos.client() as client:
                decision = client.check(Credentials(cookie=session.cookie), "aal2", "http://testserver/")
            assert decision.outcome is Outcome.ALLOW
            assert session.cookies == {"ory_kratos_session": session.cookie}
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_dir_of_testing_lists_its_public_names() -> None:
    import kratos_aal.testing as testing

    names = dir(testing)
    assert set(testing.__all__) <= set(names)
    assert "importlib" not in names and "Any" not in names
