import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from providers.client import ErrorKind
from providers.models import Provider, ProviderCall

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls():
    provider = Provider(name="Up", api_url="https://up.example/api/v2")
    provider.set_api_key("k" * 32)
    provider.save()
    ProviderCall.objects.create(provider=provider, action="add", ok=True)
    ProviderCall.objects.create(
        provider=provider, action="status", ok=False, error_kind=ErrorKind.TIMEOUT
    )
    return provider


def test_provider_call_list_never_scans_every_call_for_its_filters(client, staff, calls):
    # The call log grows with every order and poll: no DISTINCT (choices of a CharField filter)
    # and no MIN/MAX (date_hierarchy) over the whole table on each visit.
    client.force_login(staff)
    url = reverse("admin:providers_providercall_changelist")
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    sql = " ".join(q["sql"].lower() for q in ctx.captured_queries)
    assert "distinct" not in sql and "min(" not in sql and "max(" not in sql
    body = response.content.decode()
    assert "?action=refill_status" in body and "?error_kind=insufficient_funds" in body


def test_provider_call_list_filters_by_action_and_error_kind(client, staff, calls):
    client.force_login(staff)
    url = reverse("admin:providers_providercall_changelist")
    response = client.get(url, {"error_kind": "timeout"})
    assert [c.action for c in response.context["cl"].result_list] == ["status"]
    response = client.get(url, {"action": "add"})
    assert [c.action for c in response.context["cl"].result_list] == ["add"]
