/* Consent Gateway portal: the one script, loaded only by pages that show times.
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
    if (isNaN(moment.getTime())) continue;
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

  var print = document.querySelector("[data-print]");
  if (print) {
    print.hidden = false;
    print.addEventListener("click", function () { window.print(); });
  }
})();
