// Times are written in UTC; hovering one (or focusing its row) shows the local time too.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  for (const time of document.querySelectorAll("time[datetime]")) {
    const at = new Date(time.getAttribute("datetime"));
    if (!isNaN(at)) {
      time.title = time.getAttribute("datetime") + " UTC\nlocal: " + at.toLocaleString();
    }
  }
});
