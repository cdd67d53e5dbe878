// What every page of the platform needs, whoever reads it (the patient's tablet, the nurse dashboard, the fleet
// page): the DOM helper `h`, through which every piece of data goes in as text nodes and attributes, never
// innerHTML; and the Idempotency-Key a page makes once per thing the person sends.

/**
 * h("button", {class: "btn", type: "button", dataset: {action: "ack"}}, "Je prends")
 * Attribute values are set with setAttribute (strings), `true` as an empty attribute; `dataset` entries and
 * null/undefined/false values are skipped; children may be strings, numbers, nodes, arrays, null/undefined/false
 * (skipped).
 */
export function h(tag, attrs = null, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "dataset") {
      for (const [name, data] of Object.entries(value)) {
        if (data !== null && data !== undefined) element.dataset[name] = String(data);
      }
    } else element.setAttribute(key, value === true ? "" : String(value));
  }
  return append(element, children);
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** A fresh Idempotency-Key, made once per thing the person sends: a double click or a retry carries the same. */
export function newKey(prefix = "key") {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}
