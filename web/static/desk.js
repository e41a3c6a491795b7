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

// The live desk (web/live.py): the queue and an open ticket are told of changes by
// server-sent events on the same origin. Without EventSource, or when the stream is
// refused, the page stays as it is and is reloaded by hand.
(() => {
  const live = document.getElementById("live");
  if (!live || !live.dataset.liveUrl || !("EventSource" in window)) return;
  const notice = document.getElementById("live-notice");
  const show = (lines) => {
    if (!notice) return;
    const list = notice.querySelector("ul");
    if (list && lines) {
      list.replaceChildren(...lines.map((line) => {
        const item = document.createElement("li");
        item.textContent = line;
        return item;
      }));
    }
    notice.hidden = false;
  };
  const stream = new EventSource(live.dataset.liveUrl);
  stream.addEventListener("error", () => {
    // CLOSED: refused (signed out, too many open); the browser retries anything else.
    if (stream.readyState === EventSource.CLOSED) show(["自動更新が止まりました。再読み込みしてください。"]);
  });
  window.addEventListener("pagehide", () => stream.close());

  if (live.dataset.liveKind === "queue") {
    let timer = null;
    const redraw = async () => {
      timer = null;
      const body = document.querySelector("table.queue tbody");
      if (!body || body.contains(document.activeElement)) { show(); return; }
      try {
        const answer = await fetch(window.location.href, {
          headers: { "X-Madoguchi-Live": "1" }, credentials: "same-origin", cache: "no-store" });
        if (!answer.ok || new URL(answer.url).pathname !== window.location.pathname) { show(); return; }
        const fresh = new DOMParser().parseFromString(await answer.text(), "text/html");
        const rows = fresh.querySelector("table.queue tbody");
        const pager = fresh.querySelector("nav.pager");
        if (!rows) { show(); return; }
        body.replaceWith(rows);
        const oldPager = document.querySelector("nav.pager");
        if (pager && oldPager) oldPager.replaceWith(pager);
        live.dataset.updated = String(Date.now());
      } catch (_error) {
        show();
      }
    };
    stream.addEventListener("changed", () => {
      // Spread the redraws of many open queues over a second and a half.
      if (timer === null) timer = window.setTimeout(redraw, 300 + Math.random() * 1200);
    });
    return;
  }

  const presence = document.getElementById("presence");
  stream.addEventListener("presence", (event) => {
    if (!presence) return;
    const text = JSON.parse(event.data).text || "";
    presence.textContent = text;
    presence.hidden = text === "";
  });
  stream.addEventListener("changed", (event) => show(JSON.parse(event.data).lines));

  // Typing a reply or a note: the others see "返信を入力中" (told at most every 10 s).
  const typingUrl = live.dataset.typingUrl;
  let told = 0;
  document.addEventListener("input", (event) => {
    const field = event.target;
    if (!typingUrl || !(field instanceof HTMLTextAreaElement) || !field.closest(".compose")) return;
    if (Date.now() - told < 10000) return;
    told = Date.now();
    const csrf = field.form && field.form.querySelector("input[name=csrf]");
    if (!csrf) return;
    const form = new FormData();
    form.append("csrf", csrf.value);
    fetch(typingUrl, { method: "POST", body: form, credentials: "same-origin" }).catch(() => {});
  });
})();
