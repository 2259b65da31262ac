// The explain page: the object field suggests the objects of the chosen action's model as soon
// as the action is chosen (without this script, after the form is first submitted).
(function () {
  "use strict";
  var mapping = document.getElementById("console-action-objects");
  var action = document.getElementById("id_action");
  var object = document.getElementById("id_object");
  if (!mapping || !action || !object) {
    return;
  }
  var lists = JSON.parse(mapping.textContent);
  function offer() {
    var list = Object.prototype.hasOwnProperty.call(lists, action.value) ? lists[action.value] : null;
    if (list) {
      object.setAttribute("list", list);
    } else {
      object.removeAttribute("list");
    }
  }
  action.addEventListener("change", offer);
  offer();
})();
