"""The command line is the product's own: its options, with help for every one of them."""

from __future__ import annotations

import click
from click.testing import CliRunner

from gateway.cli import main


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
    return found


def test_the_root_help_offers_no_flask_options() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for flask_option in ("--app", "--debug", "--env-file"):
        assert flask_option not in result.output


def test_every_option_of_every_command_has_help() -> None:
    missing = [(" ".join(path), param.name) for path, command in _commands(main) for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert missing == []


def test_audit_verify_help_lists_its_options_without_needing_a_database() -> None:
    result = CliRunner().invoke(main, ["audit", "verify", "--help"], env={"CONSENT_GATEWAY_DATABASE_URL": "bogus://"})
    assert result.exit_code == 0, result.output
    for option in ("--trusted-checkpoint", "--key", "--json"):
        assert option in result.output
