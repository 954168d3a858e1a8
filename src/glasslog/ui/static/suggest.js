// Autocomplete for the query box: the word under the caret, completed from the
// language's field names and the metadata keys seen in results.

import { h, fill } from "./dom.js";

/** Wire suggestions onto `input`; `names()` gives the current candidates. */
export function suggest(input, list, names) {
  let options = [];
  let active = -1;

  const word = () => {
    const upto = input.value.slice(0, input.selectionStart ?? input.value.length);
    const match = /[A-Za-z_.\-]*$/.exec(upto);
    const text = match[0].replace(/^-/, "");
    return { text, start: upto.length - text.length };
  };
  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    options = [];
    active = -1;
  };
  const accept = (name) => {
    const { text, start } = word();
    const end = start + text.length;
    const rest = input.value.slice(end);
    input.value = `${input.value.slice(0, start)}${name}:${rest}`;
    const caret = start + name.length + 1;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
  };
  const highlight = (index) => {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) input.setAttribute("aria-activedescendant", `suggest-${index}`);
  };

  input.addEventListener("input", () => {
    const { text } = word();
    if (text.length < 1) return close();
    options = [...new Set(names())].filter((n) => n.startsWith(text) && n !== text).slice(0, 8);
    if (!options.length) return close();
    fill(list, options.map((name, i) => h("li", {
      id: `suggest-${i}`, role: "option", "aria-selected": "false",
      onmousedown: (e) => { e.preventDefault(); accept(name); },
    }, name)));
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    active = -1;
  });
  input.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown") { e.preventDefault(); highlight((active + 1) % options.length); }
    else if (e.key === "ArrowUp") { e.preventDefault(); highlight((active - 1 + options.length) % options.length); }
    else if ((e.key === "Enter" || e.key === "Tab") && active >= 0) { e.preventDefault(); accept(options[active]); }
    else if (e.key === "Escape") { e.stopPropagation(); close(); }
  });
  input.addEventListener("blur", close);
}
