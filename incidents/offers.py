"""Offers reach responders by email, with one-tap answers that work only for them.

The link carries a signed token naming the deployment, its expert and the offer's deadline.
It stops working when the offer is answered (the workflow only answers open offers), when the
deadline passes, or when the offer is replaced by another one (another deadline, another token).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage, mailers
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from deploy_tracker.errors import IllegalTransition, NotAllowed
from incidents.models import Deployment

log = logging.getLogger(__name__)
SALT = "deploy-tracker.offer-answer"


def answer_token(deployment: Deployment) -> str:
    """The signed token of this offer's accept/decline link."""
    assert deployment.offer_expires_at is not None
    # The deadline is inside, so a plain (timestamp-free) signature: one offer, one link.
    return signing.Signer(salt=SALT).sign_object(
        {"d": deployment.pk, "e": deployment.expert_id, "x": int(deployment.offer_expires_at.timestamp())},
        compress=True,
    )


def answer_url(deployment: Deployment) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("offer-answer", args=[answer_token(deployment)])


@dataclass(frozen=True)
class LinkedOffer:
    """The offer a valid link points at."""

    deployment: Deployment


def read_token(token: str) -> LinkedOffer:
    """Check a link: signed by us, for an offer still open, not past its deadline."""
    try:
        data = signing.Signer(salt=SALT).unsign_object(token)
    except signing.BadSignature:
        raise NotAllowed("This link is not valid. Use the latest offer email, or sign in.") from None
    deployment = (
        Deployment.objects.select_related(
            "request__facility__incident", "request__qualification", "expert__user"
        )
        .filter(pk=data["d"], expert_id=data["e"])
        .first()
    )
    if deployment is None or deployment.offer_expires_at is None:
        raise NotAllowed("This offer no longer exists.")
    if int(deployment.offer_expires_at.timestamp()) != data["x"]:
        raise IllegalTransition("This link belongs to an earlier offer; use the latest email.")
    if deployment.status != Deployment.Status.OFFERED:
        raise IllegalTransition(
            f"This offer was already answered: it is {deployment.get_status_display().lower()}."
        )
    if datetime.fromtimestamp(data["x"], UTC) <= timezone.now():
        raise IllegalTransition(f"This offer expired at {deployment.offer_expires_at:%Y-%m-%d %H:%M} UTC.")
    return LinkedOffer(deployment)


def send_offer_emails(deployment_ids: list[int]) -> int:
    """Email each responder their offer: where, what, when, how far, and the answer links.

    One query and one mail connection for the lot (a 500-offer confirmation is one job).
    Offers answered or withdrawn before the job runs are not mailed. Returns how many were sent.
    """
    deployments = (
        Deployment.objects.select_related("request__facility__incident", "request__qualification", "expert")
        .filter(pk__in=deployment_ids, status=Deployment.Status.OFFERED)
        .exclude(expert__email="")
        .order_by("pk")
    )
    mails = [_offer_email(d) for d in deployments]
    if not mails:
        return 0
    try:
        return mailers.default.send_messages(mails) or 0
    except Exception:  # the offers stand even if the mail server is down; the app shows them too
        log.exception("could not email offers %s", deployment_ids[:20])
        return 0


def _offer_email(deployment: Deployment) -> EmailMessage:
    request = deployment.request
    incident = request.facility.incident
    assert deployment.offer_expires_at is not None
    context = {
        "deployment": deployment,
        "request": request,
        "facility": request.facility,
        "incident": incident,
        "url": answer_url(deployment),
    }
    subject = (
        f"[{incident.number}] Deployment offer: {request.qualification.name} at {request.facility.name}, "
        f"{deployment.start:%b %d} – {deployment.end:%b %d}"
    )
    return EmailMessage(
        subject, render_to_string("incidents/offer_email.txt", context), to=[deployment.expert.email]
    )
