"""Config loading: every error class names its key and line; examples validate; no secret leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnsfailover.cli.main import main
from dnsfailover.config import load_config, load_text
from dnsfailover.config.durations import format_duration, parse_duration
from dnsfailover.config.secrets import Secret, read_secret_env, read_secret_file
from dnsfailover.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "config"
CASES = sorted(FIXTURES.glob("*.yaml"))


def _expectation(path: Path) -> tuple[int, str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} lacks an '# expect:' line"
    line, rest = first.removeprefix("# expect: ").split(": ", 1)
    return int(line), rest


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_names_file_line_and_key(case: Path) -> None:
    line, expected = _expectation(case)
    with pytest.raises(ConfigError) as raised:
        load_config(case)
    wanted = f"{case}:{line}: {expected}"
    assert any(p.startswith(wanted) for p in raised.value.problems), raised.value.problems


@pytest.mark.parametrize("name", ["example.yaml", "minimal.yaml"])
def test_shipped_configs_validate(name: str) -> None:
    """Their shape: the files they name are the operator's (tests/test_config_files.py)."""
    loaded = load_config(ROOT / "configs" / name, files=False)
    assert not loaded.warnings, loaded.warnings
    assert len(loaded.config.services) >= 1
    assert all(len(s.instances) >= 2 for s in loaded.config.services.values())


