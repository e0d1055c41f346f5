// A modal dialog's keyboard contract, in one place (the quota-exceeded
// dialog and the console's confirmation dialogs use it):
// - opened with showModal(): the rest of the page is inert, the dialog is in
//   the top layer;
// - Tab and Shift+Tab cycle through the dialog's own controls, never out;
// - Esc closes it (the native `cancel` is turned into the same close);
// - on close, focus returns to what had it before the dialog opened.
import { deepActiveElement } from "./dom.js";

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

export interface ModalOptions {
  /** What gets focus on open (default: the first focusable control). */
  initialFocus?: HTMLElement | null;
  /** Called once the dialog has closed and focus has returned, with the dialog's returnValue. */
  onClose?: (returnValue: string) => void;
}

export interface OpenModal {
  close(returnValue?: string): void;
}

export function openModal(dialog: HTMLDialogElement, options: ModalOptions = {}): OpenModal {
  const returnTo = deepActiveElement();
  const root = dialog.getRootNode() as Document | ShadowRoot;
  let closed = false;

  const focusables = (): HTMLElement[] =>
    [...dialog.querySelectorAll<HTMLElement>(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);

  const onKeydown = (event: KeyboardEvent): void => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close("cancel");
      return;
    }
    if (event.key !== "Tab") return;
    const items = focusables();
    const first = items[0];
    const last = items[items.length - 1];
    if (!first || !last) {
      event.preventDefault();
      return;
    }
    const active = root.activeElement;
    const inside = active instanceof Node && dialog.contains(active);
    if (event.shiftKey && (active === first || !inside)) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && (active === last || !inside)) {
      event.preventDefault();
      first.focus();
    }
  };
  // The browser's own Esc handling (a close watcher) may close the dialog
  // without a keydown reaching us: make it the same close.
  const onCancel = (event: Event): void => {
    event.preventDefault();
    close("cancel");
  };
  const onNativeClose = (): void => close(dialog.returnValue || "cancel");

  function close(returnValue = "close"): void {
    if (closed) return;
    closed = true;
    dialog.removeEventListener("keydown", onKeydown);
    dialog.removeEventListener("cancel", onCancel);
    dialog.removeEventListener("close", onNativeClose);
    if (dialog.open) dialog.close(returnValue);
    if (returnTo instanceof HTMLElement && returnTo.isConnected) returnTo.focus();
    options.onClose?.(returnValue);
  }

  dialog.addEventListener("keydown", onKeydown);
  dialog.addEventListener("cancel", onCancel);
  dialog.addEventListener("close", onNativeClose);
  dialog.returnValue = "";
  dialog.showModal();
  (options.initialFocus ?? focusables()[0])?.focus();
  return { close };
}
