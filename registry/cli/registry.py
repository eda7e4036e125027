"""flask registry ...: the periodic tick that records what the passing of time changed, and the
static mirror of the public site."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.mirror import MAX_COMPARE_VERSIONS, MirrorError, build
from registry.notify import endpoints as webhooks
from registry.services import inbox, publishing, workflow

registry_cli = AppGroup("registry", help="The registry over time: the periodic tick, the static mirror.")


@registry_cli.command("tick")
def tick() -> None:
    """Move dates whose notice can no longer make them, and record changes now in force; remind
    approvers of objections unanswered for 2 business days, and send their daily digest when due
    (what the worker's loop does each minute, for deployments that run this from cron instead)."""
    now = now_utc()
    result = workflow.tick(db.session, now)
    reminded = inbox.unanswered_objections(db.session, now)
    digest = inbox.daily_digest(db.session, now, legal_timezone=current_app.config["REGISTRY"].legal_timezone)
    db.session.commit()
    deliverer = webhooks.deliverer_for(current_app.config["REGISTRY"], db.session)
    try:
        sent = deliverer.drain()
    finally:
        deliverer.close()
    for line in result.lines():
        click.echo(line)
    click.echo(f"{len(result.postponed)} postponed, {len(result.effective)} now effective; "
               f"{len(reminded)} reminder mails about unanswered objections; "
               f"daily digest: {'not due' if digest is None else f'{len(digest)} mails'}; "
               f"{sent} webhook attempts ({deliverer.delivered} delivered).")


@registry_cli.command("mirror")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def mirror(directory: Path) -> None:
    """Write the public site as files into DIRECTORY and switch DIRECTORY/current to them.

    Every public page, document version, comparison (every pair among a document's newest
    versions, up to a bound), entry page, JSON API answer, CSV and feed, rendered by the live views;
    DIRECTORY/current/manifest.json gives each file's URL and content type, and
    DIRECTORY/nginx-mirror.conf nginx's locations for it. The worker keeps it current when
    REGISTRY_MIRROR_DIR is set.
    """
    try:
        result = build(current_app._get_current_object(), directory)  # type: ignore[attr-defined]
    except MirrorError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{len(result.files)} files, {result.total_bytes / 1e6:.1f} MB, from {result.requests} "
               f"requests (comparisons: every pair of the newest {MAX_COMPARE_VERSIONS} versions).")
    click.echo(f"{directory / 'current'} -> {result.tree.name}")
    for skipped in result.not_mirrored:
        click.echo(f"not mirrored, served by the app: {skipped.url}: {skipped.reason}")


@registry_cli.command("recompare")
def recompare() -> None:
    """Recompute every stored comparison of document versions (after an upgrade changed the redline)."""
    count = publishing.recompute_comparisons(db.session)
    db.session.commit()
    click.echo(f"{count} comparison{'' if count == 1 else 's'} recomputed.")
