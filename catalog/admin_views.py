"""Catalog pages of the admin that are not a model's: bulk pricing (/admin/pricing/bulk/, URL name
`admin:pricing_bulk`, added by panel.admin.PanelAdminSite). The form checks the input's shape;
catalog/services/bulk_pricing.py plans and applies."""

from typing import cast

from django import forms
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import User
from catalog.models import Category
from catalog.selectors import service_list_for_bulk_pricing
from catalog.services import bulk_pricing
from providers.models import Provider


class BulkPricingForm(forms.Form):
    provider = forms.ModelChoiceField(
        Provider.objects.order_by("name"), required=False, empty_label="All providers"
    )
    category = forms.ModelChoiceField(
        Category.objects.order_by("sort_order", "name"),
        required=False,
        empty_label="All categories",
    )
    search = forms.CharField(
        required=False,
        max_length=200,
        help_text="Part of the name, the panel's id or the upstream id.",
    )
    mode = forms.ChoiceField(
        choices=[
            (bulk_pricing.MARKUP, "Markup % on the provider's cost"),
            (bulk_pricing.FIXED, "Fixed retail rate per 1000"),
        ],
        widget=forms.RadioSelect,
        initial=bulk_pricing.MARKUP,
    )
    value = forms.DecimalField(
        max_digits=20, decimal_places=8, help_text="e.g. 35 for +35%, or 1.25 for a rate."
    )
    reason = forms.CharField(
        required=False,
        max_length=250,
        help_text="Kept in the audit log and on each fixed-rate change.",
    )


def bulk_pricing_view(request: HttpRequest, *, site: AdminSite) -> HttpResponse:
    """Preview (GET, or POST without `apply`) and apply (POST with `apply` and the preview's
    fingerprint) a bulk price change; needs catalog.change_service."""
    if not request.user.has_perm("catalog.change_service"):
        raise PermissionDenied
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = BulkPricingForm(data)
    plan = None
    if form.is_valid():
        plan = _plan_from_form(form)
        if plan is not None and request.method == "POST" and "apply" in request.POST:
            if _apply_from_form(request, form, plan):
                return redirect(reverse("admin:pricing_bulk"))
            plan = _plan_from_form(form)  # show what the prices are now
    context = {
        **site.each_context(request),
        "title": "Bulk pricing",
        "form": form,
        "plan": plan,
        "changing": plan.changing if plan else [],
        "max_services": bulk_pricing.MAX_SERVICES,
    }
    return TemplateResponse(request, "admin/catalog/bulk_pricing.html", context)


def _plan_from_form(form: BulkPricingForm) -> bulk_pricing.PricingPlan | None:
    data = form.cleaned_data
    services = service_list_for_bulk_pricing(
        provider_id=data["provider"].pk if data["provider"] else None,
        category_id=data["category"].pk if data["category"] else None,
        search=data["search"],
    )
    try:
        return bulk_pricing.pricing_plan_build(
            services=services, mode=data["mode"], value=data["value"]
        )
    except bulk_pricing.BulkPricingError as exc:
        form.add_error(None, str(exc))
        return None


def _apply_from_form(
    request: HttpRequest, form: BulkPricingForm, plan: bulk_pricing.PricingPlan
) -> bool:
    try:
        changed = bulk_pricing.pricing_plan_apply(
            plan=plan,
            expected_fingerprint=request.POST.get("fingerprint", ""),
            actor=cast(User, request.user),  # admin_view: a logged-in staff user
            reason=form.cleaned_data["reason"],
        )
    except bulk_pricing.BulkPricingError as exc:
        messages.error(request, str(exc))
        return False
    messages.success(
        request,
        f"{len(plan.applying)} services set, {changed} rates changed; every change is in the "
        "price history (Catalog → Price changes) and the audit log.",
    )
    return True
