// The one render helper, shared by the components and the console: builds
// real DOM nodes (text is always a text node, never parsed as HTML), so
// nothing from the API can inject markup.
//
//   h("p", { class: "x", part: "stats", onclick: fn, ".value": 3 }, "text", child)
//
// `onX` with a function adds a listener for "x"; a key starting with "."
// sets a property; `true` sets an empty attribute; `false`, null and
// undefined leave the attribute out; anything else is set as an attribute.
export type Child = Node | string | number | null | undefined | false | readonly Child[];
export type Props = Record<string, unknown>;

const SVG_NS = "http://www.w3.org/2000/svg";

function build<E extends Element>(el: E, props: Props | null | undefined, children: readonly Child[]): E {
  for (const [key, value] of Object.entries(props ?? {})) {
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value as EventListener);
    } else if (key.startsWith(".")) {
      (el as unknown as Record<string, unknown>)[key.slice(1)] = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(key, typeof value === "number" ? String(value) : (value as string));
    }
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child as readonly Child[]);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child as string | number)));
  }
}

/** An HTML element. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K];
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement;
export function h(tag: string, props?: Props | null, ...children: Child[]): HTMLElement {
  return build(document.createElement(tag), props, children);
}

/** An SVG element. */
export function s(tag: string, props?: Props | null, ...children: Child[]): SVGElement {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

/** Children as one fragment. */
export function fragment(...children: Child[]): DocumentFragment {
  const frag = document.createDocumentFragment();
  append(frag, children);
  return frag;
}

/** A stylesheet shared by every instance (constructable, adopted by shadow roots). */
export function sheet(css: string): CSSStyleSheet {
  const result = new CSSStyleSheet();
  result.replaceSync(css);
  return result;
}

let ids = 0;
/** A document-unique id, for aria-labelledby and friends. */
export function uid(prefix: string): string {
  return `${prefix}-${++ids}`;
}

/** The element that has focus, through open shadow roots. */
export function deepActiveElement(): Element | null {
  let active = document.activeElement;
  while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
  return active;
}
