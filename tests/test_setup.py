"""The README's two set-up commands and CI agree."""

from tests.conftest import ROOT


def commands():
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```bash\n")[1:3]
    return [b.split("\n```")[0].strip() for b in blocks]


def test_ci_runs_the_readme_test_command_verbatim():
    run_app, run_tests = commands()
    assert run_app.endswith("streamlit run streamlit_app.py")
    assert run_tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_requirements_are_pinned():
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-models.txt"):
        for line in (ROOT / name).read_text().splitlines():
            if line and not line.startswith(("#", "-r ")):
                assert "==" in line, f"{name}: {line} is not pinned"
