"""Pages for people: the offer link, a responder's own deployments and calendar, the home page.

Thin doors: each view checks who is asking, calls one service in incidents/workflow.py or
incidents/offers.py, and renders; a refused move shows the service's own reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core import signing
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from deploy_tracker.errors import DomainError, InvalidInput
from incidents import access, calendar, jobs, offers, requests, selectors, timesheets, workflow
from incidents.access import visible
from incidents.filters import ApprovalFilterSet, ProposalFilterSet
from incidents.forms import RoleRequestForm
from incidents.matching.loader import Options as MatchOptions
from incidents.matching.loader import run as run_matching
from incidents.models import (
    Approval,
    Deployment,
    EquipmentIssue,
    Event,
    Expense,
    Incident,
    IncidentMembership,
    Job,
    RoleRequest,
    TimeEntry,
)
from resources.models import Expert

Status = Deployment.Status
CALENDAR_SALT = "deploy-tracker.calendar"
APPROVALS_PER_PAGE = 100
PROPOSALS_PER_PAGE = 100
FILL_CACHE_SECONDS = 120


def home(request: HttpRequest) -> HttpResponseBase:
    """Send each person where they work."""
    if not request.user.is_authenticated:
        return redirect("login")
    if Expert.objects.filter(user_id=request.user.pk).exists():
        return redirect("my-deployments")
    if request.user.is_staff:
        return redirect("admin:index")
    memberships = IncidentMembership.objects.filter(user_id=request.user.pk).select_related("incident")
    return render(request, "incidents/home.html", {"memberships": memberships})


# --- The offer email's link -----------------------------------------------------------------------


def offer_answer(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the offer; only a POST answers it (mail scanners follow links, never forms)."""
    try:
        deployment = offers.read_token(token).deployment
    except DomainError as exc:
        return render(
            request, "incidents/offer_answer.html", {"problem": exc.message}, status=exc.http_status
        )
    owner = deployment.expert.user
    if request.user.is_authenticated and owner is not None and request.user.pk != owner.pk:
        problem = f"This offer is for {deployment.expert.full_name}. Sign out to use their link."
        return render(request, "incidents/offer_answer.html", {"problem": problem}, status=403)
    if request.method == "POST":
        answer = request.POST.get("answer")
        try:
            if answer == "accept":
                workflow.accept(deployment, by=owner, by_link=True)
            elif answer == "decline":
                workflow.decline(deployment, by=owner, reason=request.POST.get("reason", ""), by_link=True)
            else:
                return render(
                    request, "incidents/offer_answer.html", _offer_context(deployment, token), status=400
                )
        except DomainError as exc:
            return render(
                request, "incidents/offer_answer.html", {"problem": exc.message}, status=exc.http_status
            )
        deployment.refresh_from_db()
        return render(
            request, "incidents/offer_answer.html", {**_offer_context(deployment, token), "answered": True}
        )
    return render(request, "incidents/offer_answer.html", _offer_context(deployment, token))


def _offer_context(deployment: Deployment, token: str) -> dict[str, Any]:
    incident = deployment.request.facility.incident
    return {"deployment": deployment, "token": token, "incident": incident}


# --- My deployments ---------------------------------------------------------------------------------


def _own(request: HttpRequest) -> Expert:
    expert = Expert.objects.filter(user=request.user).first() if request.user.is_authenticated else None
    if expert is None:
        raise Http404("Only a rostered responder has deployments of their own.")
    return expert


def _my_deployments(user: Any) -> QuerySet[Deployment]:
    return visible(user, Deployment.objects.filter(expert__user=user)).select_related(
        "request__facility__incident", "request__qualification"
    )


@login_required
def my_deployments(request: HttpRequest) -> HttpResponse:
    """Open offers, what is coming and what is on now, and the past: one phone-sized page."""
    expert = _own(request)
    assert isinstance(request.user, User)
    workflow.expire_due_offers(expert_id=expert.pk)  # a lapsed offer is shown as what it is
    mine = list(
        _my_deployments(request.user).prefetch_related("time_entries", "expenses").order_by("start", "pk")
    )
    today = timezone.localdate()
    # A stable address (no timestamp): a calendar subscription keeps working.
    feed = reverse("my-calendar", args=[signing.Signer(salt=CALENDAR_SALT).sign_object(request.user.pk)])
    return render(
        request,
        "incidents/my_deployments.html",
        {
            "expert": expert,
            "offers": [d for d in mine if d.status == Status.OFFERED],
            "coming": [d for d in mine if d.status in (Status.ACCEPTED, Status.ON_SITE)],
            "past": [d for d in reversed(mine) if d.status in Deployment.FINAL][:20],
            "today": today,
            "calendar_url": request.build_absolute_uri(feed),
            "categories": Expense.Category.choices,
        },
    )


