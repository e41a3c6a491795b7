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
