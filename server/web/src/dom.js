// A tiny DOM helper instead of a component framework: h(tag, attrs, ...children).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value == null || value === false) continue
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2).toLowerCase(), value)
    else if (key === "value") el.value = value
    else if (key === "checked" || key === "disabled" || key === "selected") el[key] = Boolean(value)
    else if (key === "dataset") Object.assign(el.dataset, value)
    else el.setAttribute(key, value === true ? "" : String(value))
  }
  append(el, children)
  return el
}

function append(el, children) {
  for (const child of children) {
    if (child == null || child === false) continue
    if (Array.isArray(child)) append(el, child)
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

/** A labelled form field: <label for> + control. */
let nextId = 0
export function field(label, control, hint) {
  const id = control.id || `f${++nextId}`
  control.id = id
  return h("div", { class: "field" }, h("label", { for: id }, label, hint ? h("span", { class: "hint" }, ` (${hint})`) : null), control)
}

/** Coalesce bursts of calls into one (a timer, not an animation frame: those
 * stop in background tabs, and a tab should be current when one returns to it). */
export function batched(fn) {
  let queued = false
  return () => {
    if (queued) return
    queued = true
    setTimeout(() => {
      queued = false
      fn()
    }, 16)
  }
}

/** Run the async `fn` one call at a time: a call while it runs asks for one
 * more run after it (so the last answer is about the latest state) instead of
 * a second request beside it. `settled` runs once no further run is asked for. */
export function oneAtATime(fn, settled = () => {}) {
  let running = false
  let again = false
  const run = async () => {
    if (running) {
      again = true
      return
    }
    running = true
    try {
      await fn()
    } finally {
      running = false
    }
    if (again) {
      again = false
      run()
    } else {
      settled()
    }
  }
  return run
}
