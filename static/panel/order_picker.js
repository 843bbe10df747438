// New order (templates/orders/new.html): the service <select data-searchable-picker> becomes a
// searchable list (Tom Select, static/vendor/tom-select-*) that shows each service's whole name
// and this customer's price, wrapped on a phone instead of cut off. Progressive enhancement:
// without JavaScript (or before this runs) the plain <select> and its Show button work alike.
// Loaded with defer after htmx and Tom Select; no inline script or style (the CSP refuses them).
"use strict";

// An option's text is "id — name — price" (what the plain <select> shows): the name is what
// lies between the id and the price.
function panelPickerName(data) {
  const prefix = `${data.value} — `;
  const suffix = ` — ${data.rate}`;
  const text = data.text || "";
  if (data.rate && text.startsWith(prefix) && text.endsWith(suffix)) {
    return text.slice(prefix.length, text.length - suffix.length);
  }
  return text;
}

function panelPickerOption(data, escape) {
  const name = escape(panelPickerName(data));
  if (!data.rate) {
    return `<div class="ts-service">${name}</div>`;
  }
  return (
    `<div class="ts-service"><div class="ts-service-name">${name}</div>` +
    `<div class="ts-service-meta"><span>#${escape(data.value)}</span>` +
    `<span class="ts-service-rate">${escape(data.rate)}</span></div></div>`
  );
}

function panelPicker(select) {
  if (select.tomselect || typeof TomSelect === "undefined") {
    return;
  }
  // Tom Select keeps the <select> and sends its "change" event, which htmx listens to. Its
  // texts come from the page (data-placeholder, data-no-results: in the customer's language).
  const noResults =
    select.dataset.noResults || "No service matches: try the search box or another category.";
  new TomSelect(select, {
    maxOptions: null, // every option the page lists (at most 1,000): the search narrows them
    searchField: ["text"], // "id — name — price": a number finds the id, words the name
    allowEmptyOption: false,
    placeholder: select.dataset.placeholder || "Type to search services",
    render: {
      option: panelPickerOption,
      item: panelPickerOption,
      no_results: (_data, escape) => `<div class="no-results">${escape(noResults)}</div>`,
    },
  });
  // The label now names Tom Select's own input; the <select> it keeps (visually hidden, still
  // holding the value) leaves the accessibility tree, or a screen reader meets two pickers.
  select.setAttribute("aria-hidden", "true");
}

function panelPickers(root) {
  for (const select of root.querySelectorAll("select[data-searchable-picker]")) {
    panelPicker(select);
  }
}

// Before htmx snapshots the page for the back button (hx-push-url), put the plain <select> back:
// Tom Select positions its list with style properties, and the snapshot (a copy of the page)
// would carry them as style="" attributes, which the Content-Security-Policy refuses. The
// picker is built again when the page or the swapped piece loads.
document.addEventListener("htmx:beforeHistorySave", () => {
  for (const select of document.querySelectorAll("select[data-searchable-picker]")) {
    if (select.tomselect) {
      select.tomselect.destroy();
      select.removeAttribute("aria-hidden");
    }
  }
});

if (window.htmx) {
  window.htmx.onLoad(panelPickers); // the page, then each piece htmx swaps in
} else {
  panelPickers(document);
}
