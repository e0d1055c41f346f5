// What every component shares: a shadow root with the shared styles, the
// org's usage either set as a property (`el.data = orgUsage`) or fetched
// from the URL the app sets (`src` + `org`: GET {src}/v1/orgs/{org}/usage,
// which the client's `usageHandler` answers), the locale, and batched
// re-rendering.
import type { OrgUsage, Usage } from "@quota-service/client";
import { type Child, fragment, sheet } from "./dom.js";
import { type Locale, pickLocale, texts, type Texts } from "./i18n.js";
import { BASE_CSS } from "./styles.js";

/** On a server (SSR) there is no HTMLElement: the classes are defined but never registered. */
const Base = (typeof HTMLElement === "undefined" ? class {} : HTMLElement) as typeof HTMLElement;

let baseSheet: CSSStyleSheet | undefined;


const inflight = new Map<string, Promise<unknown>>();

/** GET a JSON document; simultaneous requests for the same URL share one fetch. */
export function getJson<T>(url: string, headers?: Record<string, string>): Promise<T> {
  const key = headers ? `${url}\n${JSON.stringify(headers)}` : url;
  let pending = inflight.get(key) as Promise<T> | undefined;
  if (!pending) {
    pending = (async () => {
      const res = await fetch(url, { headers: { accept: "application/json", ...headers }, credentials: "same-origin" });
      if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
      return (await res.json()) as T;
    })();
    inflight.set(key, pending);
    const forget = () => inflight.delete(key);
    pending.then(forget, forget);
  }
  return pending;
}

export abstract class QuotaElement extends Base {
  static readonly baseAttributes = ["src", "org", "locale"];
  protected readonly root: ShadowRoot;
  /** Extra request headers for `src` (an Authorization header, say), when the app's cookies are not enough. */
  headers: Record<string, string> | undefined;

  #data: OrgUsage | undefined;
  #given = false;
  #error: unknown = null;
  #loading = false;
  #scheduled = false;
  #generation = 0;

  constructor(css: string) {
    super();
    this.root = this.attachShadow({ mode: "open" });
    baseSheet ??= sheet(BASE_CSS);
    this.root.adoptedStyleSheets = [baseSheet, sheet(css)];
  }

  /** The org's usage report: set it, or let the element fetch it from `src`. */
  get data(): OrgUsage | undefined {
    return this.#data;
  }
  set data(value: OrgUsage | undefined) {
    this.#data = value ?? undefined;
    this.#given = value !== undefined && value !== null;
    this.#error = null;
    this.requestRender();
  }

  /** "en" or "da": the `locale` attribute, else the org's (from the data), else the page's `lang`, else English. */
  get locale(): Locale {
    return pickLocale(this.getAttribute("locale"), this.#data?.locale, this.closest("[lang]")?.getAttribute("lang")?.slice(0, 2));
  }
  set locale(value: string | null) {
    if (value) this.setAttribute("locale", value);
    else this.removeAttribute("locale");
  }

  protected get t(): Texts {
    return texts(this.locale);
  }

  protected get loading(): boolean {
    return this.#loading;
  }
  protected get failed(): boolean {
    return this.#error !== null;
  }

  connectedCallback(): void {
    if (!this.#given && !this.#data) void this.refresh();
    this.requestRender();
  }

  attributeChangedCallback(name: string, old: string | null, value: string | null): void {
    if (old === value) return;
    if ((name === "src" || name === "org") && !this.#given && this.isConnected) void this.refresh();
    else this.requestRender();
  }

  /** The URL of one of the org's read routes under `src`, or null when `src` or `org` is missing. */
  protected url(...path: string[]): string | null {
    const src = this.getAttribute("src");
    const org = this.getAttribute("org");
    if (src === null || !org) return null;
    return [src.replace(/\/+$/, ""), "v1", "orgs", org, ...path].map((p, i) => (i === 0 ? p : encodeURIComponent(p))).join("/");
  }

  /** Fetch again from `src` (after a consume, say). Does nothing when the data was set as a property. */
  async refresh(): Promise<void> {
    if (this.#given) return;
    const generation = ++this.#generation;
    this.#loading = true;
    this.#error = null;
    this.requestRender();
    try {
      await this.fetchData();
      if (generation !== this.#generation) return;
      this.dispatchEvent(new CustomEvent("quota-load", { bubbles: true, composed: true }));
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#error = err;
      this.dispatchEvent(new CustomEvent("quota-error", { bubbles: true, composed: true, detail: err }));
    } finally {
      if (generation === this.#generation) {
        this.#loading = false;
        this.requestRender();
      }
    }
  }

  /** Fetches what the element shows; the default is the org's usage report. */
  protected async fetchData(): Promise<void> {
    const url = this.url("usage");
    if (url === null) return;
    this.#data = await getJson<OrgUsage>(url, this.headers);
  }

  /** The usage of one resource, from the report. */
  protected resourceUsage(resource: string | null): Usage | undefined {
    return this.#data?.resources.find((r) => r.resource === resource);
  }

  protected requestRender(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      if (!this.isConnected) return;
      this.root.replaceChildren(fragment(this.render()));
      this.rendered();
    });
  }

  /** Called after each render. */
  protected rendered(): void {}

  protected abstract render(): Child;
}

export function define(name: string, element: CustomElementConstructor): void {
  if (typeof customElements !== "undefined" && !customElements.get(name)) customElements.define(name, element);
}
