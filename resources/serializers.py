"""What the roster API reads: experts with their credentials, and the qualification catalog."""

from __future__ import annotations

from rest_framework import serializers

from resources.models import Credential, Expert, Qualification


class QualificationSerializer(serializers.ModelSerializer[Qualification]):
    class Meta:
        model = Qualification
        fields = ["id", "code", "name", "kind", "jurisdictional"]
        read_only_fields = fields


class CredentialSerializer(serializers.ModelSerializer[Credential]):
    qualification = serializers.CharField(source="qualification.code", read_only=True)

    class Meta:
        model = Credential
        fields = ["qualification", "jurisdiction", "verified", "expires_on"]
        read_only_fields = fields


class ExpertSerializer(serializers.ModelSerializer[Expert]):
    full_name = serializers.CharField(read_only=True)
    agency = serializers.CharField(source="agency.code", read_only=True)
    agency_name = serializers.CharField(source="agency.name", read_only=True)
    credentials = CredentialSerializer(many=True, read_only=True)

    class Meta:
        model = Expert
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "full_name",
            "phone",
            "agency",
            "agency_name",
            "home_place",
            "latitude",
            "longitude",
            "max_travel_km",
            "hourly_rate",
            "overtime_multiplier",
            "active",
            "credentials",
        ]
        read_only_fields = fields
