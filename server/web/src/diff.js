// Word-level, paragraph-aware diffs: line breaks are tokens of their own.
// Shared by the history (any two versions) and the amendments (a branch's
// merged preview against the recommendation, cut into hunks).

import { h } from "./dom.js"

/** Words, runs of spaces, and paragraph breaks, each a token. */
export function tokens(text) {
  return String(text)
    .replace(/\r/g, "")
    .split(/(\n+|[^\S\n]+)/)
    .filter(x => x !== "")
}

/**
 * The edit script from `a` to `b` (token arrays) as [kind, token] pairs,
 * kind "same", "del" or "ins": a longest common subsequence, deletions
 * before insertions. Very large inputs are compared as wholes.
 */
export function diffTokens(a, b) {
  const out = []
  if (a.length * b.length > 4_000_000) {
    for (const x of a) out.push(["del", x])
    for (const x of b) out.push(["ins", x])
    return out
  }
  const n = a.length
  const m = b.length
  const dp = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1))
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1])
  let i = 0
  let j = 0
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push(["same", a[i]])
      i++
      j++
    } else if (dp[i + 1][j] >= dp[i][j + 1]) out.push(["del", a[i++]])
    else out.push(["ins", b[j++]])
  }
  while (i < n) out.push(["del", a[i++]])
  while (j < m) out.push(["ins", b[j++]])
  return out
}

/**
 * `before` → `after` as a list of parts: {same: text} and hunks, each one
 * maximal run of changed tokens: {hunk: n, del, ins, from, to, at} where
 * [from, to) is the removed span in `before` and `at` where the inserted
 * text starts in `after` (string indexes, so automerge text indexes when the
 * texts are a field's text with block markers as "\n").
 */
export function hunks(before, after) {
  const parts = []
  let b = 0
  let a = 0
  let n = 0
  let open = null
  for (const [kind, token] of diffTokens(tokens(before), tokens(after))) {
    if (kind === "same") {
      open = null
      const last = parts[parts.length - 1]
      if (last && "same" in last) last.same += token
      else parts.push({ same: token })
      b += token.length
      a += token.length
      continue
    }
    if (!open) {
      open = { hunk: n++, del: "", ins: "", from: b, to: b, at: a }
      parts.push(open)
    }
    if (kind === "del") {
      open.del += token
      b += token.length
      open.to = b
    } else {
      open.ins += token
      a += token.length
    }
  }
  return parts
}

/**
 * Text with marked runs as paragraphs: `runs` is a list of [kind, text]
 * (kind "same", "ins", "del", or a function making the element for a run);
 * each paragraph is a <p>, a paragraph break inside a marked run shows as ¶.
 */
export function paragraphs(runs, { skipLeadingBreaks = false } = {}) {
  const out = h("div", { class: "diff-text" })
  let paragraph = h("p")
  out.append(paragraph)
  let started = !skipLeadingBreaks
  const pushText = (kind, text, make) => {
    for (const piece of text.split(/(\n+)/)) {
      if (piece === "") continue
      if (/^\n+$/.test(piece)) {
        if (!started) continue
        if (kind !== "same") paragraph.append(make ? make("¶") : h(kind, {}, "¶"))
        paragraph = h("p")
        out.append(paragraph)
        continue
      }
      started = true
      const last = paragraph.lastChild
      if (kind === "same") {
        if (last?.nodeType === Node.TEXT_NODE) last.textContent += piece
        else paragraph.append(piece)
      } else if (make) {
        paragraph.append(make(piece))
      } else if (last?.nodeName?.toLowerCase() === kind) {
        last.textContent += piece
      } else {
        paragraph.append(h(kind, {}, piece))
      }
    }
  }
  for (const [kind, text, make] of runs) pushText(kind, text, make)
  return out
}

/**
 * A word diff that keeps paragraphs apart: each paragraph of the result is
 * a <p>, inserted and deleted words are <ins> and <del> (a paragraph break
 * that came or went shows as ¶).
 */
export function wordDiff(before, after) {
  return paragraphs(diffTokens(tokens(before), tokens(after)))
}
