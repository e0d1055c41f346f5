// One org: usage bars for every resource (held units on each), the history
// chart with its forecast, grants (add with a reason and an expiry, revoke),
// feature overrides, plan and limit overrides, the audit log, and reset with
// a required reason in a confirmation dialog, then a toast.
//
// A token without quota:admin sees what it may read and no control that
// would change anything (the API would refuse it anyway: 403).
import type { AuditLog, OrgPatch, OrgProfile, OrgUsage, Resource } from "@quota-service/client";
import { type Child, fragment, h, uid } from "../components/dom.js";
import { amount, date, dateTime, featureName, knownPlans, planName, resourceName, resourceNoun } from "../components/i18n.js";
import { openModal } from "../components/modal.js";
import { type Catalogue, describeError, IntendedWrite, isStatus } from "./api.js";
import type { Ctx } from "./main.js";
import { busy, type Field, field, options } from "./ui.js";

export async function renderOrg(ctx: Ctx, orgId: string): Promise<void> {
  await new OrgPage(ctx, orgId).start();
}

interface Loaded {
  usage: OrgUsage;
  profile: OrgProfile;
  catalogue: Catalogue | null;
}

/** A section: an h2, then what `fill` puts in its body each time the data changes. */
function section(title: string, ...extra: Child[]): { el: HTMLElement; head: HTMLElement; body: HTMLElement } {
  const id = uid("section");
  const head = h("div", { class: "section-head" }, h("h2", { id }, title), extra);
  const body = h("div", { class: "section-body" });
  return { el: h("section", { class: "panel", "aria-labelledby": id }, head, body), head, body };
}

class OrgPage {
  readonly #ctx: Ctx;
  readonly #org: string;
  #data: Loaded | null = null;
  #audit: AuditLog | null = null;

  readonly #facts = h("div", { class: "facts" });
  readonly #warning = h("quota-warning", { mode: "full" });
  readonly #usage: ReturnType<typeof section>;
  readonly #history: ReturnType<typeof section>;
  readonly #chart = h("quota-history");
  // A write tried again by hand after a failure keeps its first key.
  readonly #grantWrite = new IntendedWrite();
  readonly #resetWrite = new IntendedWrite();
  readonly #putWrite = new IntendedWrite();
  readonly #grants: ReturnType<typeof section>;
  readonly #features: ReturnType<typeof section>;
  readonly #limits: ReturnType<typeof section>;
  readonly #auditSection: ReturnType<typeof section>;
  readonly #historyResource: Field;
  readonly #historyDays: Field;
  #grantForm: HTMLFormElement | null = null;

