// 窓口: keyboard shortcuts and small helps. The desk works without this file.
"use strict";

// A key typed into a field is text, never a shortcut.
const NOT_TEXT = new Set(["checkbox", "radio", "button", "submit", "reset", "image", "file"]);

function typing(target) {
  if (!(target instanceof HTMLElement)) return false;
  if (target instanceof HTMLInputElement) return !NOT_TEXT.has(target.type);
  return target.closest("textarea, select, [contenteditable], [role=textbox]") !== null;
}

// The rows j/k move through: the queue's tickets, or the search results.
function rows() {
  return Array.from(document.querySelectorAll("[data-row], .hits > li"));
}

function current() {
  return document.querySelector("[data-row].cursor, .hits > li.cursor");
}

function move(step) {
  const all = rows();
  if (all.length === 0) return;
  const at = all.indexOf(current());
  const next = all[Math.min(Math.max(at < 0 ? (step > 0 ? 0 : all.length - 1) : at + step, 0), all.length - 1)];
  all.forEach((row) => row.classList.remove("cursor"));
  next.classList.add("cursor");
  const link = next.querySelector("td.number a, a[href^='/tickets/']");
  if (link) link.focus({ preventScroll: true });
  next.scrollIntoView({ block: "nearest" });
}

function openCurrent() {
  const row = current() || (document.activeElement && document.activeElement.closest("[data-row], .hits > li"));
  const link = row && row.querySelector("td.number a, a[href^='/tickets/']");
  if (link) window.location.assign(link.href);
  return Boolean(link);
}

// r / n on a ticket: open the reply or note box and put the cursor in it.
function write(detailsId, fieldId) {
  const field = document.getElementById(fieldId);
  if (!field) return false;
  const details = detailsId ? document.getElementById(detailsId) : field.closest("details");
  if (details) details.open = true;
  field.focus();
  field.scrollIntoView({ block: "center" });
  return true;
}

function toggleHelp() {
  const help = document.getElementById("shortcuts");
  if (!(help instanceof HTMLDialogElement)) return false;
  if (help.open) help.close(); else help.showModal();
  return true;
}

function search() {
  const box = document.getElementById("top-q") || document.getElementById("q");
  if (!box) return false;
  box.focus();
  box.select();
  return true;
}

function tick() {
  const row = current();
  const box = row && row.querySelector("input[type=checkbox]");
  if (box) box.click();
  return Boolean(box);
}

const KEYS = {
  j: () => { move(1); return true; },
  k: () => { move(-1); return true; },
  o: openCurrent,
  x: tick,
  r: () => write(null, "reply-body"),
  n: () => write("note", "note-text"),
  "/": search,
  "?": toggleHelp,
};

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  const target = event.target;
  if (event.key === "Escape" && typing(target) && !target.closest("dialog")) {
    target.blur();  // back to the shortcuts
    return;
  }
  if (typing(target)) return;
  const help = document.getElementById("shortcuts");
  if (help instanceof HTMLDialogElement && help.open && event.key !== "?") return;
  const action = KEYS[event.key];
  if (action && action()) event.preventDefault();
});

document.addEventListener("submit", (event) => {
  // Forms (and buttons) that cannot be undone (merge, out of scope) ask first.
  const form = event.target;
  const button = event.submitter;
  const question = (button && button.dataset.confirm) || (form instanceof HTMLFormElement && form.dataset.confirm);
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// "Select all" on the queue: shown only when this script runs.
document.querySelectorAll("[data-select-all]").forEach((all) => {
  all.hidden = false;
  all.addEventListener("change", () => {
    document.querySelectorAll("input[type=checkbox][name=ticket]").forEach((box) => { box.checked = all.checked; });
  });
});

// A link to a folded box (社内メモ) opens it.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element ? event.target.closest("a[href^='#']") : null;
  const target = link ? document.getElementById(link.hash.slice(1)) : null;
  if (target instanceof HTMLDetailsElement) target.open = true;
});
