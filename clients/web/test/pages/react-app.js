// The components inside a React 19 app, bundled with esbuild (no JSX, no
// other build step): attributes for strings, properties for objects (React
// 19 sets a prop as a property when the element has one), a ref for show().
import { createElement as e, useEffect, useRef, useState } from "react";
import { createRoot } from "react-dom/client";
import "../../src/components/index.ts";

function App() {
  const query = new URLSearchParams(location.search);
  const org = query.get("org") ?? "";
  const locale = query.get("locale") ?? "en";
  const [report, setReport] = useState(/** @type {any} */ (null));
  const dialog = useRef(/** @type {any} */ (null));
  useEffect(() => {
    document.documentElement.lang = locale;
    // The app's own fetch of the same JSON, handed to a card as a property.
    void fetch(`/api/quota/v1/orgs/${encodeURIComponent(org)}/usage`)
      .then((res) => res.json())
      .then(setReport);
  }, [org, locale]);
  const contacts = report?.resources.find((/** @type {any} */ r) => r.resource === "contacts");
  return e(
    "main",
    null,
    e("h1", null, "Usage components in a React page"),
    e("quota-warning", { src: "/api/quota", org, locale, mode: "compact", "usage-href": "#usage" }),
    contacts ? e("quota-usage-card", { usage: contacts, locale, "upgrade-href": "/billing" }) : null,
    e("quota-usage", { id: "usage", src: "/api/quota", org, locale, "upgrade-href": "/billing" }),
    e("p", null, e("button", { type: "button", onClick: () => dialog.current?.show(/** @type {any} */ (window).refusal) }, "Start a conversation")),
    e("quota-exceeded-dialog", { ref: dialog, locale, "upgrade-href": "/billing" }),
  );
}

const root = document.getElementById("root");
if (root) createRoot(root).render(e(App));
