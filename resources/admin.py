"""Admin for the roster: agencies, the qualification catalog, experts and their credentials."""

from __future__ import annotations

from django.contrib import admin

from resources.models import Agency, Availability, Credential, Expert, Qualification

# Full names and emails, the way an administrator looks a person up.
EXPERT_SEARCH = ("email", "first_name", "last_name")


@admin.register(Agency)
class AgencyAdmin(admin.ModelAdmin):
    """Employers and sponsors; searchable so the expert form can autocomplete them."""

    list_display = ("name", "code", "fringe_rate", "contact_email")
    search_fields = ("name", "code", "contact_email")


@admin.register(Qualification)
class QualificationAdmin(admin.ModelAdmin):
    """The catalog role requests and credentials point at."""

    list_display = ("code", "name", "kind", "jurisdictional")
    list_filter = ("kind", "jurisdictional")
    search_fields = ("code", "name")


class CredentialInline(admin.TabularInline):
    """An expert's credentials, edited on the expert's page."""

    model = Credential
    extra = 0
    fields = (
        "qualification",
        "number",
        "jurisdiction",
        "verified",
        "verified_by",
        "verified_at",
        "expires_on",
    )
    autocomplete_fields = ("qualification", "verified_by")


class AvailabilityInline(admin.TabularInline):
    """An expert's availability windows, edited on the expert's page."""

    model = Availability
    extra = 0


@admin.register(Expert)
class ExpertAdmin(admin.ModelAdmin):
    """The roster (100,000 rows and more): joins for the columns, autocomplete for the relations."""

    list_display = ("full_name", "email", "agency", "home_place", "active", "user")
    list_filter = ("active", "agency")
    list_select_related = ("agency", "user")
    search_fields = EXPERT_SEARCH
    autocomplete_fields = ("agency", "user")
    readonly_fields = ("created_at", "updated_at")
    inlines = (CredentialInline, AvailabilityInline)
    # A second COUNT over the whole roster only feeds the "(N total)" hint beside filtered results.
    show_full_result_count = False

    @admin.display(description="name", ordering="last_name")
    def full_name(self, expert: Expert) -> str:
        return expert.full_name


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Every credential across the roster, e.g. to find unverified or expiring ones."""

    list_display = ("qualification", "jurisdiction", "expert", "number", "verified", "expires_on")
    list_filter = ("verified", "qualification__kind", "jurisdiction", "qualification")
    list_select_related = ("qualification", "expert")
    search_fields = ("number", "qualification__code", *(f"expert__{field}" for field in EXPERT_SEARCH))
    autocomplete_fields = ("expert", "qualification", "verified_by")
    date_hierarchy = "expires_on"


@admin.register(Availability)
class AvailabilityAdmin(admin.ModelAdmin):
    """Availability windows across the roster."""

    list_display = ("expert", "start", "end")
    list_filter = ("expert__agency",)
    list_select_related = ("expert",)
    search_fields = tuple(f"expert__{field}" for field in EXPERT_SEARCH)
    autocomplete_fields = ("expert",)
    date_hierarchy = "start"
