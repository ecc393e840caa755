"""``[retention]`` keys: ages in whole days (at least 1), the daemon's interval, errors naming the key."""

from __future__ import annotations

import pytest

from pbx_sla.config import Retention, load_settings
from pbx_sla.errors import ConfigError


def _load(tmp_path, text: str):
    path = tmp_path / "pbx-sla.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ={})


def test_retention_keys_parse_and_default_to_keeping_everything(tmp_path) -> None:
    assert _load(tmp_path, "").retention == Retention()
    assert not Retention().configured
    r = _load(tmp_path, "[retention]\nlegs_days = 365\nsupport_days = 90\ninterval = 3600\n").retention
    assert r == Retention(legs_days=365, support_days=90, qos_days=None, interval=3600.0) and r.configured


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[retention]\nlegs_days = 0\n", "key 'legs_days' must be at least 1"),
        ("[retention]\nqos_days = '30'\n", "key 'qos_days' must be int"),
        ("[retention]\nsupport_days = true\n", "key 'support_days' must be an integer"),
        ("[retention]\ninterval = 5\n", "key 'interval' must be at least 60"),
        ("[retention]\nlegs = 5\n", "unknown key(s) legs"),
    ],
)
def test_bad_retention_keys_name_the_key(tmp_path, text, message) -> None:
    with pytest.raises(ConfigError, match=r"\[retention\]") as err:
        _load(tmp_path, text)
    assert message in str(err.value)
