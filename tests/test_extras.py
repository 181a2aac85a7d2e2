"""Optional dependencies: a command that needs a missing one says which extra installs it."""

import sys

import pytest

from cplvad.errors import CplvadError
from cplvad.extract import storage
from cplvad.extras import require


def test_a_missing_optional_package_names_its_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 -> ImportError
    with pytest.raises(
        CplvadError, match=r"s3:// paths needs the Python package 'boto3'.*pip install 'cplvad\[s3\]'"
    ):
        storage.s3_client.__wrapped__()
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(CplvadError, match=r"pip install 'cplvad\[tracking\]'"):
        require("mlflow", "tracking")


def test_an_installed_optional_package_is_returned():
    assert require("botocore.exceptions", "s3").ClientError.__name__ == "ClientError"
