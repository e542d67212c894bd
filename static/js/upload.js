// Upload forms with a progress bar (XHR reports upload progress; fetch does not).
// data-after="version": go to the new version's page; "reload": reload this page.
document.querySelectorAll("form.upload-form").forEach(function (form) {
  const box = form.querySelector(".progress");
  const bar = box.querySelector(".bar");
  const label = box.querySelector("span");
  const message = form.querySelector(".message");
  const button = form.querySelector("button[type=submit]");

  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? "message error" : "message";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const input = form.querySelector("input[type=file]");
    if (!input.files.length) return show("Choose a file first.", true);
    const data = new FormData(form);
    data.delete("csrfmiddlewaretoken");
    for (const [key, value] of Array.from(data.entries())) if (value === "") data.delete(key);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.getAttribute("data-url"));
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.setRequestHeader("Accept", "application/json");
    box.hidden = false;
    button.disabled = true;
    show("", false);
    xhr.upload.onprogress = function (e) {
      if (!e.lengthComputable) return;
      const pct = Math.round((100 * e.loaded) / e.total);
      bar.style.width = pct + "%";
      label.textContent = pct + "%";
    };
    xhr.onload = function () {
      button.disabled = false;
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.statusText }; }
      if (xhr.status === 201) {
        bar.style.width = "100%";
        label.textContent = "100%";
        if (form.getAttribute("data-after") === "version") {
          show("Uploaded as v" + body.number + ". Checking it now…", false);
          window.location.href = window.location.pathname + "v/" + body.number + "/";
        } else {
          window.location.reload();
        }
      } else if (xhr.status === 409 && body.existing_version) {
        show(body.detail + " ", true);
        const link = document.createElement("a");
        link.href = window.location.pathname + "v/" + body.existing_version + "/";
        link.textContent = "Open v" + body.existing_version;
        message.appendChild(link);
      } else {
        const problems = body.problems ? " " + body.problems.join("; ") : "";
        show((body.detail || (body.file && body.file.join(" ")) || ("Upload failed: " + xhr.status)) + problems, true);
      }
    };
    xhr.onerror = function () { button.disabled = false; show("The upload was interrupted; try again.", true); };
    xhr.send(data);
  });
});
