// The operator console: sign-in, the shell, and a router over the address's
// fragment (#/ the orgs, #/orgs/{id} one org), so that every screen is the
// one index.html with relative asset URLs, wherever it is served.
import "../components/index.js";
import { h } from "../components/dom.js";
import { type Locale, pickLocale } from "../components/i18n.js";
import { Api, describeError, isUnauthorized } from "./api.js";
import { type ConsoleConfig, completeSignIn, currentSession, loadConfig, type Session, signOut, startSignIn } from "./auth.js";
import { consoleTexts, type ConsoleTexts } from "./i18n.js";
import { renderOrg } from "./org.js";
import { renderOrgs } from "./orgs.js";
import { field, options, toast, toastRegion } from "./ui.js";

export interface Ctx {
  api: Api;
  session: Session;
  locale: Locale;
  t: ConsoleTexts;
  main: HTMLElement;
  /** A toast in the console's language. */
  notify(kind: "success" | "error" | "info", message: string): void;
  /** Handles a failure: a 401 ends the session, anything else is an error toast. */
  fail(err: unknown): void;
  /** True while the screen that asked is still the one shown. */
  current(): boolean;
}

const LOCALE_KEY = "quota-console.locale";
let locale: Locale = pickLocale(localStorage.getItem(LOCALE_KEY), navigator.language.slice(0, 2));
let generation = 0;

async function boot(): Promise<void> {
  const config = await loadConfig();
  let problem: string | null = null;
  try {
    await completeSignIn(config);
  } catch (err) {
    problem = consoleTexts(locale).signInFailed(describeError(err));
  }
  const session = currentSession();
  if (!session) {
    signInScreen(config, problem);
    return;
  }
  const api = new Api(config.apiBase, () => session.token);
  window.addEventListener("hashchange", () => route(api, session, config, true));
  route(api, session, config, false);
}

function shell(t: ConsoleTexts, session: Session | null, rerender: () => void): HTMLElement {
  document.documentElement.lang = locale;
  document.title = t.appTitle;
  const main = h("main", { id: "main", tabindex: "-1" });
  const language = field(t.language, h("select", null, options([["en", "English"], ["da", "Dansk"]], locale)));
  language.control.addEventListener("change", () => {
    locale = pickLocale(language.control.value);
    localStorage.setItem(LOCALE_KEY, locale);
    rerender();
    // The screen is drawn again in the new language: focus stays on the language.
    document.querySelector<HTMLSelectElement>("header select")?.focus();
  });
  document.body.replaceChildren(
    h("button", { type: "button", class: "skip", onclick: () => main.focus() }, t.skip),
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/" }, t.appTitle),
      h(
        "div",
        { class: "session" },
        session
          ? [
              h("span", null, t.signedInAs(session.sub || "?"), " · ", h("strong", null, session.admin ? t.admin : t.readOnly)),
              h("button", { type: "button", class: "secondary", onclick: () => (signOut(), location.reload()) }, t.signOut),
            ]
          : null,
        language.wrapper,
      ),
    ),
    main,
    toastRegion(),
  );
  return main;
}

function signInScreen(config: ConsoleConfig, problem: string | null): void {
  const t = consoleTexts(locale);
  const main = shell(t, null, () => signInScreen(config, problem));
  main.append(
    h(
      "section",
      { class: "panel narrow" },
      h("h1", null, t.signInTitle),
      problem ? h("p", { class: "error", role: "alert" }, problem) : null,
      config.oidc
        ? [
            h("p", null, t.signInOidc),
            h(
              "button",
              {
                type: "button",
                onclick: () => {
                  if (config.oidc) startSignIn(config.oidc).catch((err: unknown) => toast("error", t.signInFailed(describeError(err)), t.dismiss));
                },
              },
              t.signIn,
            ),
          ]
        : h("p", null, config.fragmentSignIn ? t.signInLocal : t.signInUnconfigured),
    ),
  );
}

function route(api: Api, session: Session, config: ConsoleConfig, moved: boolean): void {
  const mine = ++generation;
  const t = consoleTexts(locale);
  const main = shell(t, session, () => route(api, session, config, false));
  // A new screen: focus goes to its start, as after a page load.
  if (moved) main.focus();
  const ctx: Ctx = {
    api,
    session,
    locale,
    t,
    main,
    notify: (kind, message) => void toast(kind, message, t.dismiss),
    fail: (err) => {
      if (isUnauthorized(err)) {
        signOut();
        signInScreen(config, t.sessionEnded);
        return;
      }
      toast("error", t.failed(describeError(err)), t.dismiss);
    },
    current: () => mine === generation,
  };
  const match = /^#\/orgs\/([^/]+)$/.exec(location.hash);
  const orgId = match?.[1] ? (decoded(match[1]) ?? "") : session.orgId;
  if (orgId) void renderOrg(ctx, orgId);
  else void renderOrgs(ctx);
}

/** A path segment decoded; null when it is not valid percent-encoding (`%E0`). */
function decoded(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

void boot();
