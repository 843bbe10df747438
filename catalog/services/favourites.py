"""A customer's favourite services (the price list's star and its *Favourites* filter)."""

from accounts.models import User
from catalog.models import FavouriteService, Service


def service_favourite_set(*, user: User, service: Service, favourite: bool) -> bool:
    """Star (`favourite`) or unstar `service` for `user`; idempotent, so a double click or a
    resent form changes nothing more. Returns whether it is a favourite now."""
    if favourite:
        FavouriteService.objects.get_or_create(user=user, service=service)
    else:
        FavouriteService.objects.filter(user=user, service=service).delete()
    return favourite