def test_three_mistakes_exit_2_and_name_all_three(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace("provider: dns", "provider: dnz")  # no such provider
    text = text.replace("name: acme.example.com.", "name: acme.example.com.\n    ttl: -5")
    text = text.replace("target: ca-west.example.com.", "target: ca-west")  # not a FQDN
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert main(["validate", "-c", str(config)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert any(f"{config}:10: services.acme.provider: no provider 'dnz'" in e for e in errors)
    assert any(f"{config}:12: services.acme.ttl:" in e for e in errors)
    assert any(f"{config}:18: services.acme.instances[1].target:" in e for e in errors)
    assert len(errors) == 3


def test_validate_ok_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "-c", str(ROOT / "configs" / "minimal.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_missing_config_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "-c", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read the config" in capsys.readouterr().err


def test_config_from_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DNSFAILOVER_CONFIG", str(ROOT / "configs" / "minimal.yaml"))
    assert main(["validate"]) == 0
    assert "minimal.yaml: ok" in capsys.readouterr().out


def test_help_lists_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "validate" in out
    for code in ("0  ok", "2  bad usage", "3  refused by a safety rule", "4  the record changed"):
        assert code in out


def test_defaults_are_inherited_and_overridden() -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text() + (
        "defaults:\n  ttl: 30\n  hold_down: 2m\n  checks: {interval: 5s, fall: 4}\n"
    )
    text = text.replace("name: acme.example.com.", "name: acme.example.com.\n    checks: {fall: 1}")
    service = load_text(text, "inline.yaml").config.services["acme"]
    assert service.ttl == 30
    assert service.hold_down == 120
    assert service.checks.interval == 5  # inherited key by key
    assert service.checks.fall == 1  # the service's own value wins
    assert service.checks.rise == 3  # the built-in default


def test_ttl_longer_than_hold_down_is_a_warning_not_an_error() -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace("name: acme.example.com.", "name: acme.example.com.\n    ttl: 900")
    loaded = load_text(text, "inline.yaml")
    assert any("services.acme.ttl: TTL 900s is longer than hold_down" in w for w in loaded.warnings)


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "example.yaml").read_text()
    (tmp_path / "config.yaml").write_text(text)
    config = load_config(tmp_path / "config.yaml", files=False).config
    zonefile = config.providers["lab"]
    assert getattr(zonefile, "path") == tmp_path / "zones" / "example.com.zone"  # noqa: B009


SECRET = "c2VjcmV0LXZhbHVlLW5ldmVyLXByaW50ZWQ="


def test_inline_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace(
        "tsig: {key_file: /run/credentials/dnsfailover.service/tsig}", f"tsig: {{secret: {SECRET}}}"
    )
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert "providers.dns.tsig.secret: unknown key" in str(raised.value)
    assert SECRET not in str(raised.value)
    assert SECRET not in repr(raised.value)


def test_every_mistake_in_one_run_even_in_a_service_that_does_not_parse(
    tmp_path: Path,
) -> None:
    """An unknown key, a bad duration and a duplicate instance name in the same service: all
    three in one run (the duplicate used to wait until every field parsed)."""
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace("name: acme.example.com.", "name: acme.example.com.\n    colour: blue\n"
                        "    hold_down: soon")  # fmt: skip
    text = text.replace("name: ca-west", "name: ca-east")
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    problems = raised.value.problems
    assert any(f"{config}:12: services.acme.colour: unknown key" in p for p in problems)
    assert any(f"{config}:13: services.acme.hold_down:" in p for p in problems)
    assert any(f"{config}:18: services.acme.instances[1].name: 'ca-east' is already "
               "instances[0]" in p for p in problems)  # fmt: skip
    assert len(problems) == 3, problems


def test_two_services_managing_one_record_are_rejected_naming_both(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    service = text[text.index("  acme:") :]
    text += service.replace("  acme:", "  acme-again:").replace("acme.example.com.",
                                                                  "ACME.example.com.")  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(config)
    assert any(
        "services.acme-again.name: acme.example.com. CNAME through provider 'dns' is already "
        "managed by service 'acme'" in p
        for p in raised.value.problems
    ), raised.value.problems
    config.write_text(text.replace("  acme-again:\n", "  acme-again:\n    type: A\n", 1))
    assert not any("already managed" in p for p in _problems(config))  # another record


def _problems(config: Path) -> list[str]:
    try:
        load_config(config)
    except ConfigError as e:
        return e.problems
    return []


def test_secret_files_must_exist_except_systemd_credentials(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    missing = text.replace("/run/credentials/dnsfailover.service/tsig", str(tmp_path / "nope"))
    config = tmp_path / "config.yaml"
    config.write_text(missing)
    assert any(f"providers.dns.tsig.key_file: secret file {tmp_path / 'nope'} does not exist"
               in p for p in _problems(config))  # fmt: skip
    config.write_text(text)  # under /run/credentials/: systemd provides it at start
    loaded = load_config(config)
    assert any("providers.dns.tsig.key_file:" in w and "LoadCredential=" in w
               for w in loaded.warnings)  # fmt: skip
    key = tmp_path / "tsig.key"
    key.write_text('key "k" { algorithm hmac-sha256; secret "c2VjcmV0"; };\n')
    config.write_text(text.replace("/run/credentials/dnsfailover.service/tsig", str(key)))
    assert not any("key_file" in w for w in load_config(config).warnings)


def test_secret_never_prints_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tsig"
    path.write_text(SECRET + "\n")
    from_file = read_secret_file(path, "tsig")
    monkeypatch.setenv("TSIG_SECRET", SECRET)
    from_env = read_secret_env("TSIG_SECRET", "tsig")
    for secret in (from_file, from_env):
        assert secret.reveal() == SECRET
        for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
            assert SECRET not in shown
    assert from_file == from_env


def test_missing_secret_file_and_variable_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read secret file"):
        read_secret_file(tmp_path / "absent", "tsig")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret_file(tmp_path / "empty", "tsig")
    with pytest.raises(ConfigError, match="DNSFAILOVER_NO_SUCH_VAR is not set"):
        read_secret_env("DNSFAILOVER_NO_SUCH_VAR", "tsig")
    assert isinstance(Secret("x", "test"), Secret)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1.5s", 1.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["10", "10x", "", "-5s", "s", 10, None, True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


# ----------------------------------------------------------------------------- fuzzing

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["10s", "CNAME", "rfc2136", "a.example.com."]),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["providers", "services", "type", "name", "instances",
                                       "acme", "target", "checks", "zone", "x"]),
                      children, max_size=4),
    max_leaves=15,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    try:
        load_text(text, "fuzz.yaml")
    except ConfigError as e:
        assert e.problems and all(p.startswith("fuzz.yaml:") for p in e.problems)


@settings(max_examples=200, deadline=None)
@given(document=yaml_values)
def test_any_structure_is_a_config_or_a_config_error(document: object) -> None:
    import yaml

    try:
        load_text(yaml.safe_dump(document), "fuzz.yaml")
    except ConfigError as e:
        assert e.problems


# ----------------------------------------------------------------------------- hostile input

LOL = 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)  # nine levels of nine: 387 million values from 300 bytes


def _load_problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_text(text, "c.yaml")
    return raised.value.problems


def test_an_alias_bomb_is_refused_at_its_line() -> None:
    assert len(LOL) < 400
    (problem,) = _load_problems(LOL)
    assert problem.startswith("c.yaml:5: e: aliases expand to more than")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: &x [*x]\n", "c.yaml:1: a[0]: an alias refers to a value that contains it",
                     id="recursive_list"),
        pytest.param("a:\n  b: &x {c: *x}\n", "c.yaml:2: a.b.c: an alias refers to a value",
                     id="recursive_mapping"),
        pytest.param("a: &x {<<: *x}\n", "c.yaml:1: a: an alias refers to a value",
                     id="recursive_merge_key"),
        pytest.param("[" * 60000, "c.yaml:1: nested more than 32 levels deep", id="deep_nesting"),
        pytest.param("? [a, b]\n: 1\n", "c.yaml:1: (top level): a key is a list or a mapping",
                     id="key_not_a_scalar"),
    ],
)  # fmt: skip
def test_hostile_yaml_is_a_config_error_with_its_line(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in _load_problems(text)), _load_problems(text)


def test_a_config_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "config.yaml"
    big.write_text("a: 1\n" + "#" * (2 * 1024 * 1024))
    assert _problems(big) == [f"{big}:2: the config is over 1024 KiB"]
    assert _problems(Path("/dev/zero")) == ["/dev/zero:1: the config is over 1024 KiB"]


