"""What a site page shows before staff write it (Markdown, rendered like a written page).
Plain and true to what this panel does; `{panel}` is replaced by PANEL_NAME."""

DEFAULT_PAGES: dict[str, tuple[str, str]] = {
    "terms": (
        "Terms of service",
        """These are the general terms of **{panel}** until the full terms are published here.

- You order services for accounts and links that you own or are allowed to promote.
- Every order is paid from your balance when it is placed. An order that is canceled or
  completed only in part is refunded to your balance for what was not delivered.
- Refills are offered only for services that say so, for the period they state.
- Do not resell access to your account or share your API key; you are responsible for orders
  placed with it.
- We may refuse or stop an order, or close an account, that breaks these terms or the rules of
  the social network concerned.
""",
    ),
    "faq": (
        "Frequently asked questions",
        """### How do I place an order?
Add funds to your balance, then choose a service under **New order**, give the link and the
quantity. The price is shown before you confirm.

### How long does an order take?
Each service states its start time and speed in its description. The status of your orders is
on the **Orders** page.

### What if an order is not completed?
An order canceled, or completed only in part, is refunded to your balance for the part not
delivered.

### Can I order through an API?
Yes: the **API** page gives your key and the documentation (API v2, as other panels use).
""",
    ),
    "privacy": (
        "Privacy policy",
        """**{panel}** keeps what it needs to run your account:

- your username, e-mail address and password (stored hashed);
- your orders, payments and balance statement;
- the addresses and browsers of your logins and sessions, shown to you under **Security**,
  to protect your account.

We use this to provide the service and keep it secure, and we do not sell it. A session cookie
keeps you logged in; there are no advertising cookies.
""",
    ),
}
