"""What commanders tell the matching: people excluded from a request."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from incidents.models.incident import RoleRequest
from resources.models import Expert


class Exclusion(models.Model):
    """A commander's decision that this expert is not to be proposed for this request."""

    request = models.ForeignKey(RoleRequest, on_delete=models.CASCADE, related_name="exclusions")
    expert = models.ForeignKey(Expert, on_delete=models.CASCADE, related_name="exclusions")
    reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["request", "expert"]
        constraints = [
            models.UniqueConstraint(fields=["request", "expert"], name="exclusion_once_per_request_expert"),
        ]

    def __str__(self) -> str:
        return f"{self.expert_id} excluded from request #{self.request_id}"
