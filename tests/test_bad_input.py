"""Bad options to fit are refused with one clear line, exit status 2, and no run directory left behind."""

import pytest

from tests.test_datamodules import write_mnist
from tests.test_fit import _bad


@pytest.mark.parametrize("extra,needle", [
    (["--max-images", "0"], "--max-images must be a positive number, got 0"),
    (["--batch-size", "-1"], "--batch-size must be a positive number, got -1"),
    (["--max-epochs", "0"], "--max-epochs must be a positive number, got 0"),
    (["--lr", "-1"], "dcgan: lr must be > 0, got -1.0"),
    (["--precision", "bogus"], "Allowed precision values"),
    (["--resolution", "2048"], "more than the"),
])
def test_bad_fit_option_is_refused_and_writes_nothing(capsys, tmp_path, extra, needle):
    write_mnist(tmp_path / "data")
    out = tmp_path / "out"
    _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                  *extra], needle)
    assert not out.exists()


def test_out_that_is_a_file_is_refused(capsys, tmp_path):
    write_mnist(tmp_path / "data")
    (tmp_path / "file").write_text("x")
    _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out",
                  str(tmp_path / "file")], "is an existing file, not a directory")
    assert (tmp_path / "file").read_text() == "x"
