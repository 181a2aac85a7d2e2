"""Optional dependencies: a command that needs a missing one says which extra installs it."""

import subprocess
import sys

import pytest

from cplvad.errors import CplvadError
from cplvad.extras import require
from cplvad.storage.location import open_location


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "s3fs", None)  # import s3fs -> ImportError
    with pytest.raises(
        CplvadError, match=r"s3:// paths needs the Python package 's3fs'.*pip install 'cplvad\[s3\]'"
    ):
        open_location("s3://bucket/prefix")
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(CplvadError, match=r"pip install 'cplvad\[tracking\]'"):
        require("mlflow", "tracking")


def test_an_installed_optional_package_is_returned():
    assert require("botocore.exceptions", "s3").ClientError.__name__ == "ClientError"


def test_s3_libraries_are_imported_only_for_s3_paths(tmp_path):
    """The CLI and local storage start without fsspec's S3 stack; an s3:// location brings it in."""
    code = f"""
import sys
import cplvad, cplvad.cli
from cplvad.storage.location import open_location
local = open_location({str(tmp_path)!r})
local.write_bytes("a/b.txt", b"x")
assert local.sizes() == {{"a/b.txt": 1}}
heavy = ("s3fs", "boto3", "botocore", "aiobotocore")
print(sorted(m for m in heavy if m in sys.modules))
open_location("s3://bucket/prefix")
print(sorted(m for m in heavy if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["[]", "['aiobotocore', 'botocore', 's3fs']"]
