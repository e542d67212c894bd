// Model page: save the representative inputs (sample dataset, typical sizes) through the model API, then reload.
(function () {
  const form = document.getElementById("inputs-form");
  if (!form) return;
  const message = form.querySelector(".message");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const chosen = form.querySelector("[name=sample_dataset]").value;
    const dims = {};
    form.querySelectorAll("input[name=dim]").forEach(function (input) {
      if (input.value !== "") dims[input.getAttribute("data-key")] = Number(input.value);
    });
    // Only the dimensions the form shows are sent: the API checks them against the newest ready version.
    const body = { sample_dataset: chosen === "" ? null : parseInt(chosen, 10), typical_dims: dims };
    fetch(form.getAttribute("data-url"), { method: "PATCH", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
        "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value },
      body: JSON.stringify(body) })
      .then((r) => r.json().then((json) => ({ status: r.status, json })))
      .then(({ status, json }) => {
        if (status === 200) { window.location.reload(); return; }
        const problems = Object.entries(json).map(([k, v]) => (k === "detail" ? v : k + ": " + [].concat(v).join(" "))).join(" ");
        message.textContent = problems || "Could not save.";
        message.className = "message error";
      })
      .catch(() => { message.textContent = "Could not reach the server; try again."; message.className = "message error"; });
  });
})();
