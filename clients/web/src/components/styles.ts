// Shared by every component. Theming goes through the CSS custom properties
// below (set them on the element or any ancestor) and the parts each
// component names (`quota-usage-card::part(fill) { … }`).
//
// --quota-font, --quota-font-size, --quota-text, --quota-muted, --quota-surface,
// --quota-border, --quota-radius, --quota-track, --quota-accent,
// --quota-accent-text, --quota-ok, --quota-warning, --quota-exceeded (bar
// fills), --quota-ok-text, --quota-warning-text, --quota-exceeded-text (status
// text, dark enough for 4.5:1 on the surface), --quota-held, --quota-gap.
export const BASE_CSS = `
:host{display:block;font-family:var(--quota-font,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif);font-size:var(--quota-font-size,14px);line-height:1.45;color:var(--quota-text,#111827);
--_ok:var(--quota-ok,#16a34a);--_warning:var(--quota-warning,#eab308);--_exceeded:var(--quota-exceeded,#dc2626);
--_ok-t:var(--quota-ok-text,#166534);--_warning-t:var(--quota-warning-text,#854d0e);--_exceeded-t:var(--quota-exceeded-text,#b91c1c);
--_track:var(--quota-track,#e5e7eb);--_held:var(--quota-held,#9ca3af);--_muted:var(--quota-muted,#4b5563);--_surface:var(--quota-surface,#fff);
--_border:var(--quota-border,#e5e7eb);--_radius:var(--quota-radius,8px);--_accent:var(--quota-accent,#1d4ed8);--_accent-t:var(--quota-accent-text,#fff);--_gap:var(--quota-gap,16px)}
:host([hidden]){display:none}
*{box-sizing:border-box}
h2,h3,h4,p,ul{margin:0}
ul{padding:0;list-style:none}
.card{background:var(--_surface);border:1px solid var(--_border);border-radius:var(--_radius);padding:var(--_gap)}
.muted{color:var(--_muted)}
.ok{--_c:var(--_ok);--_t:var(--_ok-t)}
.warning{--_c:var(--_warning);--_t:var(--_warning-t)}
.exceeded{--_c:var(--_exceeded);--_t:var(--_exceeded-t)}
.tag{color:var(--_t);font-weight:600}
.button{display:inline-block;padding:6px 14px;border-radius:6px;border:1px solid var(--_accent);background:var(--_accent);color:var(--_accent-t);font:inherit;font-weight:600;text-decoration:none;cursor:pointer}
.button.secondary{background:transparent;color:var(--_accent)}
.button:focus-visible,a:focus-visible,button:focus-visible{outline:3px solid var(--_accent);outline-offset:2px}
a{color:var(--_accent)}
.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
`;
