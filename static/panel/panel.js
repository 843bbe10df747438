// The panel's own script: small behaviours that would otherwise be inline event handlers, which
// the Content-Security-Policy (panel/settings.py) refuses. Loaded with defer from base.html.
"use strict";

// <input data-select-on-focus>: select the whole value when it gets focus (a new API key).
document.addEventListener("focusin", (event) => {
  const target = event.target;
  if (target instanceof HTMLInputElement && target.hasAttribute("data-select-on-focus")) {
    target.select();
  }
});

// <form data-confirm="Question?">: ask before submitting (ending sessions, cancelling an order).
// Without JavaScript the form submits straight away, which is still a deliberate POST; a form
// with an <input data-confirmed> (an order's Cancel) gets "yes" in it once the customer agreed,
// and without it the server asks on a page of its own.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm")) {
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    const confirmed = form.querySelector("input[data-confirmed]");
    if (confirmed) {
      confirmed.value = "yes";
    }
  }
});

// Add funds: under each method with a fee (<div data-fee-percent="3" data-money="$0.00">, the
// money filter's format of zero), what the customer pays for the amount typed, in the panel's
// money format, e.g. "You pay $103.00: $100.00 + $3.00 fee".
// It reads the amount as the server does (digits, one "." or "," and at most 2 decimals) and
// hides the line otherwise; the server's fee (rounded half up to cents) is the one charged.
const panelCents = (cents) =>
  (cents / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function panelFeeTotals(form, raw) {
  const match = /^\s*(\d+)(?:[.,](\d{1,2}))?\s*$/.exec(raw);
  const cents = match ? Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0")) : 0;
  for (const line of form.querySelectorAll("[data-fee-percent]")) {
    if (cents <= 0 || !Number.isSafeInteger(cents)) {
      line.hidden = true;
      line.textContent = "";
      continue;
    }
    const fee = Math.round((cents * Number(line.dataset.feePercent)) / 100);
    const money = (c) => (line.dataset.money || "0.00").replace("0.00", panelCents(c));
    // The sentence comes from the page (data-fee-text), in the customer's language.
    const text = line.dataset.feeText || "You pay {total}: {amount} + {fee} fee";
    line.textContent = text
      .replace("{total}", money(cents + fee))
      .replace("{amount}", money(cents))
      .replace("{fee}", money(fee));
    line.hidden = false;
  }
}

document.addEventListener("input", (event) => {
  const target = event.target;
  if (target instanceof HTMLInputElement && target.name === "amount" && target.form) {
    panelFeeTotals(target.form, target.value);
  }
});

for (const input of document.querySelectorAll("form input[name=amount]")) {
  if (input.form) {
    panelFeeTotals(input.form, input.value);
  }
}

// New ticket: show only the part of the form for the kind picked (<fieldset data-ticket-kind>).
// Without JavaScript every part shows, each titled with the kind it is for.
function panelTicketKind(form) {
  const kind = form.querySelector("select[name=kind]");
  if (!kind) {
    return;
  }
  for (const part of form.querySelectorAll("[data-ticket-kind]")) {
    part.hidden = part.dataset.ticketKind !== kind.value;
  }
}

document.addEventListener("change", (event) => {
  const target = event.target;
  if (target instanceof HTMLSelectElement && target.name === "kind" && target.form) {
    if (target.form.hasAttribute("data-ticket-form")) {
      panelTicketKind(target.form);
    }
  }
});

for (const form of document.querySelectorAll("form[data-ticket-form]")) {
  panelTicketKind(form);
}

// The main menu on a phone is one row that scrolls sideways (panel.css): the current page's
// link is brought into view, and each edge fades (.nav-more-start, .nav-more-end) while more
// links hide beyond it.
function panelNavEdges(list) {
  const end = list.scrollWidth - list.clientWidth;
  list.classList.toggle("nav-more-start", list.scrollLeft > 2);
  list.classList.toggle("nav-more-end", list.scrollLeft < end - 2);
}
document.addEventListener("DOMContentLoaded", () => {
  const list = document.querySelector(".panel-nav .nav");
  if (!list) {
    return;
  }
  const current = list.querySelector("[aria-current=page]");
  if (current && list.scrollWidth > list.clientWidth) {
    const item = current.closest("li") || current;
    const right = item.offsetLeft - list.offsetLeft + item.offsetWidth;
    if (right > list.clientWidth) {
      // Past the right edge: scroll just enough, leaving a little of the next link showing.
      list.scrollLeft = right - list.clientWidth + 40;
    }
  }
  panelNavEdges(list);
  list.addEventListener("scroll", () => panelNavEdges(list), { passive: true });
  window.addEventListener("resize", () => panelNavEdges(list));
});