@login_required
@require_POST
def answer_offer(request: HttpRequest, pk: int, answer: str) -> HttpResponse:
    """Accept or decline one of my offers from the page (signed in)."""
    _own(request)
    assert isinstance(request.user, User)
    deployment = get_object_or_404(_my_deployments(request.user), pk=pk)
    try:
        if answer == "accept":
            workflow.accept(deployment, by=request.user)
            messages.success(
                request, f"Accepted: {deployment.request.facility.name}, from {deployment.start:%b %d}."
            )
        else:
            workflow.decline(deployment, by=request.user, reason=request.POST.get("reason", ""))
            messages.success(request, "Declined. Thank you for answering.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("my-deployments")


@login_required
@require_POST
def my_records(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    """Log a day's hours, or claim an expense, on one of my deployments (from my page)."""
    _own(request)
    assert isinstance(request.user, User)
    deployment = get_object_or_404(_my_deployments(request.user), pk=pk)
    form = request.POST
    try:
        if kind == "time":
            entry = timesheets.log_time(
                deployment,
                by=request.user,
                day=form.get("date", ""),
                regular_hours=form.get("regular_hours", ""),
                overtime_hours=form.get("overtime_hours", ""),
                notes=form.get("notes", ""),
            )
            messages.success(request, f"Hours of {entry.date:%b %d} sent for approval.")
        else:
            expense = timesheets.add_expense(
                deployment,
                by=request.user,
                day=form.get("date", ""),
                category=form.get("category", ""),
                amount=form.get("amount") or None,
                description=form.get("description", ""),
            )
            messages.success(
                request, f"{expense.get_category_display()} ${expense.amount} sent for approval."
            )
    except InvalidInput as exc:
        messages.error(
            request, f"{exc.field.replace('_', ' ').capitalize() if exc.field else 'Form'}: {exc.message}"
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(f"{reverse('my-deployments')}#deployment-{deployment.pk}")


def my_calendar(request: HttpRequest, token: str) -> HttpResponse:
    """An iCalendar feed of my deployments; its address is the credential (calendar apps have
    no session), signed for one user."""
    try:
        user_id = signing.Signer(salt=CALENDAR_SALT).unsign_object(token)
    except signing.BadSignature:
        raise Http404("Unknown calendar.") from None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise Http404("Unknown calendar.")
    mine = _my_deployments(user).filter(status__in=[Status.OFFERED, *Deployment.HOLDING, Status.RELEASED])
    response = HttpResponse(calendar.feed(mine), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="deployments.ics"'
    return response


# --- The incident picture -----------------------------------------------------------------------


def _incident_for(request: HttpRequest, pk: int) -> Incident:
    return get_object_or_404(visible(request.user, Incident.objects.all()), pk=pk)


def _fill_context(incident: Incident) -> dict[str, Any]:
    today = timezone.localdate(timezone=incident.tz)
    rows = [r for r in selectors.request_fill(incident) if r.end >= today]
    return {
        "incident": incident,
        "rows": rows,
        "totals": selectors.totals(rows),
        "map_points": selectors.facility_points(incident, rows),
        # The watch list: trouble coming, not yet an event (an offer about to lapse, a
        # credential that runs out before the deployment does).
        "expiring_offers": list(selectors.expiring_offers(incident, timezone.now())),
        "lapsing": list(selectors.credentials_lapsing(incident)),
    }


def _newest_event(incident: Incident) -> int:
    return Event.objects.filter(incident=incident).order_by("-id").values_list("id", flat=True).first() or 0


@login_required
def incident_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Fill status per request, totals, alerts and background jobs; the page's script keeps
    them live. Commanders also get the two actions: run matching, send the offers."""
    incident = _incident_for(request, pk)
    newest = _newest_event(incident)
    return render(
        request,
        "incidents/incident.html",
        {
            **_fill_context(incident),
            "alerts": selectors.alerts(incident),
            "jobs": incident.jobs.select_related("requested_by")[:3],
            "last_event": newest,
            "can_command": access.can_command(request.user, incident),
            "can_approve": access.can_approve_costs(request.user, incident),
            "map_tiles": settings.MAP_TILES_URL,
            "map_attribution": settings.MAP_ATTRIBUTION,
        },
    )


def _commander_action(request: HttpRequest, pk: int) -> tuple[Incident, User]:
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    return incident, request.user


@login_required
@require_POST
def incident_match(request: HttpRequest, pk: int) -> HttpResponse:
    """Run matching as a background job; the page shows its progress and its end."""
    incident, user = _commander_action(request, pk)
    try:
        job = jobs.start(incident, Job.Kind.MATCHING, by=user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("incident", pk=incident.pk)
    job.refresh_from_db()
    if job.status == Job.Status.DONE and job.result is not None:  # an immediate backend ran it
        summary = job.result["summary"]
        messages.success(
            request,
            f"Matching proposed {summary['proposed']} people; "
            f"{sum(summary['open'].values())} slot(s) stay open. Review, then send the offers.",
        )
    elif job.status == Job.Status.FAILED:
        messages.error(request, job.error)
    else:
        messages.info(request, "Matching started; this page shows its progress.")
    return redirect("incident", pk=incident.pk)


@login_required
@require_POST
def incident_offers(request: HttpRequest, pk: int) -> HttpResponse:
    """Confirm every proposal of the incident: each becomes an offer, emailed to its responder."""
    incident, user = _commander_action(request, pk)
    try:
        done = workflow.offer_proposals(incident, by=user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("incident", pk=incident.pk)
    if done.offered:
        messages.success(request, f"{len(done.offered)} offer(s) sent; responders are emailed.")
    else:
        messages.info(request, "No proposals to offer.")
    for reason in list(done.skipped.values())[:10]:
        messages.warning(request, f"Not offered: {reason}")
    if len(done.skipped) > 10:
        messages.warning(request, f"…and {len(done.skipped) - 10} more not offered.")
    return redirect("incident", pk=incident.pk)


@login_required
def incident_fill(request: HttpRequest, pk: int) -> HttpResponse:
    """The fill table alone, for the page's script to swap in after live events.

    Every open dashboard asks for it after the same burst of events, so it is rendered once per
    incident, newest event, minute (the watch list's clock) and role, then served from the cache.
    """
    incident = _incident_for(request, pk)
    can_command = access.can_command(request.user, incident)
    newest = _newest_event(incident)
    key = f"fill:{incident.pk}:{newest}:{timezone.now():%Y%m%d%H%M}:{int(can_command)}"
    html = _cached(
        key,
        # No request context: the fragment needs none, and its processors tripled the render time.
        lambda: render_to_string(
            "incidents/_fill.html", {**_fill_context(incident), "can_command": can_command}
        ),
    )
    return HttpResponse(html)


_rendering: dict[str, threading.Lock] = {}
_rendering_guard = threading.Lock()


def _cached(key: str, render: Callable[[], str]) -> str:
    """The cached text under `key`, rendered once per process however many ask at the same moment
    (every dashboard refreshes after the same event): the others wait for that render."""
    text = cache.get(key)
    if text is not None:
        return str(text)
    with _rendering_guard:
        lock = _rendering.setdefault(key, threading.Lock())
    try:
        with lock:
            text = cache.get(key)
            if text is None:
                text = render()
                cache.set(key, text, FILL_CACHE_SECONDS)
    finally:
        with _rendering_guard:
            _rendering.pop(key, None)
    return str(text)


@login_required
def check_in_page(request: HttpRequest, pk: int) -> HttpResponse:
    """The screener's screen at the door: who is due, and the fitness-for-duty form for each."""
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    if not access.can_command(request.user, incident):
        raise Http404("Only the incident's commanders screen arrivals.")
    errors: dict[int, dict[str, str]] = {}
    if request.method == "POST":
        deployment = get_object_or_404(
            Deployment.objects.filter(request__facility__incident=incident), pk=request.POST.get("deployment")
        )
        try:
            deployment, screening = workflow.check_in(
                deployment,
                by=request.user,
                temperature_c=request.POST.get("temperature_c", ""),
                spo2=request.POST.get("spo2", ""),
                symptoms=request.POST.getlist("symptoms"),
                notes=request.POST.get("notes", ""),
            )
        except InvalidInput as exc:
            errors[deployment.pk] = {exc.field or "form": exc.message}
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("check-in", pk=incident.pk)
        else:
            who = deployment.expert.full_name
            if screening.result == screening.Result.PASS:
                messages.success(request, f"{who} passed screening and is on site.")
            else:
                messages.error(
                    request, f"{who} did not pass: {'; '.join(screening.reasons)}. Sent home; slot reopened."
                )
            return redirect("check-in", pk=incident.pk)
    today = timezone.localdate(timezone=incident.tz)
    arriving = (
        Deployment.objects.filter(
            request__facility__incident=incident, status=Status.ACCEPTED, start__lte=today + timedelta(days=2)
        )
        .select_related("expert", "request__facility", "request__qualification")
        .order_by("start", "request__facility__code", "expert__last_name")
    )
    return render(
        request,
        "incidents/check_in.html",
        {
            "incident": incident,
            "arriving": arriving,
            "symptoms": workflow.SYMPTOMS,
            "errors": errors,
            "post": request.POST,
        },
    )


def _back_to(request: HttpRequest, name: str, incident: Incident) -> HttpResponse:
    """After a POST, back to the incident page `name` with the filters and page it was sent from
    (its forms post to the address they were shown at)."""
    back = request.GET.urlencode()
    return redirect(reverse(name, args=[incident.pk]) + (f"?{back}" if back else ""))


# --- Approving time and expenses ------------------------------------------------------------------


@login_required
def approvals_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Submitted hours and expenses of the incident, to approve or reject in bulk."""
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    if not access.can_approve_costs(request.user, incident):
        raise Http404("Only the incident's commanders and finance officers approve costs.")
    if request.method == "POST":
        model: type[TimeEntry] | type[Expense] = TimeEntry if request.POST.get("kind") == "time" else Expense
        chosen: list[TimeEntry | Expense] = list(
            model.objects.filter(
                deployment__request__facility__incident=incident,
                pk__in=[int(v) for v in request.POST.getlist("record") if v.isdigit()],
            )
        )
        approve = request.POST.get("decision") == "approve"
        try:
            changed = timesheets.review(
                chosen, by=request.user, approve=approve, reason=request.POST.get("reason", "")
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            if not chosen:
                messages.info(request, "Tick the records to review first.")
            else:
                messages.success(request, f"{changed} record(s) {'approved' if approve else 'rejected'}.")
        # Back to the same filtered, paged view the reviewer was working through.
        return _back_to(request, "approvals", incident)
    related = ("deployment__expert", "deployment__request__facility", "deployment__request__qualification")
    waiting = {"deployment__request__facility__incident": incident, "status": Approval.SUBMITTED}
    lists = {}
    for name, model in (("times", TimeEntry), ("expenses", Expense)):
        filters = ApprovalFilterSet(
            request.GET,
            model.objects.filter(**waiting).select_related(*related).order_by("date", "pk"),
            incident=incident,
        )
        lists[name] = Paginator(filters.qs, APPROVALS_PER_PAGE).get_page(request.GET.get(f"{name}_page"))
    query = request.GET.copy()
    for name in ("times_page", "expenses_page"):
        query.pop(name, None)
    return render(
        request,
        "incidents/approvals.html",
        {"incident": incident, "filters": filters, "query": query.urlencode(), **lists},
    )


# --- The matching board -----------------------------------------------------------------------------


def _match_options(form: Any) -> dict[str, Any]:
    """The what-if overrides from the board's form; a bad radius names the field."""
    options: dict[str, Any] = {"include_unverified": form.get("include_unverified") == "on"}
    radius = (form.get("radius_km") or "").strip()
    if radius:
        try:
            options["radius_km"] = float(radius)
        except ValueError:
            raise InvalidInput(f"{radius!r} is not a number of km.", field="radius_km") from None
        if not 0 < options["radius_km"] <= 20_000:
            raise InvalidInput("The radius must be between 1 and 20,000 km.", field="radius_km")
    return options


@login_required
def matching_board(request: HttpRequest, pk: int) -> HttpResponse:
    """Run matching (with what-ifs), review proposals and why, lock or exclude, send offers."""
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    if not access.can_command(request.user, incident):
        raise Http404("Only the incident's commanders match.")
    preview = None
    errors: dict[str, str] = {}
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action in ("preview", "run"):
                options = _match_options(request.POST)
                if action == "preview":
                    preview = run_matching(
                        incident, by=request.user, options=MatchOptions(dry_run=True, **options)
                    )
                else:
                    jobs.start(incident, Job.Kind.MATCHING, by=request.user, options=options)
                    messages.success(request, "Matching ran; the proposals below are the new ones.")
                    return _back_to(request, "matching-board", incident)
            elif action in ("lock", "unlock", "exclude"):
                deployment = get_object_or_404(
                    Deployment.objects.filter(request__facility__incident=incident),
                    pk=request.POST.get("deployment"),
                )
                if action == "exclude":
                    workflow.exclude(deployment, by=request.user, reason=request.POST.get("reason", ""))
                    messages.success(request, f"{deployment.expert.full_name} excluded from that request.")
                else:
                    workflow.set_locked(deployment, by=request.user, locked=action == "lock")
                return _back_to(request, "matching-board", incident)
            elif action == "offer":
                chosen = [int(v) for v in request.POST.getlist("deployment") if v.isdigit()]
                if not chosen:
                    messages.info(request, "Tick the proposals to offer first.")
                else:
                    done = workflow.offer_proposals(incident, by=request.user, deployments=chosen)
                    messages.success(request, f"{len(done.offered)} offer(s) sent; responders are emailed.")
                    for reason in list(done.skipped.values())[:10]:
                        messages.warning(request, f"Not offered: {reason}")
                return _back_to(request, "matching-board", incident)
        except InvalidInput as exc:
            errors[exc.field or "form"] = exc.message
        except DomainError as exc:
            messages.error(request, exc.message)
            return _back_to(request, "matching-board", incident)
    filters = ProposalFilterSet(
        request.GET,
        Deployment.objects.filter(request__facility__incident=incident, status=Status.PROPOSED)
        .select_related("expert__agency", "request__facility", "request__qualification")
        .order_by("request__priority", "request__facility__code", "request__qualification__code", "pk"),
        incident=incident,
    )
    proposals = Paginator(filters.qs, PROPOSALS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    last_run = incident.jobs.filter(kind=Job.Kind.MATCHING, status=Job.Status.DONE).first()
    return render(
        request,
        "incidents/matching_board.html",
        {
            "incident": incident,
            "proposals": proposals,
            "filters": filters,
            "query": query.urlencode(),
            "last_run": last_run,
            "unfilled": (last_run.result or {}).get("unfilled", []) if last_run else [],
            "preview": preview,
            "errors": errors,
            "post": request.POST,
        },
    )


# --- Demobilization ---------------------------------------------------------------------------------


@login_required
def demob_board(request: HttpRequest, pk: int) -> HttpResponse:
    """Who is due out (ICS 221), what blocks each release, and the check-out: equipment back,
    return travel arranged, release."""
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    if not access.can_command(request.user, incident):
        raise Http404("Only the incident's commanders release people.")
    if request.method == "POST":
        try:
            if request.POST.get("action") == "return":
                item = get_object_or_404(
                    EquipmentIssue.objects.filter(deployment__request__facility__incident=incident),
                    pk=request.POST.get("item"),
                )
                workflow.return_equipment(item, by=request.user)
                messages.success(request, f"{item.item} returned.")
            else:
                deployment = get_object_or_404(
                    Deployment.objects.filter(request__facility__incident=incident),
                    pk=request.POST.get("deployment"),
                )
                workflow.release(
                    deployment, by=request.user, travel_arranged=request.POST.get("travel_arranged") == "on"
                )
                messages.success(request, f"{deployment.expert.full_name} released.")
        except DomainError as exc:
            messages.error(request, exc.message)
        return redirect(f"{reverse('demob-board', args=[incident.pk])}?days={request.GET.get('days', '')}")
    try:
        days = max(0, min(60, int(request.GET.get("days") or 3)))
    except ValueError:
        days = 3
    today = timezone.localdate(timezone=incident.tz)
    return render(
        request,
        "incidents/demob_board.html",
        {
            "incident": incident,
            "due": selectors.due_out(incident, today + timedelta(days=days)),
            "days": days,
            "today": today,
        },
    )


# --- Request entry ----------------------------------------------------------------------------------


@login_required
def request_form(request: HttpRequest, pk: int, request_id: int | None = None) -> HttpResponse:
    """Enter a new resource request, or edit one; the rules are `incidents.requests`'."""
    incident = _incident_for(request, pk)
    assert isinstance(request.user, User)
    if not access.can_command(request.user, incident):
        raise Http404("Only the incident's commanders write its requests.")
    existing = None
    if request_id is not None:
        existing = get_object_or_404(RoleRequest.objects.filter(facility__incident=incident), pk=request_id)
    form = RoleRequestForm(request.POST or None, instance=existing, incident=incident, by=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            saved = requests.save(form.instance, by=request.user)
        except InvalidInput as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Request #{saved.pk} saved: {saved}.")
            return redirect("incident", pk=incident.pk)
    return render(
        request, "incidents/request_form.html", {"incident": incident, "form": form, "existing": existing}
    )
