// The dashboard's live page: each tool call over HTTP, as it ends, from /ui/events
// (server-sent events). Text goes in with textContent, never as HTML.
(function () {
  const rows = document.getElementById("live");
  const count = document.getElementById("count");
  const source = new EventSource("/ui/events");
  source.addEventListener("call", function (e) {
    const call = JSON.parse(e.data);
    const tr = document.createElement("tr");
    for (const key of ["time", "client", "tool", "outcome", "ms"]) {
      const td = document.createElement("td");
      td.textContent = String(call[key]);
      tr.appendChild(td);
    }
    rows.prepend(tr);
    while (rows.children.length > 200) rows.removeChild(rows.lastChild);
    count.textContent = String(Number(count.textContent) + 1);
  });
})();
