// 窓口: small keyboard helps. The desk works without this file.
"use strict";

document.addEventListener("keydown", (event) => {
  // "/" jumps to the search box, as in most web desks, unless one is typing.
  if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
  const box = document.getElementById("top-q") || document.getElementById("q");
  if (box) {
    event.preventDefault();
    box.focus();
    box.select();
  }
});

document.addEventListener("submit", (event) => {
  // Forms that cannot be undone (merge, out of scope) ask first.
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

// 定型文: the reply box's text modules. Ctrl+. (or the button) opens a filterable
// list; ↑/↓ choose, Enter inserts the module (already filled in by the server)
// at the caret, Esc closes. A macro's status/assignee apply when the reply is sent.
(() => {
  const panel = document.getElementById("tm-panel");
  const body = document.getElementById("reply-body");
  const filter = document.getElementById("tm-filter");
  const opener = document.getElementById("tm-open");
  if (!panel || !body || !filter || !opener) return;
  const options = Array.from(panel.querySelectorAll("li[role=option]"));
  let caret = 0;
  let active = -1;
  const fold = (s) => s.normalize("NFKC").toLowerCase()
    .replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60));
  const visible = () => options.filter((o) => !o.hidden);
  const mark = (index) => {
    const shown = visible();
    options.forEach((o) => o.setAttribute("aria-selected", "false"));
    active = shown.length ? Math.max(0, Math.min(index, shown.length - 1)) : -1;
    if (active >= 0) {
      shown[active].setAttribute("aria-selected", "true");
      filter.setAttribute("aria-activedescendant", shown[active].id);
      shown[active].scrollIntoView({ block: "nearest" });
    } else {
      filter.removeAttribute("aria-activedescendant");
    }
  };
  const open = () => {
    caret = body.selectionStart ?? body.value.length;
    panel.hidden = false;
    opener.setAttribute("aria-expanded", "true");
    filter.value = "";
    options.forEach((o) => { o.hidden = false; });
    mark(0);
    filter.focus();
  };
  const close = () => {
    panel.hidden = true;
    opener.setAttribute("aria-expanded", "false");
    body.focus();
  };
  const insert = (option) => {
    const text = option.dataset.text || "";
    body.value = body.value.slice(0, caret) + text + body.value.slice(caret);
    const macro = document.getElementById("tm-macro");
    const hint = document.getElementById("tm-macro-hint");
    if (macro && option.dataset.macro) {
      macro.value = option.dataset.id || "";
      if (hint) {
        hint.textContent = `マクロ「${option.textContent.trim()}」: 送信時に ${option.dataset.macroLabel}`;
        hint.hidden = false;
      }
    }
    close();
    body.setSelectionRange(caret + text.length, caret + text.length);
  };
  opener.addEventListener("click", () => (panel.hidden ? open() : close()));
  body.addEventListener("keydown", (event) => {
    if (event.key === "." && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      open();
    }
  });
  filter.addEventListener("input", () => {
    const words = fold(filter.value).split(/\s+/).filter(Boolean);
    options.forEach((o) => {
      const hay = fold(`${o.textContent} ${o.dataset.text}`);
      o.hidden = !words.every((w) => hay.includes(w));
    });
    mark(0);
  });
  filter.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      mark(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter") {
      event.preventDefault();
      const chosen = visible()[active];
      if (chosen) insert(chosen);
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  options.forEach((o) => o.addEventListener("click", () => insert(o)));
})();
