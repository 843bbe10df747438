"""Admin code hands services the staff member behind the request (accounts.audit.staff_user):
a request whose user is not active staff is refused before anything changes."""

from typing import Any

import pytest
from django.contrib.admin import site
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from accounts.audit import audit_diff_get, audit_diff_set, staff_user
from accounts.models import AdminAuditLog, User

pytestmark = pytest.mark.django_db


def _request(user: Any) -> Any:
    request = RequestFactory().post("/admin/")
    request.user = user
    return request


def test_staff_user_is_the_active_staff_member(staff):
    assert staff_user(_request(staff)) == staff


def test_staff_user_refuses_anonymous_customers_and_inactive_staff(alice, staff):
    staff.is_active = False
    for user in (AnonymousUser(), alice, staff):
        with pytest.raises(PermissionDenied):
            staff_user(_request(user))


def test_an_admin_action_from_a_non_staff_request_changes_nothing(alice, bob):
    request = _request(alice)
    with pytest.raises(PermissionDenied):
        site._registry[User].suspend_customers(request, User.objects.filter(pk=bob.pk))
    bob.refresh_from_db()
    assert bob.is_active and not AdminAuditLog.objects.exists()


def test_audit_diff_belongs_to_one_request(staff):
    first, second = _request(staff), _request(staff)
    audit_diff_set(first, ({"a": 1}, {"a": 2}))
    assert audit_diff_get(first) == ({"a": 1}, {"a": 2})
    assert audit_diff_get(second) == (None, None)
