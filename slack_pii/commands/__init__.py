"""Subcommands that live in their own modules. Each module here defines `register(subparsers)`;
`slack_pii.cli` discovers them, so adding a command never means editing a shared list."""