def test_merge_keys_let_a_mapping_override_what_it_merges() -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace(
        "services:\n", "defaults:\n  checks: &fast {interval: 5s, timeout: 2s}\nservices:\n"
    )
    text = text.replace(
        "    provider: dns\n", "    provider: dns\n    checks: {<<: *fast, timeout: 1s}\n"
    )
    checks = load_text(text, "c.yaml").config.services["acme"].checks
    assert (checks.interval, checks.timeout) == (5.0, 1.0)


TOKEN = "t0ken-never-printed"


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"ftp://hooks.example.com/x?token={TOKEN}", id="wrong_scheme"),
        pytest.param(f"https://user:{TOKEN}@hooks.example.com:99999/x", id="bad_port_userinfo"),
        pytest.param(f"https://[::1/x?token={TOKEN}", id="does_not_parse"),
        pytest.param(f"https:///x?token={TOKEN}", id="no_host"),
        pytest.param(f"https://hooks.example.com/x?token={TOKEN} ", id="trailing_space"),
    ],
)
def test_a_webhook_url_with_a_token_is_never_echoed(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    config = tmp_path / "config.yaml"
    config.write_text(text + f"notify:\n  webhook:\n    url: {json.dumps(url)}\n")
    assert main(["validate", "-c", str(config)]) == 2
    out = capsys.readouterr()
    assert f"{config}:21: notify.webhook.url:" in out.err
    assert TOKEN not in out.out + out.err
    assert TOKEN not in "\n".join(_problems(config))


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(["PAGER_KEY", "LC_ALL"], None, id="names_pass"),
        pytest.param(["NOT-A-NAME"], "not an environment variable name", id="bad_name"),
        pytest.param(["DNSFAILOVER_EVENT"], "DNSFAILOVER_* variables are the event's own",
                     id="event_variables_are_not_listed"),
    ],
)  # fmt: skip
def test_notify_exec_env_lists_variable_names(names: list[str], expected: str | None) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text += f"notify:\n  exec:\n    argv: [/bin/true]\n    env: {json.dumps(names)}\n"
    if expected is None:
        hook = load_text(text, "c.yaml").config.notify
        assert hook is not None and hook.exec is not None and hook.exec.env == tuple(names)
        return
    assert any(f"notify.exec.env[0]: {expected}" in p for p in _load_problems(text))


def _coordination(endpoint: str, tmp_path: Path) -> str:
    password = tmp_path / "etcd-password"
    password.write_text("pw\n")
    return (
        "coordination:\n  site: east\n  sites: [east]\n  etcd:\n"
        f"    endpoints: [{endpoint}]\n    username: dnsfailover\n"
        f"    password_file: {password}\n"
    )


def test_an_etcd_password_is_refused_over_http(tmp_path: Path) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    problems = _load_problems(text + _coordination("http://etcd-east:2379", tmp_path))
    assert any(p.startswith("c.yaml:25: coordination.etcd.password_file: endpoints [0] are "
                            "http://") for p in problems), problems  # fmt: skip
    loaded = load_text(text + _coordination("https://etcd-east:2379", tmp_path), "c.yaml")
    assert loaded.config.coordination is not None


def test_an_unknown_route53_profile_is_a_config_error_when_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dnsfailover.config.models import Route53Settings
    from dnsfailover.providers import build_provider

    (tmp_path / "config").write_text("[profile known]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    settings = Route53Settings(type="route53", zone="example.com.", profile="nope")
    with pytest.raises(ConfigError, match="profile: no AWS profile 'nope'"):
        build_provider("r53", settings)


@pytest.mark.parametrize(
    ("checks", "bound", "cap"),
    [
        pytest.param("{}", 43.0, 20.0, id="defaults_settle_window_and_fall_times_interval"),
        pytest.param("{interval: 5s, rise: 2, fall: 4}", 28.0, 20.0, id="defaults_follow_checks"),
        pytest.param("{inconclusive_after: 2m, max_retry_after: 1m}", 120.0, 60.0, id="set"),
        pytest.param("{max_retry_after: 0s}", 43.0, 0.0, id="retry_after_may_be_ignored"),
    ],
)
def test_inconclusive_after_and_max_retry_after(checks: str, bound: float, cap: float) -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace("name: acme.example.com.", f"name: acme.example.com.\n    checks: {checks}")
    service = load_text(text, "inline.yaml").config.services["acme"]
    assert service.checks.inconclusive_bound == bound
    assert service.checks.retry_after_cap == cap


def test_inconclusive_after_under_two_intervals_is_refused() -> None:
    text = (ROOT / "configs" / "minimal.yaml").read_text()
    text = text.replace(
        "name: acme.example.com.", "name: acme.example.com.\n    checks: {inconclusive_after: 15s}"
    )
    with pytest.raises(ConfigError, match="inconclusive_after must be at least the settle window"):
        load_text(text, "inline.yaml")
