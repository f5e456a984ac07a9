// The report's interactions, on the page's own elements only (no library, no network):
// toggles that hide a model's series in every figure, each marker's values on hover, the
// percentile spectrum at the chosen N, and tables sorted by a click on their header.
"use strict";

(() => {
  const hidden = new Set();

  // Series (and the toggles and legend entries naming them) by model; a group toggle
  // ("client httpx", "interpreter 3.13t") names several models at once.
  function show() {
    document.querySelectorAll("[data-series]").forEach((element) => {
      element.classList.toggle("off", hidden.has(element.dataset.series));
    });
    document.querySelectorAll(".toggle[data-members]").forEach((button) => {
      const members = JSON.parse(button.dataset.members);
      button.classList.toggle("off", members.every((model) => hidden.has(model)));
    });
  }

  function flip(models) {
    const hide = !models.every((model) => hidden.has(model));
    models.forEach((model) => (hide ? hidden.add(model) : hidden.delete(model)));
    show();
  }

  document.querySelectorAll(".toggle").forEach((button) => {
    button.addEventListener("click", () =>
      flip(button.dataset.members ? JSON.parse(button.dataset.members) : [button.dataset.series]),
    );
  });
  document.querySelectorAll(".legend-entry").forEach((entry) => {
    entry.addEventListener("click", () => flip([entry.dataset.series]));
  });

  // Hover: the markers nearest the pointer, within reach, show their values (all of those
  // drawn on the same spot: models often coincide at low N). Each series with values carries
  // one per marker, in the order they were drawn.
  const tip = document.getElementById("tip");
  const REACH_PX = 14;
  const SAME_SPOT_PX = 2;
  document.querySelectorAll("figure svg").forEach((svg) => {
    const marked = [];
    svg.querySelectorAll(".series[data-tips]").forEach((group) => {
      const tips = JSON.parse(group.dataset.tips);
      const markers = group.querySelectorAll("use");
      if (markers.length !== tips.length) {
        console.error(`${group.dataset.series}: ${markers.length} markers, ${tips.length} values`);
        return;
      }
      markers.forEach((marker, i) => marked.push({ group, marker, text: tips[i] }));
    });
    if (!marked.length) return;
    svg.addEventListener("mousemove", (event) => {
      const near = [];
      for (const mark of marked) {
        if (mark.group.classList.contains("off")) continue;
        const box = mark.marker.getBoundingClientRect();
        const distance = Math.hypot(
          box.x + box.width / 2 - event.clientX,
          box.y + box.height / 2 - event.clientY,
        );
        if (distance <= REACH_PX) near.push({ distance, text: mark.text });
      }
      if (!near.length) {
        tip.hidden = true;
        return;
      }
      const closest = Math.min(...near.map((n) => n.distance));
      tip.textContent = near
        .filter((n) => n.distance <= closest + SAME_SPOT_PX)
        .map((n) => n.text)
        .join("\n");
      tip.hidden = false;
      tip.style.left = `${event.pageX + 12}px`;
      tip.style.top = `${event.pageY + 12}px`;
    });
    svg.addEventListener("mouseleave", () => (tip.hidden = true));
  });

  // The percentile spectrum: one drawing per level, the chosen one shown.
  const level = document.getElementById("spectrum-level");
  if (level) {
    const choose = () => {
      document.querySelectorAll(".spectrum").forEach((drawing) => {
        drawing.hidden = drawing.dataset.level !== level.value;
      });
    };
    level.addEventListener("change", choose);
    choose();
  }

  // Tables: a click on a header sorts by that column, numbers as numbers; blank and n/a last.
  document.querySelectorAll("table.sortable").forEach((table) => {
    const body = table.tBodies[0];
    table.querySelectorAll("th").forEach((header, column) => {
      header.addEventListener("click", () => {
        const ascending = header.getAttribute("aria-sort") !== "ascending";
        table.querySelectorAll("th").forEach((h) => h.removeAttribute("aria-sort"));
        header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        const key = (row) => {
          const text = row.cells[column].textContent.trim();
          const value = Number(text);
          return { text, value: text === "" || Number.isNaN(value) ? null : value };
        };
        const rows = Array.from(body.rows).map((row) => ({ row, key: key(row) }));
        const numeric = rows.some((r) => r.key.value !== null);
        rows.sort((a, b) => {
          const x = numeric ? a.key.value : a.key.text || null;
          const y = numeric ? b.key.value : b.key.text || null;
          if (x === null || y === null) return (x === null) - (y === null);
          const order = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? order : -order;
        });
        rows.forEach((r) => body.appendChild(r.row));
      });
    });
  });
})();
