// <quota-exceeded-dialog>: the seeds' "quota exceeded" modal, opened with a
// refused Decision (a consume's, check's or reserve's `allowed: false`):
//
//   const d = await quota.consume(org, "conversations");   // on the server, or
//   if (!d.allowed) document.querySelector("quota-exceeded-dialog").show(d);
//
// role="dialog" with aria-modal, named by its title; Tab and Shift+Tab stay
// inside, Esc closes, focus returns to where it was. Shows the resource,
// current use, the limit, the plan and the upgrade call to action.
// `show()` answers how it was closed: "upgrade", "close" or "cancel" (Esc);
// "unavailable", opening nothing, for the client's fallback (no answer from
// the service).
// Attributes: locale, plan (when the app knows it; else taken from `data` or
// `src` + `org`), upgrade-href (else the upgrade button only fires
// `quota-upgrade`). Events: quota-upgrade (cancelable), quota-close.
// Parts: dialog, title, message, facts, actions, close, upgrade.
import type { Decision } from "@quota-service/client";
import { define, QuotaElement } from "./base.js";
import { type Child, fragment, h, uid } from "./dom.js";
import { amount, planName, resourceName, resourceNoun, texts } from "./i18n.js";
import { type OpenModal, openModal } from "./modal.js";

const CSS = `
:host{display:contents}
dialog{max-width:min(440px,calc(100vw - 32px));border:1px solid var(--_border);border-radius:var(--_radius);padding:24px;background:var(--_surface);color:inherit;box-shadow:0 20px 50px rgb(0 0 0 / .25)}
dialog::backdrop{background:rgb(17 24 39 / .5)}
.title{font-size:1.2em;color:var(--_exceeded-t);margin-bottom:8px}
.facts{display:grid;grid-template-columns:auto 1fr;gap:4px 16px;margin:16px 0}
.facts dt{color:var(--_muted)}
.facts dd{margin:0;font-weight:600}
.actions{display:flex;justify-content:flex-end;gap:8px;flex-wrap:wrap}
`;

export class QuotaExceededDialog extends QuotaElement {
  static readonly observedAttributes = [...QuotaElement.baseAttributes, "plan", "upgrade-href"];
  readonly #dialog: HTMLDialogElement;
  #modal: OpenModal | null = null;
  #decision: Decision | null = null;

  constructor() {
    super(CSS);
    this.#dialog = h("dialog", { part: "dialog", "aria-modal": "true" });
  }

  get open(): boolean {
    return this.#modal !== null;
  }

  /** The refusal shown (or last shown). Setting a refused decision opens the dialog (for frameworks that pass properties); null closes it. */
  get decision(): Decision | null {
    return this.#decision;
  }
  set decision(value: Decision | null) {
    if (value && !value.allowed) void this.show(value);
    else if (value === null) this.close("close");
  }

  /**
   * Opens the dialog for a refusal; an allowed decision opens nothing (answers "allowed"),
   * and neither does the client's fallback when the service could not be reached
   * (`reason: null`; answers "unavailable"): that is no quota's refusal, and asking
   * to upgrade would be wrong. Resolves with how it was closed: "upgrade", "close" or "cancel".
   */
  show(decision: Decision, options: { plan?: string } = {}): Promise<string> {
    if (decision.allowed) return Promise.resolve("allowed");
    if (decision.reason === null) return Promise.resolve("unavailable");
    this.#modal?.close("replaced");
    this.#decision = decision;
    if (!this.#dialog.isConnected) this.root.append(this.#dialog);
    this.#fill(decision, options.plan);
    return new Promise((resolve) => {
      this.#modal = openModal(this.#dialog, {
        initialFocus: this.#dialog.querySelector<HTMLElement>("[data-initial]"),
        onClose: (value) => {
          this.#modal = null;
          this.dispatchEvent(new CustomEvent("quota-close", { bubbles: true, composed: true, detail: value }));
          resolve(value);
        },
      });
    });
  }

  close(returnValue = "close"): void {
    this.#modal?.close(returnValue);
  }

  // Everything is built by show(); attribute and data changes wait for the next show().
  protected override requestRender(): void {}
  protected render(): Child {
    return null;
  }

  #fill(decision: Decision, plan: string | undefined): void {
    const locale = this.locale;
    const t = texts(locale);
    const usage = decision.usage;
    const resource = usage?.resource ?? "";
    const titleId = uid("quota-dialog-title");
    const messageId = uid("quota-dialog-message");
    const planId = plan ?? this.getAttribute("plan") ?? this.data?.plan;
    const title =
      decision.reason === "trial_expired"
        ? t.trialExpired
        : usage?.kind === "total"
          ? t.limitReached(resourceNoun(resource, locale))
          : t.monthlyQuota;
    const href = this.getAttribute("upgrade-href");
    const upgrade = (event: Event) => {
      const go = this.dispatchEvent(new CustomEvent("quota-upgrade", { bubbles: true, composed: true, cancelable: true, detail: decision }));
      if (!go) event.preventDefault();
      this.close("upgrade");
    };
    const fact = (term: string, value: string): Child => [h("dt", null, term), h("dd", null, value)];

    this.#dialog.setAttribute("lang", locale);
    this.#dialog.setAttribute("aria-labelledby", titleId);
    this.#dialog.setAttribute("aria-describedby", messageId);
    this.#dialog.replaceChildren(
      fragment(
      h("h2", { id: titleId, class: "title", part: "title" }, title),
      h("p", { id: messageId, part: "message" }, decision.message ?? t.upgradeToContinue),
      usage
        ? h(
            "dl",
            { class: "facts", part: "facts" },
            fact(t.resource, resourceName(resource, locale)),
            fact(t.current, amount(resource, usage.used, locale)),
            fact(t.limit, usage.limit === null ? t.unlimited : amount(resource, usage.limit, locale)),
            planId ? fact(t.plan, planName(planId, locale)) : null,
          )
        : null,
      h(
        "div",
        { class: "actions", part: "actions" },
        h("button", { type: "button", class: "button secondary", part: "close", onclick: () => this.close("close") }, t.notNow),
        href
          ? h("a", { class: "button", part: "upgrade", href, onclick: upgrade, "data-initial": true }, t.upgrade)
          : h("button", { type: "button", class: "button", part: "upgrade", onclick: upgrade, "data-initial": true }, t.upgrade),
      ),
      ),
    );
  }
}

define("quota-exceeded-dialog", QuotaExceededDialog);
