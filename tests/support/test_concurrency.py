"""The open-ticket cap holds when a customer opens tickets from several tabs at once: real
threads, each with its own PostgreSQL connection."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts.models import LedgerEntry
from accounts.services import balance_credit
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


def test_a_ticket_being_opened_does_not_hold_up_the_customers_money(alice):
    """The cap's lock on the customer row is FOR NO KEY UPDATE: a ledger entry (whose foreign
    key takes a KEY SHARE lock on that row) is written while a ticket is still being opened; a
    FOR UPDATE lock made every order and deposit of the customer wait for the ticket."""
    opened, done = threading.Event(), threading.Event()

    def open_and_hold(n: int) -> object:
        if n == 0:
            with transaction.atomic():
                ticket = open_ticket(alice)
                opened.set()
                done.wait(10)
            return ticket
        opened.wait(10)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                return balance_credit(user=alice, amount=Decimal("1"), memo="while a ticket opens")
        finally:
            done.set()

    ticket, entry = run_in_threads(2, open_and_hold)
    assert isinstance(ticket, Ticket), ticket
    assert isinstance(entry, LedgerEntry), entry
