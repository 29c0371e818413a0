"""Forms of the commanders' pages; the rules they enforce live in the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from deploy_tracker.errors import DomainError, InvalidInput
from incidents import requests
from incidents.models import Facility, Incident, RoleRequest


class RoleRequestForm(forms.ModelForm[RoleRequest]):
    """A resource request (ICS 213RR): which role, how many, where, when, how urgent."""

    class Meta:
        model = RoleRequest
        fields = [
            "facility",
            "qualification",
            "quantity",
            "start",
            "end",
            "priority",
            "max_travel_km",
            "notes",
        ]
        widgets = {
            "start": forms.DateInput(attrs={"type": "date"}),
            "end": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {"max_travel_km": "Leave empty for the incident's default radius."}

    def __init__(self, *args: Any, incident: Incident, by: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.by = by
        facility = self.fields["facility"]
        assert isinstance(facility, forms.ModelChoiceField)
        facility.queryset = Facility.objects.filter(incident=incident).order_by("code")

    def clean(self) -> dict[str, Any]:
        """The service's rules, each error next to its field (a field with an error is then
        left out of the model's own constraint checks, so it is reported once)."""
        data = super().clean() or {}
        needed = ("facility", "qualification", "quantity", "start", "end")
        if all(data.get(name) is not None for name in needed):
            try:
                requests.check(
                    self.by,
                    **{name: data[name] for name in needed},
                    existing=self.instance if self.instance.pk else None,
                )
            except InvalidInput as exc:
                self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            except DomainError as exc:
                self.add_error(None, exc.message)
        return data
