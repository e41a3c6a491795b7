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

// The reply being typed is saved on the server as a draft (per agent and ticket), a moment
// after the last keystroke. When the session is over the text stays in the page: saving
// resumes once the agent signs in again (in another tab), and the form is not sent before.
(() => {
  const form = document.getElementById("reply-form");
  if (!(form instanceof HTMLFormElement) || !form.dataset.draftUrl) return;
  const url = form.dataset.draftUrl;
  const status = document.getElementById("draft-status");
  const fields = ["to", "cc", "body"].map((name) => form.elements.namedItem(name));
  let timer = 0;
  let signedOut = false;
  let dirty = false;
  let sentUrl = "";  // this draft went out already (Back after sending): where it is shown

  const say = (text, error) => {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("error", Boolean(error));
  };
  const setCsrf = (token) => {
    for (const input of document.querySelectorAll("input[name=csrf]")) input.value = token;
  };
  const refresh = async () => {
    // After signing in again: the new session's CSRF token, then save what was typed.
    const answer = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!answer.ok) return false;
    setCsrf((await answer.json()).csrf);
    signedOut = false;
    return true;
  };
  const save = async (again = true) => {
    window.clearTimeout(timer);
    const body = new FormData();
    for (const name of ["csrf", "idempotency_key", "to", "cc", "body"]) {
      const field = form.elements.namedItem(name);
      body.append(name, field && "value" in field ? field.value : "");
    }
    let answer;
    try {
      answer = await fetch(url, { method: "POST", body, headers: { Accept: "application/json" }, credentials: "same-origin", redirect: "manual" });
    } catch {
      say("下書きを保存できませんでした（通信エラー）。文章はこの画面に残っています。", true);
      return false;
    }
    if (answer.ok) {
      dirty = false;
      say(`下書きを保存しました（${new Date().toLocaleTimeString("ja-JP", { hour: "2-digit", minute: "2-digit" })}）`, false);
      return true;
    }
    if (answer.status === 403 && again && (await refresh())) return save(false);
    if (answer.status === 401 || answer.status === 403) {
      signedOut = true;
      say("ログインの有効期限が切れました。入力した文章はこの画面に残っています。別のタブでログインし直すと、保存を再開します。", true);
      return false;
    }
    let message = "下書きを保存できませんでした。文章はこの画面に残っています。";
    try {
      const data = await answer.json();
      message = data.message || message;
      sentUrl = data.error === "sent" ? data.url : "";
    } catch { /* not JSON */ }
    say(message, true);
    return false;
  };

  for (const field of fields) {
    if (!(field instanceof HTMLElement)) continue;
    field.addEventListener("input", () => {
      dirty = true;
      window.clearTimeout(timer);
      timer = window.setTimeout(save, 1200);
    });
  }
  const resume = async () => {
    if (signedOut && (await refresh()) && dirty) await save(false);
  };
  window.addEventListener("focus", resume);
  document.addEventListener("visibilitychange", resume);
  window.setInterval(() => { if (signedOut) resume(); }, 10000);

  window.addEventListener("pageshow", () => { form.dataset.saved = ""; });
  form.addEventListener("submit", async (event) => {
    // Saved first: a reply is never posted into an ended session (the text would be lost).
    if (form.dataset.saved === "1") return;
    event.preventDefault();
    if (await save()) {
      form.dataset.saved = "1";
      form.requestSubmit(event.submitter instanceof HTMLElement ? event.submitter : undefined);
    } else if (sentUrl) {
      window.location.assign(sentUrl);
    }
  });
})();