  constructor(ctx: Ctx, org: string) {
    this.#ctx = ctx;
    this.#org = org;
    const { t, session } = ctx;
    const resetButton = session.admin ? h("button", { type: "button", class: "danger", onclick: () => this.#openReset() }, t.reset) : null;
    this.#usage = section(t.usage, resetButton);
    this.#historyResource = field(t.resource, h("select"));
    this.#historyDays = field(t.days, h("select", null, options([["7", "7"], ["30", "30"], ["90", "90"]], "30")));
    this.#historyResource.control.addEventListener("change", () => void this.#loadHistory());
    this.#historyDays.control.addEventListener("change", () => void this.#loadHistory());
    this.#history = section(t.history, h("div", { class: "inline" }, this.#historyResource.wrapper, this.#historyDays.wrapper));
    this.#history.body.append(this.#chart);
    this.#grants = section(t.grants);
    this.#features = section(t.features);
    this.#limits = section(t.planAndLimits);
    const refresh = h("button", { type: "button", class: "secondary", onclick: () => void busy(refresh, () => this.#loadAudit()) }, t.refresh);
    this.#auditSection = section(t.audit, session.admin ? refresh : null);
  }

  async start(): Promise<void> {
    const { t, main, locale } = this.#ctx;
    document.title = `${t.orgTitle(this.#org)} · ${t.appTitle}`;
    this.#warning.setAttribute("locale", locale);
    this.#chart.setAttribute("locale", locale);
    main.replaceChildren(
      fragment(
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, `← ${t.back}`)),
      h("h1", null, t.orgTitle(this.#org)),
      this.#facts,
      this.#ctx.session.admin ? null : h("p", { class: "note" }, t.readOnlyNote),
      this.#warning,
      this.#usage.el,
      this.#history.el,
      this.#grants.el,
      this.#features.el,
      this.#limits.el,
      this.#auditSection.el,
      ),
    );
    this.#usage.body.append(h("p", { class: "muted", role: "status" }, t.loading));
    const audit = this.#loadAudit();
    await this.#load();
    await Promise.all([audit, this.#loadHistory()]);
  }

  /** Reads the org (usage, profile, the catalogue) and redraws what depends on it. */
  async #load(): Promise<void> {
    const { api } = this.#ctx;
    try {
      const [usage, profile, catalogue] = await Promise.all([
        api.client.usage(this.#org),
        api.client.orgs.get(this.#org),
        api.catalogue().catch(() => null),
      ]);
      if (!this.#ctx.current()) return;
      this.#data = { usage, profile, catalogue };
      this.#draw();
    } catch (err) {
      if (!this.#ctx.current()) return;
      const { t } = this.#ctx;
      const gone = isStatus(err, 404) ? t.notFound(this.#org) : isStatus(err, 403) ? t.forbidden : null;
      if (gone) {
        // Nothing to show: the message, and none of the sections.
        this.#usage.el.replaceWith(h("p", { class: "error", role: "alert" }, gone));
        for (const { el } of [this.#history, this.#grants, this.#features, this.#limits, this.#auditSection]) el.hidden = true;
      } else {
        this.#usage.body.replaceChildren();
        this.#ctx.fail(err);
      }
    }
  }

  async #loadAudit(): Promise<void> {
    const { t, session, api } = this.#ctx;
    if (!session.admin) {
      this.#auditSection.body.replaceChildren(h("p", { class: "muted" }, t.auditAdminOnly));
      return;
    }
    try {
      this.#audit = await api.client.admin.audit(this.#org, { limit: 50 });
      if (this.#ctx.current()) this.#drawAudit();
    } catch (err) {
      if (this.#ctx.current() && !isStatus(err, 404)) this.#ctx.fail(err);
    }
  }

  async #loadHistory(): Promise<void> {
    const resource = this.#historyResource.control.value;
    if (!resource || !this.#data) return;
    try {
      const history = await this.#ctx.api.client.history(this.#org, resource as Resource, {
        days: Number(this.#historyDays.control.value),
      });
      if (!this.#ctx.current() || this.#historyResource.control.value !== resource) return;
      // The report too: its time zone dates the forecast, as on the cards.
      this.#chart.data = this.#data.usage;
      this.#chart.usage = this.#data.usage.resources.find((u) => u.resource === resource);
      this.#chart.history = history;
    } catch (err) {
      if (this.#ctx.current()) this.#ctx.fail(err);
    }
  }

  /** After a write: read everything again. */
  async #reload(): Promise<void> {
    await Promise.all([this.#load(), this.#loadAudit()]);
    await this.#loadHistory();
  }

  #draw(): void {
    const data = this.#data;
    if (!data) return;
    const { t, locale } = this.#ctx;
    const { usage, profile } = data;
    const blocked = usage.blocked.blocked ? (t.blockedBy[usage.blocked.reason ?? ""] ?? t.blocked) : null;
    this.#facts.replaceChildren(
      h(
        "dl",
        null,
        [
          [t.plan, planName(usage.plan, locale)],
          [t.locale, t.localeNames[usage.locale] ?? usage.locale],
          [t.timezone, profile.timezone],
          usage.trial ? [t.colTrial, date(usage.trial.endsAt, locale, { timeZone: usage.timezone })] : null,
          blocked ? [t.colStatus, blocked] : null,
        ].map((pair) => (pair ? h("div", null, h("dt", null, pair[0]), h("dd", null, pair[1])) : null)),
      ),
    );
    this.#warning.data = usage;

    this.#usage.body.replaceChildren(
      h("p", { class: "muted" }, t.heldNote),
      h(
        "div",
        { class: "cards" },
        usage.resources.map((u) => h("quota-usage-card", { resource: u.resource, locale, "heading-level": 3, ".data": usage })),
      ),
    );

    const select = this.#historyResource.control as HTMLSelectElement;
    if (select.options.length === 0) {
      const first = usage.atRisk.exceeded[0] ?? usage.atRisk.approaching[0] ?? usage.resources.find((u) => u.kind === "period")?.resource;
      select.append(...options(usage.resources.map((u) => [u.resource, resourceName(u.resource, locale)]), first));
    }
    this.#drawGrants();
    this.#drawFeatures();
    this.#drawLimits();
  }

  /**
   * Redraws a form's section with `fill`, keeping focus on the control that
   * had it (by its data-key); a form the operator has changed and not saved
   * is left as it is (a write elsewhere on the page must not undo their edits).
   */
  #redraw(target: HTMLElement, fill: () => void): void {
    const form = target.querySelector("form");
    const edited =
      form !== null &&
      form.dataset.saving === undefined &&
      [...form.querySelectorAll<HTMLInputElement | HTMLSelectElement>("[data-was]")].some((c) => c.value !== c.dataset.was);
    if (edited) return;
    const key = (document.activeElement as HTMLElement | null)?.dataset?.key;
    fill();
    if (key) target.querySelector<HTMLElement>(`[data-key="${CSS.escape(key)}"]`)?.focus();
  }

  #drawGrants(): void {
    const data = this.#data;
    if (!data) return;
    const { t, locale, session } = this.#ctx;
    const live = data.usage.resources.flatMap((u) => u.grants.map((g) => ({ ...g, resource: u.resource })));
    const table =
      live.length === 0
        ? h("p", { class: "muted" }, t.noGrants)
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              null,
              h("caption", null, t.grantsCaption),
              h(
                "thead",
                null,
                h("tr", null, [t.resource, t.amount, t.expires, t.id, session.admin ? "" : null].map((c) => (c === null ? null : h("th", { scope: "col" }, c)))),
              ),
              h(
                "tbody",
                null,
                live.map((g) => {
                  const n = amount(g.resource, g.amount, locale);
                  const revoke = h(
                    "button",
                    {
                      type: "button",
                      class: "secondary",
                      "aria-label": t.revokeLabel(n, resourceNoun(g.resource, locale)),
                      onclick: () =>
                        void busy(revoke, async () => {
                          try {
                            await this.#ctx.api.client.admin.revoke(this.#org, g.id);
                            this.#ctx.notify("success", t.revoked(n, resourceNoun(g.resource, locale)));
                          } catch (err) {
                            this.#ctx.notify("error", describeError(err));
                          }
                          await this.#reload();
                        }),
                    },
                    t.revoke,
                  );
                  return h(
                    "tr",
                    null,
                    h("td", null, resourceName(g.resource, locale)),
                    h("td", null, n),
                    h("td", null, dateTime(g.expiresAt, locale)),
                    h("td", null, h("code", null, g.id)),
                    session.admin ? h("td", null, revoke) : null,
                  );
                }),
              ),
            ),
          );
    if (!session.admin) {
      this.#grants.body.replaceChildren(table);
      return;
    }
    this.#grantForm ??= this.#buildGrantForm();
    this.#grants.body.replaceChildren(table, this.#grantForm);
  }

  #buildGrantForm(): HTMLFormElement {
    const data = this.#data;
    const { t, locale } = this.#ctx;
    const resources = (data?.usage.resources ?? []).map((u): [string, string] => [u.resource, resourceName(u.resource, locale)]);
    const resource = field(t.resource, h("select", { name: "resource" }, options(resources)));
    const amountField = field(t.amount, h("input", { type: "number", name: "amount", min: 1, step: 1, required: true, inputmode: "numeric" }));
    const expires = field(t.expires, h("input", { type: "datetime-local", name: "expiresAt" }), t.expiresHint);
    const reason = field(t.reason, h("input", { type: "text", name: "reason", required: true, maxlength: 500 }));
    const submit = h("button", { type: "submit" }, t.add);
    const form = h(
      "form",
      { class: "grid-form", "aria-label": t.addGrant, novalidate: true },
      h("h3", null, t.addGrant),
      resource.wrapper,
      amountField.wrapper,
      expires.wrapper,
      reason.wrapper,
      h("div", { class: "actions" }, submit),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const n = Number(amountField.control.value);
      const why = reason.control.value.trim();
      const at = expires.control.value ? new Date(expires.control.value) : null;
      amountField.setError(Number.isSafeInteger(n) && n >= 1 ? null : t.invalidAmount);
      reason.setError(why ? null : t.reasonRequired);
      expires.setError(at === null || at.getTime() > Date.now() ? null : t.pastExpiry);
      const invalid = [amountField, expires, reason].find((f) => f.control.getAttribute("aria-invalid") === "true");
      if (invalid) {
        invalid.control.focus();
        return;
      }
      void busy(submit, async () => {
        const name = resource.control.value;
        try {
          const request = {
            resource: name as Resource,
            amount: n,
            reason: why,
            ...(at ? { expiresAt: at.toISOString().replace(/\.\d{3}Z$/, "Z") } : {}),
          };
          const result = await this.#ctx.api.client.admin.grant(this.#org, {
            ...request,
            idempotencyKey: this.#grantWrite.keyFor(request),
          });
          this.#grantWrite.done();
          const limit = result.usage.limit === null ? this.#ctx.t.unlimited : amount(name, result.usage.limit, locale);
          this.#ctx.notify("success", t.granted(amount(name, n, locale), resourceNoun(name, locale), limit));
          amountField.control.value = "";
          reason.control.value = "";
          expires.control.value = "";
        } catch (err) {
          this.#ctx.notify("error", describeError(err));
        }
        await this.#reload();
      });
    });
    return form;
  }

  #drawFeatures(): void {
    const data = this.#data;
    if (!data) return;
    const { t, locale, session } = this.#ctx;
    const own = data.profile.features;
    const features = Object.values(data.usage.features);
    const rows = features.map((f) => {
      const current = own[f.feature] === true ? "on" : own[f.feature] === false ? "off" : "";
      const setting = session.admin
        ? h(
            "select",
            { name: f.feature, "aria-label": `${t.setting}: ${featureName(f.feature, locale)}`, "data-key": `feature-${f.feature}`, "data-was": current },
            options([["", t.followPlan], ["on", t.forceOn], ["off", t.forceOff]], current),
          )
        : null;
      return h(
        "tr",
        null,
        h("th", { scope: "row" }, featureName(f.feature, locale)),
        h("td", null, f.enabled ? t.yes : t.no),
        h("td", null, t.sources[f.source] ?? f.source),
        setting ? h("td", null, setting) : null,
      );
    });
    const table = h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        h("caption", null, t.featuresCaption),
        h("thead", null, h("tr", null, [t.feature, t.enabled, t.source, session.admin ? t.setting : null].map((c) => (c ? h("th", { scope: "col" }, c) : null)))),
        h("tbody", null, rows),
      ),
    );
    this.#redraw(this.#features.body, () => {
      if (!session.admin) {
        this.#features.body.replaceChildren(table);
        return;
      }
      const submit = h("button", { type: "submit", "data-key": "save-features" }, t.saveFeatures);
      const form = h("form", { "aria-label": t.features }, table, h("div", { class: "actions" }, submit));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const patch: Record<string, boolean | null> = {};
        for (const select of form.querySelectorAll("select")) {
          if (select.value === select.dataset.was) continue;
          patch[select.name] = select.value === "on" ? true : select.value === "off" ? false : null;
        }
        void this.#save(form, submit, { features: patch }, Object.keys(patch).length > 0, t.featuresSaved);
      });
      this.#features.body.replaceChildren(form);
    });
  }

  #drawLimits(): void {
    const data = this.#data;
    if (!data) return;
    const { t, locale, session } = this.#ctx;
    const { usage, profile, catalogue } = data;
    const planLimits = catalogue?.plans[usage.plan]?.limits;
    const plan = field(
      t.plan,
      h(
        "select",
        { name: "plan", disabled: !session.admin, "data-key": "plan", "data-was": usage.plan },
        options((catalogue ? Object.keys(catalogue.plans) : knownPlans).map((p) => [p, planName(p, locale)]), usage.plan),
      ),
    );
    const inputs: HTMLInputElement[] = [];
    const rows = usage.resources.map((u) => {
      const name = resourceName(u.resource, locale);
      const fromPlan = planLimits?.[u.resource]?.limit;
      const override = profile.limits[u.resource];
      const input = h("input", {
        type: "number",
        min: 0,
        step: 1,
        inputmode: "numeric",
        name: u.resource,
        value: override ?? "",
        "aria-label": t.overrideLabel(name),
        "data-key": `limit-${u.resource}`,
        "data-was": override ?? "",
      });
      inputs.push(input);
      const shown = (v: number | null | undefined) => (v === undefined ? t.none : v === null ? t.unlimited : amount(u.resource, v, locale));
      return h(
        "tr",
        null,
        h("th", { scope: "row" }, name),
        h("td", null, shown(fromPlan)),
        h("td", null, session.admin ? input : shown(override)),
        h("td", null, shown(u.limit)),
      );
    });
    const table = h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        null,
        h("caption", null, t.limitsCaption),
        h("thead", null, h("tr", null, [t.resource, t.planLimit, t.override, t.inForce].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", null, rows),
      ),
    );
    this.#redraw(this.#limits.body, () => {
      if (!session.admin) {
        this.#limits.body.replaceChildren(plan.wrapper, table);
        return;
      }
      const submit = h("button", { type: "submit", "data-key": "save-limits" }, t.save);
      const form = h("form", { "aria-label": t.planAndLimits, novalidate: true }, plan.wrapper, table, h("p", { class: "hint" }, t.overrideHint), h("div", { class: "actions" }, submit));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        const patch: OrgPatch = {};
        if (plan.control.value !== usage.plan) patch.plan = plan.control.value as OrgPatch["plan"];
        const limits: Record<string, number | null> = {};
        for (const input of inputs) {
          const value = input.value.trim();
          const valid = value === "" || (Number.isSafeInteger(Number(value)) && Number(value) >= 0);
          input.setCustomValidity(valid ? "" : t.invalidLimit);
          if (!valid) {
            input.setAttribute("aria-invalid", "true");
            input.reportValidity();
            input.focus();
            return;
          }
          input.removeAttribute("aria-invalid");
          if (value === input.dataset.was) continue;
          limits[input.name] = value === "" ? null : Number(value);
        }
        if (Object.keys(limits).length > 0) patch.limits = limits;
        void this.#save(form, submit, patch, Object.keys(patch).length > 0, t.saved);
      });
      this.#limits.body.replaceChildren(form);
    });
  }

  /** PUT /v1/orgs/{id} with `patch`, then a toast and everything read again. */
  async #save(form: HTMLFormElement, button: HTMLButtonElement, patch: OrgPatch, changed: boolean, done: string): Promise<void> {
    const { t } = this.#ctx;
    if (!changed) {
      this.#ctx.notify("info", t.nothingChanged);
      return;
    }
    // This form is redrawn from what the service now says, edited or not.
    form.dataset.saving = "";
    await busy(button, async () => {
      try {
        await this.#ctx.api.client.orgs.put(this.#org, patch, { idempotencyKey: this.#putWrite.keyFor(patch) });
        this.#putWrite.done();
        this.#ctx.notify("success", done);
      } catch (err) {
        this.#ctx.notify("error", describeError(err));
      }
      await this.#reload();
    });
    // The button was drawn again: focus goes to the new one, as it was on the old.
    const key = button.dataset.key;
    if (key && (document.activeElement === document.body || document.activeElement === null)) {
      this.#ctx.main.querySelector<HTMLElement>(`[data-key="${CSS.escape(key)}"]`)?.focus();
    }
  }

  #drawAudit(): void {
    const { t, locale } = this.#ctx;
    const entries = this.#audit?.entries ?? [];
    const compact = (value: unknown) => {
      if (value === undefined) return "";
      const text = JSON.stringify(value);
      return text.length > 120 ? `${text.slice(0, 117)}…` : text;
    };
    this.#auditSection.body.replaceChildren(
      entries.length === 0
        ? h("p", { class: "muted" }, t.noAudit)
        : h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "audit" },
              h("caption", null, t.auditCaption),
              h("thead", null, h("tr", null, [t.at, t.actor, t.action, t.resource, t.reason, t.change].map((c) => h("th", { scope: "col" }, c)))),
              h(
                "tbody",
                null,
                entries.map((e) =>
                  h(
                    "tr",
                    null,
                    h("td", null, h("time", { datetime: e.at }, dateTime(e.at, locale))),
                    h("td", null, e.actor),
                    h("td", null, t.actions[e.action] ?? e.action),
                    h("td", null, e.resource ? resourceName(e.resource, locale) : t.none),
                    h("td", null, e.reason ?? t.none),
                    h("td", { class: "change" }, e.before === undefined && e.after === undefined ? t.none : `${compact(e.before)} → ${compact(e.after)}`),
                  ),
                ),
              ),
            ),
          ),
    );
  }

  #openReset(): void {
    const data = this.#data;
    if (!data) return;
    const { t, locale } = this.#ctx;
    const titleId = uid("reset-title");
    const warnId = uid("reset-warning");
    const which = field(
      t.resetWhich,
      // A reset starts a period's count again; a total (contacts, users, …)
      // counts what exists, which a reset would not remove.
      h(
        "select",
        { name: "resource" },
        options([
          ["", t.resetAll],
          ...data.usage.resources.filter((u) => u.kind === "period").map((u): [string, string] => [u.resource, resourceName(u.resource, locale)]),
        ]),
      ),
    );
    const reason = field(t.reason, h("textarea", { name: "reason", required: true, maxlength: 1000, rows: 3 }));
    const confirm = h("button", { type: "submit", class: "danger" }, t.resetConfirm);
    const dialog = h("dialog", { class: "modal", "aria-labelledby": titleId, "aria-describedby": warnId, "aria-modal": "true" });
    const form = h(
      "form",
      { novalidate: true },
      h("h2", { id: titleId }, t.resetTitle(this.#org)),
      h("p", { id: warnId, class: "warning-text" }, t.resetWarning),
      which.wrapper,
      reason.wrapper,
      h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", onclick: () => modal.close("cancel") }, t.cancel), confirm),
    );
    dialog.append(form);
    document.body.append(dialog);
    const modal = openModal(dialog, { initialFocus: reason.control, onClose: () => dialog.remove() });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const why = reason.control.value.trim();
      reason.setError(why ? null : t.reasonRequired);
      if (!why) {
        reason.control.focus();
        return;
      }
      const resource = which.control.value;
      const what = resource ? resourceName(resource, locale) : t.resetAll;
      void busy(confirm, async () => {
        try {
          const request = { reason: why, ...(resource ? { resource: resource as Resource } : {}) };
          await this.#ctx.api.client.admin.reset(this.#org, { ...request, idempotencyKey: this.#resetWrite.keyFor(request) });
          this.#resetWrite.done();
          modal.close("reset");
          this.#ctx.notify("success", t.resetDone(what));
        } catch (err) {
          modal.close("failed");
          this.#ctx.notify("error", t.resetFailed(describeError(err)));
        }
        await this.#reload();
      });
    });
  }
}
