# tillbox.settings: the file reading, variable overrides and error wording both programs share.
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from tillbox.settings import SettingsError, Strict, apply_env, read_toml, validate


class Api(Strict):
    port: int = Field(8080, ge=1, le=65535)


class Doc(Strict):
    name: str = "x"
    api: Api = Api()


def test_variables_set_nested_keys_and_say_which_variable_set_which() -> None:
    raw: dict[str, object] = {"api": {"port": 1}}
    environ = {
        "APP_API__PORT": "81",
        "APP_NAME": "shop",
        "APP_CONFIG": "/etc/app.toml",
        "APP_OTHER_KEY": "1",
        "HOME": "/root",
    }
    origins = apply_env(
        raw, environ, "APP_", not_keys={"APP_CONFIG"}, other_prefixes=["APP_OTHER_"]
    )
    assert raw == {"api": {"port": "81"}, "name": "shop"}
    assert origins == {"api.port": "APP_API__PORT", "name": "APP_NAME"}
    with pytest.raises(SettingsError, match="APP_NAME__FIRST: name is not a section"):
        apply_env({"name": "x"}, {"APP_NAME__FIRST": "y"}, "APP_")


def test_problems_name_the_key_the_variable_and_the_page(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    raw: dict[str, object] = {"api": {"prot": 1}}
    origins = apply_env(raw, {"APP_API__PORT": "many"}, "APP_")
    with pytest.raises(SettingsError) as err:
        validate(Doc, raw, path, "docs/app.md", origins)
    assert str(err.value) == (
        f"{path}: api.port (from $APP_API__PORT): Input should be a valid integer, unable to "
        "parse string as an integer; api.prot: unknown key; check its spelling against docs/app.md"
    )
    assert validate(Doc, {"api": {"port": "81"}}, path, "docs/app.md").api.port == 81


def test_a_missing_file_is_empty_or_an_error_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    assert read_toml(path, missing=None) == {}
    with pytest.raises(SettingsError, match=r"app\.toml: no such file\. Write one\.$"):
        read_toml(path, missing="Write one.")
    path.write_text("[api\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="not valid TOML"):
        read_toml(path, missing=None)
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(SettingsError, match="cannot be read"):
        read_toml(path, missing=None)
    path.write_text('name = "shop"\n[api]\nport = 81\n', encoding="utf-8")
    assert read_toml(path, missing=None) == {"name": "shop", "api": {"port": 81}}
