/* The message form, made lighter on a slow phone. Optional: without it the form posts as is.
   - suggests the urgent category when the text has a word such as 消防通道 (the server asks too);
   - checks the call-back phone before anything is sent;
   - shrinks photos to 1600 px JPEG in the browser, shows them, and sends the form with a
     progress bar; a photo the browser cannot read is sent as chosen (the server decides);
   - where the browser can record, shows 按住说话 (hold to talk, or tap to start and tap to stop,
     keyboard too): up to 60 s, played back, sent with the form. Elsewhere the call button. */
(function () {
  var form = document.getElementById("message-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var MAX = 1600, QUALITY = 0.85;
  var text = document.getElementById("f-text");
  var phone = document.getElementById("f-phone");
  var input = document.getElementById("f-photos");
  var thumbs = document.getElementById("thumbs");
  var live = document.getElementById("nudge-live");
  var keywords = {};
  try { keywords = JSON.parse(form.getAttribute("data-keywords") || "{}"); } catch (e) {}
  var shrunk = [];  // [{blob, name}] for the chosen files, in order, once shrunk

  function chosenCategory() {
    var c = form.querySelector("input[name=category]:checked");
    return c ? c.value : "";
  }
  function categoryLabel(code) {
    var c = form.querySelector("input[name=category][value='" + code + "']");
    return c && c.parentNode ? c.parentNode.textContent.trim().split("\n")[0].trim() : code;
  }
  function nudge() {
    var words = text.value, found = null;
    for (var k in keywords) {
      if (Object.prototype.hasOwnProperty.call(keywords, k) && words.indexOf(k) >= 0) { found = k; break; }
    }
    var chosen = chosenCategory();
    if (!found || !chosen || chosen === keywords[found] || isUrgent(chosen)) { live.hidden = true; return; }
    live.textContent = form.getAttribute("data-nudge")
      .replace("{word}", found).replace("{name}", categoryLabel(keywords[found]));
    live.hidden = false;
  }
  function isUrgent(code) {
    for (var k in keywords) { if (keywords[k] === code) return true; }
    return false;
  }
  text.addEventListener("input", nudge);
  form.addEventListener("change", function (e) { if (e.target.name === "category") nudge(); });

  function phoneOk(value) {
    var v = value.replace(/[\s\-()（）]/g, "");
    if (!v) return true;
    if (/^\+\d{6,15}$/.test(v)) return true;
    return /^(0086|86)?1\d{10}$/.test(v);
  }
  phone.addEventListener("input", function () { phone.setCustomValidity(""); });

  function shrink(file) {
    return new Promise(function (resolve) {
      if (!/^image\//.test(file.type) || !window.createImageBitmap || !HTMLCanvasElement.prototype.toBlob) {
        resolve({blob: file, name: file.name}); return;
      }
      createImageBitmap(file, {imageOrientation: "from-image"}).then(function (bitmap) {
        var scale = Math.min(1, MAX / Math.max(bitmap.width, bitmap.height));
        var canvas = document.createElement("canvas");
        canvas.width = Math.round(bitmap.width * scale);
        canvas.height = Math.round(bitmap.height * scale);
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff";
        ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
        canvas.toBlob(function (blob) {
          resolve(blob && blob.size < file.size ? {blob: blob, name: "photo.jpg"} : {blob: file, name: file.name});
        }, "image/jpeg", QUALITY);
      }, function () { resolve({blob: file, name: file.name}); });
    });
  }

  var ready = Promise.resolve();
  input.addEventListener("change", function () {
    var files = Array.prototype.slice.call(input.files || []);
    thumbs.innerHTML = "";
    thumbs.hidden = !files.length;
    ready = Promise.all(files.map(shrink)).then(function (done) {
      shrunk = done;
      done.forEach(function (item, i) {
        var li = document.createElement("li"), img = document.createElement("img");
        img.alt = (i + 1) + "";
        img.width = 96; img.height = 96;
        img.src = URL.createObjectURL(item.blob);
        li.appendChild(img);
        thumbs.appendChild(li);
      });
    });
  });

  // --- voice note -----------------------------------------------------------------------
  var vbox = document.getElementById("voice"), talk = document.getElementById("f-voice");
  var voiceBlob = null, recorder = null, finishing = Promise.resolve();
  function stopVoice() {
    if (recorder && recorder.state === "recording") recorder.stop();
    return finishing;
  }
  if (vbox && window.MediaRecorder && navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    vbox.hidden = false;
    document.getElementById("voice-call").hidden = true;
    var say = function (key, s) { return vbox.getAttribute("data-" + key).replace("{s}", s); };
    var state = document.getElementById("voice-state"), play = document.getElementById("voice-play");
    var drop = document.getElementById("voice-drop"), limit = +vbox.getAttribute("data-seconds");
    var starting = false, began = 0, downAt = 0, timer = null;
    var start = function () {
      if (recorder || starting) return;
      starting = true;
      navigator.mediaDevices.getUserMedia({audio: true}).then(function (stream) {
        starting = false;
        var types = ["audio/webm;codecs=opus", "audio/mp4", "audio/ogg;codecs=opus"];
        var options = {audioBitsPerSecond: +vbox.getAttribute("data-bits")}, chunks = [], done;
        for (var i = 0; i < types.length; i++) {
          if (MediaRecorder.isTypeSupported(types[i])) { options.mimeType = types[i]; break; }
        }
        recorder = new MediaRecorder(stream, options);
        finishing = new Promise(function (resolve) { done = resolve; });
        recorder.ondataavailable = function (e) { if (e.data && e.data.size) chunks.push(e.data); };
        recorder.onstop = function () {
          stream.getTracks().forEach(function (t) { t.stop(); });
          clearInterval(timer);
          var seconds = Math.max(1, Math.round((Date.now() - began) / 1000));
          voiceBlob = chunks.length ? new Blob(chunks, {type: recorder.mimeType || chunks[0].type}) : null;
          recorder = null;
          talk.className = "btn talk";
          talk.textContent = vbox.getAttribute("data-hold");
          if (voiceBlob) {
            play.src = URL.createObjectURL(voiceBlob);
            play.hidden = drop.hidden = false;
            state.textContent = say("recorded", seconds);
          }
          done();
        };
        began = Date.now();
        recorder.start(1000);
        talk.className = "btn talk on";
        talk.textContent = vbox.getAttribute("data-stop");
        state.textContent = say("recording", 0);
        timer = setInterval(function () {
          var s = Math.round((Date.now() - began) / 1000);
          if (s >= limit) stopVoice(); else state.textContent = say("recording", s);
        }, 1000);
      }, function () {
        starting = false;
        state.textContent = vbox.getAttribute("data-denied");
      });
    };
    // Pressed and held, it records until released; a short tap starts and the next tap stops.
    // Enter or Space on the focused button is a click with no pointer (detail 0): a tap.
    talk.addEventListener("pointerdown", function (e) {
      e.preventDefault();
      if (recorder) { stopVoice(); downAt = 0; return; }
      downAt = Date.now();
      start();
    });
    talk.addEventListener("pointerup", function () {
      if (downAt && recorder && Date.now() - downAt > 600) stopVoice();
      downAt = 0;
    });
    talk.addEventListener("click", function (e) {
      if (e.detail !== 0) return;
      if (recorder) stopVoice(); else start();
    });
    talk.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    drop.addEventListener("click", function () {
      voiceBlob = null;
      play.removeAttribute("src");
      play.hidden = drop.hidden = true;
      state.textContent = "";
      talk.focus();
    });
  }

  var sending = false;
  form.addEventListener("submit", function (event) {
    if (!phoneOk(phone.value)) {
      event.preventDefault();
      phone.setCustomValidity(form.getAttribute("data-phone-error"));
      phone.reportValidity();
      return;
    }
    event.preventDefault();
    if (sending) return;
    sending = true;
    var submitter = event.submitter;
    Promise.all([ready, stopVoice()]).then(function () { send(submitter); });
  });

  function send(submitter) {
    var data = new FormData(form);
    if (submitter && submitter.name) data.append(submitter.name, submitter.value);
    if (shrunk.length) {
      data.delete("photos");
      shrunk.forEach(function (item) { data.append("photos", item.blob, item.name); });
    }
    if (voiceBlob) data.append("voice", voiceBlob, /mp4/.test(voiceBlob.type) ? "voice.m4a" : "voice.webm");
    var box = document.getElementById("progress"), bar = document.getElementById("upload-bar");
    var button = document.getElementById("send");
    box.hidden = false;
    button.disabled = true;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action.split("#")[0]);
    xhr.upload.onprogress = function (e) { if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total); };
    xhr.onload = function () {
      if (/\/receipt$/.test(xhr.responseURL.split("?")[0])) { window.location.replace(xhr.responseURL); return; }
      // The form came back (a mistake to fix, a category to confirm): show it as sent, photos kept.
      document.open(); document.write(xhr.responseText); document.close();
      window.location.hash = "message";
    };
    xhr.onerror = function () {
      sending = false; button.disabled = false; box.hidden = true;
      alert(form.getAttribute("data-failed"));
    };
    xhr.send(data);
  }
})();
