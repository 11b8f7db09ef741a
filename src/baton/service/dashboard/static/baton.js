// baton dashboard: live parts only (the pages work without it). Server-Sent Events from
// /ui/stream/...; every payload is JSON, and HTML in it was escaped by the server's templates.
(() => {
  "use strict";

  const fragment = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html;
    return template.content;
  };

  const showOutcome = (el, outcome) => {
    if (!el) return;
    el.dataset.outcome = outcome;
    el.className = "badge outcome-" + outcome;
    el.textContent = outcome.replace("_", " ");
  };

  const follow = (box) => {
    const runPage = box.id === "events";
    const log = runPage ? box : document.getElementById("live-log");
    const outcome = document.getElementById("live-outcome");
    const label = document.getElementById("live-run");
    const source = new EventSource(box.dataset.stream);

    source.addEventListener("timeline", (event) => {
      const body = document.getElementById("timeline");
      if (body) body.replaceChildren(fragment(JSON.parse(event.data)));
    });
    source.addEventListener("facts", (event) => {
      for (const [name, text] of Object.entries(JSON.parse(event.data))) {
        const fact = document.querySelector('#session-facts [data-fact="' + name + '"]');
        if (fact) fact.textContent = text;
      }
    });
    source.addEventListener("run", (event) => {
      const run = JSON.parse(event.data);
      log.replaceChildren();
      if (outcome) {
        delete outcome.dataset.outcome;
        outcome.className = "small";
        outcome.textContent = "running";
      }
      if (label) {
        const link = document.createElement("a");
        link.href = run.href;
        const attempt = run.attempt > 1 ? ", attempt " + run.attempt : "";
        link.textContent = "run " + run.short + " (" + run.mode + attempt + ")";
        label.replaceChildren(link);
      }
    });
    source.addEventListener("entry", (event) => {
      const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      log.append(fragment(JSON.parse(event.data)));
      if (atEnd) log.scrollTop = log.scrollHeight;
    });
    source.addEventListener("outcome", (event) => {
      showOutcome(outcome, JSON.parse(event.data).outcome);
      if (runPage) source.close(); // the run has ended: nothing more will come
    });
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED && outcome && !outcome.dataset.outcome) {
        outcome.textContent = "live updates stopped: reload the page";
      }
    });
  };

  document.querySelectorAll("[data-stream]").forEach(follow);
})();
