// Upload a model with a progress bar (XHR reports upload progress; fetch does not).
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const bar = document.getElementById("upload-bar");
  const label = document.getElementById("upload-label");
  const box = document.getElementById("upload-progress");
  const message = document.getElementById("upload-message");
  const button = document.getElementById("upload-button");

  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? "message error" : "message";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const input = document.getElementById("upload-file");
    if (!input.files.length) return show("Choose an .onnx file first.", true);
    const data = new FormData();
    data.append("file", input.files[0]);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.url);
    xhr.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    xhr.setRequestHeader("Accept", "application/json");
    box.hidden = false;
    button.disabled = true;
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
        show("Uploaded as v" + body.number + ". Checking it now…", false);
        window.location.href = window.location.pathname + "v/" + body.number + "/";
      } else if (xhr.status === 409 && body.existing_version) {
        show(body.detail + " ", true);
        const link = document.createElement("a");
        link.href = window.location.pathname + "v/" + body.existing_version + "/";
        link.textContent = "Open v" + body.existing_version;
        message.appendChild(link);
      } else {
        show(body.detail || (body.file && body.file.join(" ")) || ("Upload failed: " + xhr.status), true);
      }
    };
    xhr.onerror = function () { button.disabled = false; show("The upload was interrupted; try again.", true); };
    xhr.send(data);
  });
})();
