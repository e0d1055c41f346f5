// Small pieces the console's screens share: toasts, labelled fields with
// their error text, busy buttons.
import { h, uid } from "../components/dom.js";

let region: HTMLElement | null = null;

/** The live region toasts go into (made once, before any toast, so screen readers follow it). */
export function toastRegion(): HTMLElement {
  region ??= h("div", { class: "toasts", "aria-live": "polite" });
  return region;
}

/**
 * A toast: success (role="status", goes after 10 s) or error (role="alert",
 * stays until dismissed).
 */
export function toast(kind: "success" | "error" | "info", message: string, dismissLabel: string): HTMLElement {
  const item = h(
    "div",
    { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("p", null, message),
    h("button", { type: "button", class: "link", onclick: () => item.remove() }, dismissLabel),
  );
  toastRegion().append(item);
  if (kind !== "error") {
    let timer = setTimeout(() => item.remove(), 10_000);
    // Kept while the pointer or focus is on it.
    item.addEventListener("mouseenter", () => clearTimeout(timer));
    item.addEventListener("focusin", () => clearTimeout(timer));
    item.addEventListener("mouseleave", () => (timer = setTimeout(() => item.remove(), 10_000)));
  }
  return item;
}

export interface Field {
  wrapper: HTMLElement;
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement;
  /** Shows an error (aria-invalid, described by it), or clears it with null. */
  setError(message: string | null): void;
}

/** A label, its control, an optional hint and an error line, all tied together for assistive technology. */
export function field(label: string, control: Field["control"], hint?: string): Field {
  const id = control.id || uid("field");
  control.id = id;
  const hintId = hint ? uid("hint") : null;
  const errorId = uid("error");
  const error = h("p", { id: errorId, class: "error", hidden: true });
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("p", { id: hintId, class: "hint" }, hint) : null, error);
  return {
    wrapper,
    control,
    setError(message) {
      error.textContent = message ?? "";
      error.hidden = message === null;
      if (message === null) control.removeAttribute("aria-invalid");
      else control.setAttribute("aria-invalid", "true");
    },
  };
}

export function options(values: readonly [string, string][], selected?: string): HTMLOptionElement[] {
  return values.map(([value, label]) => h("option", { value, selected: value === selected }, label));
}

/** Runs `work` with `button` disabled and busy; the button is enabled again after. */
export async function busy<T>(button: HTMLButtonElement, work: () => Promise<T>): Promise<T> {
  const focused = button.getRootNode() instanceof Document && document.activeElement === button;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    // Disabling it sent focus to the page: give it back, unless it moved on meanwhile.
    if (focused && button.isConnected && (document.activeElement === document.body || document.activeElement === null)) button.focus();
  }
}
