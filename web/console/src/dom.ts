// Small DOM helpers: elements by id, typed, and table rows of text cells.

/** The element with `id`, which the page must have. */
export function byId<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (element === null) throw new Error(`the page has no #${id}`);
  return element as T;
}

/** A table row of text cells (never HTML: values come from the server). */
export function row(cells: string[]): HTMLTableRowElement {
  const tr = document.createElement("tr");
  for (const text of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

/** Show `text` in `element`, as an error or not. */
export function say(element: HTMLElement, text: string, error = false): void {
  element.textContent = text;
  element.classList.toggle("error", error);
}

const decoder = new TextDecoder("utf-8", { fatal: false });

/** Bytes as text (JSON payloads and values), shortened to `limit` characters. */
export function text(bytes: Uint8Array, limit = 400): string {
  const decoded = decoder.decode(bytes);
  return decoded.length > limit ? `${decoded.slice(0, limit)}…` : decoded;
}

/** A byte count for people: 1536 -> "1.5 KiB". */
export function size(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}
