import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see ulmfit.cli.main

import pytest  # noqa: E402

os.environ.setdefault("ULMFIT_CACHE", os.path.join(os.path.dirname(__file__), ".cache-never-used"))


@pytest.fixture
def run_cli(capsys):
    """Run the `ulmfit` CLI in-process; returns (exit code, stdout, stderr)."""
    from ulmfit.cli import main

    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
