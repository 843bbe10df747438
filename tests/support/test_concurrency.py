"""The open-ticket cap holds when a customer opens tickets from several tabs at once: real
threads, each with its own PostgreSQL connection."""

import pytest

from support.models import Ticket
from support.services import TicketError
from tests.support.helpers import open_ticket
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_tickets_opened_at_once_never_pass_the_cap(alice, settings):
    settings.SUPPORT_MAX_OPEN_TICKETS = 2
    results = run_in_threads(6, lambda n: open_ticket(alice, subject=f"Tab {n}"))
    opened = [r for r in results if isinstance(r, Ticket)]
    refused = [r for r in results if isinstance(r, TicketError)]
    assert (len(opened), len(refused)) == (2, 4), results
    assert Ticket.objects.filter(customer=alice).count() == 2
