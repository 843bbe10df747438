"""The navigation's Support link: how many tickets wait for the customer to read an answer
(one COUNT on the (customer, status) index)."""

from django import template

from accounts.models import User
from support.selectors import ticket_count_answered

register = template.Library()


@register.simple_tag
def answered_ticket_count(user: User) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return ticket_count_answered(user=user)
