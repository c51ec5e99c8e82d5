/* Consent Gateway portal: the one script, loaded only by pages that show times or ask for a selfie.
 * The server writes every time in UTC inside <time datetime="…">; this adds the reader's local time
 * beside it, in the same unambiguous form (2026-03-01 17:00 UTC+8). Without JavaScript the UTC time
 * stays and the page works the same. It also shows the receipt's Print button, which needs a script.
 * Text only: nothing here builds HTML. */
(function () {
  "use strict";
  var template = document.body.getAttribute("data-local-time") || "({time})";

  function two(number) {
    return (number < 10 ? "0" : "") + number;
  }

  function offset(moment) {
    var minutes = -moment.getTimezoneOffset();
    var sign = minutes < 0 ? "-" : "+";
    minutes = Math.abs(minutes);
    return "UTC" + sign + Math.floor(minutes / 60) + (minutes % 60 ? ":" + two(minutes % 60) : "");
  }

  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var element = times[i];
    var moment = new Date(element.getAttribute("datetime"));
    // A reader whose local time is UTC already reads it: nothing to add.
    if (isNaN(moment.getTime()) || moment.getTimezoneOffset() === 0) continue;
    var local = moment.getFullYear() + "-" + two(moment.getMonth() + 1) + "-" + two(moment.getDate()) + " " +
      two(moment.getHours()) + ":" + two(moment.getMinutes()) +
      (element.hasAttribute("data-seconds") ? ":" + two(moment.getSeconds()) : "") + " " + offset(moment);
    var text = template.replace("{time}", local);
    var note = document.createElement("span");
    note.className = "local-time";
    // Full-width brackets carry their own space; Latin ones need one.
    note.textContent = (/^[\u3000-\uffff]/.test(text) ? "" : " ") + text;
    element.parentNode.insertBefore(note, element.nextSibling);
  }

  // The selfie from a desktop webcam: the frame taken becomes the form's file, exactly as if it had been
  // picked, so the server sees one kind of upload. Phones open their camera from the file input itself.
  var selfie = document.getElementById("selfie");
  var camera = document.querySelector("[data-camera]");
  if (selfie && camera && navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.DataTransfer) {
    var video = camera.querySelector("video");
    var take = camera.querySelector("[data-camera-take]");
    var stream = null;
    camera.hidden = false;
    camera.querySelector("[data-camera-start]").addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({video: {facingMode: "user"}, audio: false}).then(function (opened) {
        stream = opened;
        video.srcObject = opened;
        video.hidden = false;
        take.hidden = false;
      }).catch(function () {
        camera.querySelector("[data-camera-error]").hidden = false;
      });
    });
    take.addEventListener("click", function () {
      var canvas = document.createElement("canvas");
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob(function (blob) {
        var picked = new DataTransfer();
        picked.items.add(new File([blob], "selfie.jpg", {type: "image/jpeg"}));
        selfie.files = picked.files;
        stream.getTracks().forEach(function (track) { track.stop(); });
        video.hidden = true;
        take.hidden = true;
        camera.querySelector("[data-camera-done]").hidden = false;
      }, "image/jpeg", 0.92);
    });
  }

  var print = document.querySelector("[data-print]");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
})();
